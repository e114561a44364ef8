"""The Brain-Semantoks 457-ROI space as an atlas preset: 9 networks, user-supplied volume, refusals."""

import nibabel as nib
import numpy as np
import pytest
import yaml

from semantoks.atlas import AtlasSpec, load_atlas
from semantoks.brainmarks.adapter import column_positions
from semantoks.config import load_config
from semantoks.errors import SemantoksError
from semantoks.workflow_plan import atlas_spec_from_config

SCHAEFER_NLIN6 = ("tpl-MNI152NLin6Asym/tpl-MNI152NLin6Asym_res-02_atlas-Schaefer2018_desc-400Parcels7Networks"
                  "_dseg.nii.gz")


def paper_space_volume(templateflow_home, path, drop=None):
    """Schaefer-400x7 plus 57 labelled blocks outside the cortex standing in for Tian S3 and Buckner-7."""
    cortex = nib.load(templateflow_home / SCHAEFER_NLIN6)
    data = np.asarray(cortex.dataobj).astype(np.int16)
    free = np.argwhere(data == 0)
    free = free[(free[:, 0] > 20) & (free[:, 0] < 70) & (free[:, 1] > 20) & (free[:, 2] > 10)]
    for k, label in enumerate(range(401, 458)):
        if label != drop:
            i, j, m = free[k * 40]
            data[i, j, m] = label
    nib.save(nib.Nifti1Image(data, cortex.affine), path)
    return path


def test_the_preset_has_457_parcels_in_the_papers_9_networks(templateflow_home, tmp_path):
    dseg = paper_space_volume(templateflow_home, tmp_path / "space457.nii.gz")
    atlas = load_atlas(AtlasSpec(family="brainsemantoks457", space="MNI152NLin6Asym", dseg=dseg), templateflow_home)
    assert atlas.atlas_id == "BrainSemantoks457" and len(atlas.labels) == 457
    assert atlas.networks == ["Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default",
                              "Subcortex", "Cerebellum"]
    assert atlas.labels["name"].iloc[0] == "7Networks_LH_Vis_1" and atlas.labels["index"].tolist() == list(range(1, 458))
    # Brainmarks' 457-column space maps one-to-one onto this preset
    assert (column_positions("schaefer400_tians3_buckner7", atlas.labels["name"], atlas.atlas_id) == np.arange(457)).all()


def test_a_volume_missing_labels_is_refused_naming_it(templateflow_home, tmp_path):
    dseg = paper_space_volume(templateflow_home, tmp_path / "partial.nii.gz", drop=455)
    with pytest.raises(SemantoksError, match=r"partial.nii.gz: labels \[455\] of the 457-ROI space have no voxel"):
        load_atlas(AtlasSpec(family="brainsemantoks457", space="MNI152NLin6Asym", dseg=dseg), templateflow_home)


def test_config_names_the_preset_and_refuses_the_wrong_space(tmp_path):
    config = {"atlas": {"family": "brainsemantoks457", "space": "MNI152NLin6Asym",
                        "custom": {"dseg": "space457.nii.gz"}},
              "cohorts": {"demo": {"source": "simulated"}}}
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(config))
    assert atlas_spec_from_config(load_config(path)).atlas_id == "BrainSemantoks457"
    config["atlas"]["space"] = "MNI152NLin2009cAsym"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SemantoksError, match="atlas.space .* MNI152NLin6Asym"):
        atlas_spec_from_config(load_config(path))
    config["atlas"] = {"family": "brainsemantoks457", "space": "MNI152NLin6Asym"}
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SemantoksError, match="atlas.custom.dseg is not set"):
        atlas_spec_from_config(load_config(path))


def test_readme_example_loads_as_written(templateflow_home, tmp_path):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S) if "brainsemantoks457" in b)
    config = yaml.safe_load(block)
    dseg = paper_space_volume(templateflow_home, tmp_path / "volume.nii.gz")
    assert config["atlas"]["custom"]["dseg"].endswith(".nii.gz")
    config["atlas"]["custom"]["dseg"] = str(dseg)
    config["cohorts"] = {"demo": {"source": "simulated"}}
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(config))
    spec = atlas_spec_from_config(load_config(tmp_path / "my.yaml"))
    assert len(load_atlas(spec, templateflow_home).labels) == 457
