"""The Brain-Semantoks paper's 457-ROI space: Schaefer-400 (7-network order) + Tian S3 + Buckner-7 cerebellum.

The volume is published with the Brain-Semantoks weights, not on TemplateFlow: the user supplies it
(`atlas.custom.dseg`). Parcel names of the first 400 labels come from TemplateFlow's Schaefer-400x7 table in
MNI152NLin6Asym; the paper groups the parcels into 9 networks: Yeo's 7, Subcortex (Tian S3), Cerebellum.
"""

import pandas as pd

from semantoks.atlas.images import check_labels_match, present_labels, read_label_image
from semantoks.atlas.names import SUBCORTEX, parcel_table
from semantoks.atlas.resolve import atlas_files
from semantoks.atlas.tables import read_index_name_table
from semantoks.errors import SemantoksError

ATLAS_ID = "BrainSemantoks457"
SPACE = "MNI152NLin6Asym"
N_CORTEX, N_SUBCORTEX = 400, 50
CEREBELLUM = "Cerebellum"
# Buckner 2011's seven cerebellar networks follow Yeo's 7-network order
BUCKNER_NETWORKS = ("Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default")


def paper_space_table(templateflow_home=None, allow_download=False, resolution=2):
    """The 457-row parcel table (index, name, network, hemisphere) in label order."""
    _, table_path = atlas_files(SPACE, "Schaefer2018", "400Parcels7Networks", resolution, templateflow_home,
                                allow_download)
    names = read_index_name_table(table_path)
    if len(names) != N_CORTEX:
        raise SemantoksError(f"{table_path}: lists {len(names)} parcels where Schaefer-400 has 400; "
                             "replace it with the TemplateFlow file.")
    cortex = parcel_table(names["name"], 7, names["index"], source=str(table_path))
    subcortex = pd.DataFrame({"index": range(N_CORTEX + 1, N_CORTEX + N_SUBCORTEX + 1),
                              "name": [f"TianS3_{i:02d}" for i in range(1, N_SUBCORTEX + 1)],
                              "network": SUBCORTEX, "hemisphere": "n/a"})
    first = N_CORTEX + N_SUBCORTEX + 1
    cerebellum = pd.DataFrame({"index": range(first, first + len(BUCKNER_NETWORKS)),
                               "name": [f"Buckner7_{network}" for network in BUCKNER_NETWORKS],
                               "network": CEREBELLUM, "hemisphere": "n/a"})
    return pd.concat([cortex, subcortex, cerebellum], ignore_index=True)


def load_paper_space(spec, templateflow_home=None, allow_download=False):
    """(image, table) of the user's 457-label volume; every label 1..457 must be present."""
    image = read_label_image(spec.dseg)
    table = paper_space_table(templateflow_home, allow_download, spec.resolution)
    missing = sorted(set(table["index"]) - set(present_labels(image).tolist()))
    if missing:
        raise SemantoksError(f"{spec.dseg}: labels {missing[:5]} of the 457-ROI space have no voxel; use the "
                             "457-ROI volume published with the Brain-Semantoks weights.")
    check_labels_match(image, table, spec.dseg, "the Brain-Semantoks 457-ROI label list", require_all=False)
    return image, table
