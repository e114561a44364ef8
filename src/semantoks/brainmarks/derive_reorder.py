"""Derive the Schaefer-400 17-network -> 7-network parcel correspondence from the two TemplateFlow volumes.

Run once to (re)write `schaefer400_17to7.tsv` beside this file:
    python -m semantoks.brainmarks.derive_reorder $TEMPLATEFLOW_HOME
The two Schaefer-400 versions share parcel boundaries and differ only in labels and order, so the
maximum-overlap match is a bijection; Dice per pair is recorded so a test can hold it to that.
"""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from semantoks.atomic import write_table_tsv

TEMPLATE = "tpl-MNI152NLin2009cAsym"
VOLUME = TEMPLATE + "/" + TEMPLATE + "_res-02_atlas-Schaefer2018_desc-400Parcels{k}Networks_dseg.nii.gz"
TABLE = TEMPLATE + "/" + TEMPLATE + "_atlas-Schaefer2018_desc-400Parcels{k}Networks_dseg.tsv"
OUT = Path(__file__).with_name("schaefer400_17to7.tsv")


def derive(templateflow_home):
    home = Path(templateflow_home)
    labels17 = np.asarray(nib.load(home / VOLUME.format(k=17)).dataobj).astype(np.int64).ravel()
    labels7 = np.asarray(nib.load(home / VOLUME.format(k=7)).dataobj).astype(np.int64).ravel()
    names17 = pd.read_csv(home / TABLE.format(k=17), sep="\t")["name"].tolist()
    names7 = pd.read_csv(home / TABLE.format(k=7), sep="\t")["name"].tolist()
    both = (labels17 > 0) & (labels7 > 0)
    overlap = np.zeros((401, 401), dtype=np.int64)
    np.add.at(overlap, (labels17[both], labels7[both]), 1)
    sizes17, sizes7 = np.bincount(labels17, minlength=401), np.bincount(labels7, minlength=401)
    rows = []
    for index17 in range(1, 401):
        index7 = int(np.argmax(overlap[index17]))
        dice = 2 * overlap[index17, index7] / (sizes17[index17] + sizes7[index7])
        rows.append({"index17": index17, "name17": names17[index17 - 1], "index7": index7,
                     "name7": names7[index7 - 1], "dice": round(float(dice), 4)})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    table = derive(sys.argv[1])
    write_table_tsv(OUT, table)
    print(f"{OUT}: {table['index7'].nunique()} distinct 7-network parcels, min Dice {table['dice'].min():.3f}")
