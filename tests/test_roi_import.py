"""ROI time-series import: file formats, orientation, TR per site, labels, and the per-run output contract."""

import json
import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from scipy.io import savemat

from semantoks.cohorts.roi_import import import_roi_cohort, import_roi_timeseries, read_import_index, roi_label_table
from semantoks.cohorts.roi_parcellation import check_mixed_sources, parcellation_id, roi_parcel_table
from semantoks.errors import SemantoksError

PATTERN = r"(?P<site>[A-Za-z]+)_(?P<subject>\d+)_rois_cc200\.1D"


def _series(seed, n_frames, n_parcels=5):
    return np.random.default_rng(seed).normal(size=(n_frames, n_parcels)).round(4)


def _write_1d(path, data):
    # ABIDE Preprocessed: one '#'-prefixed header line of ROI numbers, then whitespace-separated rows
    header = "\t".join(f"#{2000 + i}" for i in range(data.shape[1]))
    np.savetxt(path, data, delimiter="\t", header=header, comments="", fmt="%.4f")


@pytest.fixture
def abide_folder(tmp_path):
    folder = tmp_path / "rois"
    folder.mkdir()
    data = {"0051001": _series(1, 12), "0051002": _series(2, 9), "0050003": _series(3, 11)}
    data["0051002"][:, 3] = 0.0
    sites = {"0051001": "NYU", "0051002": "NYU", "0050003": "UM"}
    for subject, series in data.items():
        _write_1d(folder / f"{sites[subject]}_{subject}_rois_cc200.1D", series)
    (folder / "README.txt").write_text("not a time series\n")
    return folder, data


def test_abide_1d_import_writes_design_per_run_outputs(abide_folder, tmp_path):
    folder, data = abide_folder
    out = tmp_path / "results" / "timeseries" / "abide"
    outputs = import_roi_timeseries(folder, PATTERN, "abide", "cc200", out, tr_by_site={"NYU": 2.0, "UM": 1.5},
                                    space="MNI152NLin6Asym")
    assert [p.name for p, _ in outputs] == [
        "sub-0050003_task-rest_space-MNI152NLin6Asym_atlas-cc200_desc-imported_timeseries.parquet",
        "sub-0051001_task-rest_space-MNI152NLin6Asym_atlas-cc200_desc-imported_timeseries.parquet",
        "sub-0051002_task-rest_space-MNI152NLin6Asym_atlas-cc200_desc-imported_timeseries.parquet",
    ]
    parquet, qc_path = outputs[2]
    assert parquet.parent == out / "sub-0051002"
    assert qc_path.name == parquet.name.replace("_timeseries.parquet", "_qc.json")
    table = pq.read_table(parquet)
    assert table.schema.names == ["frame", "roi001", "roi002", "roi003", "roi004", "roi005"]
    assert str(table.schema.field("frame").type) == "int32"
    assert all(str(table.schema.field(n).type) == "float" for n in table.schema.names[1:])
    values = np.column_stack([table[n].to_numpy() for n in table.schema.names[1:]])
    expected = data["0051002"].astype(np.float32)
    expected[:, 3] = np.nan  # an all-zero parcel was outside the subject's mask
    np.testing.assert_array_equal(values, expected)
    assert table["frame"].to_pylist() == list(range(9))
    qc = json.loads(qc_path.read_text())
    stored = json.loads(table.schema.metadata[b"semantoks"])
    assert {key: stored[key] for key in qc if key != "mean_fd"} == {key: qc[key] for key in qc if key != "mean_fd"}
    assert qc["tr"] == 2.0 and qc["n_volumes"] == qc["n_frames"] == 9 and qc["n_dummy"] == 0
    assert qc["included"] is True and qc["reason"] is None
    assert qc["parcel_coverage"] == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert np.isnan(qc["mean_fd"])
    assert (qc["subject"], qc["session"], qc["task"], qc["scan_id"]) == ("0051002", None, "rest", "sub-0051002_task-rest")
    assert qc["source_bold"].endswith("NYU_0051002_rois_cc200.1D")
    assert json.loads(outputs[0][1].read_text())["tr"] == 1.5


def test_imported_cohort_consolidates_like_any_other(abide_folder, tmp_path):
    from semantoks.dataset import build_partition
    from semantoks.dataset.read import iter_scans

    folder, data = abide_folder
    labels = pd.DataFrame({"name": [f"P{i}" for i in range(5)], "network": ["Vis", "Vis", "Default", "Default", "Cont"]})
    with pytest.raises(SemantoksError, match=r"column 1 is headed '2000' but the labels table's parcel 1 is 'P0'"):
        import_roi_timeseries(folder, PATTERN, "abide", "cc200", tmp_path / "ts", tr=2.0, labels=labels)
    # the explicit mapping: each parcel's file column by its header name
    labels["column"] = [str(2000 + i) for i in range(5)]
    outputs = import_roi_timeseries(folder, PATTERN, "abide", "cc200", tmp_path / "ts", tr=2.0, labels=labels)
    build_partition(outputs, tmp_path / "dataset", cohort="abide", atlas_id="cc200", labels=roi_label_table(labels, 5),
                    space="unknown", strategy={}, pipeline_version="test", config_hash="x")
    scans = {scan.subject: scan for scan in iter_scans(tmp_path / "dataset", "cc200")}
    assert set(scans) == {"0051001", "0051002", "0050003"}
    np.testing.assert_allclose(scans["0051001"].data, data["0051001"], atol=1e-6)
    assert scans["0051002"].tr == 2.0 and scans["0051002"].coverage.tolist() == [1, 1, 1, 0, 1]
    assert np.isnan(scans["0051002"].data[:, 3]).all()


def test_label_table_names_networks_and_hemispheres(tmp_path):
    labels = tmp_path / "labels.tsv"
    labels.write_text("name\tnetwork\nVis_LH_1\tVis\nVis_RH_1\tVis\nThal\t\n")
    table = roi_label_table(labels, 3)
    assert table.to_dict("list") == {"index": [1, 2, 3], "name": ["Vis_LH_1", "Vis_RH_1", "Thal"],
                                     "network": ["Vis", "Vis", "Unassigned"], "hemisphere": ["L", "R", "unknown"],
                                     "column": [None, None, None]}
    assert roi_label_table(None, 2)["name"].tolist() == ["roi001", "roi002"]
    with pytest.raises(SemantoksError, match=r"labels.tsv: 3 labels but the time series have 4 parcels"):
        roi_label_table(labels, 4)


@pytest.mark.parametrize("fmt", ["csv_header", "csv_plain", "tsv_header", "txt", "npy", "mat"])
def test_formats_read_the_same_numbers(tmp_path, fmt):
    data = {"01": _series(4, 7, 3), "02": _series(5, 8, 3)}
    folder = tmp_path / "in"
    folder.mkdir()
    for subject, series in data.items():
        stem = folder / f"sub{subject}_ts"
        if fmt.startswith(("csv", "tsv")):
            sep = "," if fmt.startswith("csv") else "\t"
            pd.DataFrame(series, columns=["a", "b", "c"]).to_csv(
                f"{stem}.{fmt[:3]}", sep=sep, index=False, header=fmt.endswith("header"))
        elif fmt == "txt":
            np.savetxt(f"{stem}.txt", series)
        elif fmt == "npy":
            np.save(f"{stem}.npy", series)
        else:
            savemat(f"{stem}.mat", {"ROI_ts": series, "other": np.zeros(3)})
    outputs = import_roi_timeseries(folder, r"sub(?P<subject>\d+)_ts", "c1", "atlas1", tmp_path / "out", tr=0.8,
                                    mat_variable="ROI_ts" if fmt == "mat" else None)
    for (parquet, _), subject in zip(outputs, sorted(data)):
        table = pq.read_table(parquet).to_pandas()
        np.testing.assert_allclose(table.iloc[:, 1:].to_numpy(), data[subject], atol=1e-5)


def test_mat_file_needs_the_variable_name_when_ambiguous(tmp_path):
    savemat(tmp_path / "sub01.mat", {"ts": np.ones((4, 2)), "labels": np.ones(2)})
    with pytest.raises(SemantoksError, match=r"sub01.mat: holds variables .*set roi.mat_variable"):
        import_roi_timeseries(tmp_path, r"sub(?P<subject>\d+)\.mat", "c1", "a", tmp_path / "out", tr=2)
    with pytest.raises(SemantoksError, match=r"no variable 'nope'"):
        import_roi_timeseries(tmp_path, r"sub(?P<subject>\d+)\.mat", "c1", "a", tmp_path / "out", tr=2, mat_variable="nope")


def test_parcels_by_frames_files_are_transposed(tmp_path):
    # frame counts differ between scans, parcel counts do not: that tells the orientation apart
    series = {"1": _series(6, 10, 4), "2": _series(7, 13, 4)}
    for subject, data in series.items():
        np.save(tmp_path / f"s{subject}.npy", data.T)
    auto = import_roi_timeseries(tmp_path, r"s(?P<subject>\d)\.npy", "c", "a", tmp_path / "auto", tr=2)
    explicit = import_roi_timeseries(tmp_path, r"s(?P<subject>\d)\.npy", "c", "a", tmp_path / "explicit", tr=2,
                                     orientation="parcels_by_frames")
    for outputs in (auto, explicit):
        table = pq.read_table(outputs[1][0]).to_pandas()
        np.testing.assert_allclose(table.iloc[:, 1:].to_numpy(), series["2"], atol=1e-6)


def test_sessions_and_runs_from_the_pattern(tmp_path):
    for session in ("1", "2"):
        np.save(tmp_path / f"sub-7_ses-{session}_run-1.npy", _series(int(session), 6, 2))
    outputs = import_roi_timeseries(tmp_path, r"sub-(?P<subject>\d+)_ses-(?P<session>\d)_run-(?P<run>\d)\.npy",
                                    "c", "a", tmp_path / "out", tr=2, task="movie")
    assert [p.relative_to(tmp_path / "out").as_posix() for p, _ in outputs] == [
        "sub-7/ses-1/sub-7_ses-1_task-movie_run-1_space-unknown_atlas-a_desc-imported_timeseries.parquet",
        "sub-7/ses-2/sub-7_ses-2_task-movie_run-1_space-unknown_atlas-a_desc-imported_timeseries.parquet",
    ]


def test_pattern_is_searched_below_the_folder_or_in_listed_paths(tmp_path):
    folder = tmp_path / "sub99"
    for subject in ("01", "02"):
        target = folder / f"site{subject}" / f"sub{subject}.npy"
        target.parent.mkdir(parents=True)
        np.save(target, _series(int(subject), 5, 2))
    pattern = r"sub(?P<subject>\d+)"
    from_folder = import_roi_timeseries(folder, pattern, "c", "a", tmp_path / "out1", tr=2)
    assert [json.loads(qc.read_text())["subject"] for _, qc in from_folder] == ["01", "02"]
    listed = import_roi_timeseries([folder / "site02" / "sub02.npy"], r"/sub(?P<subject>\d+)\.npy", "c", "a",
                                   tmp_path / "out2", tr=2)
    assert [json.loads(qc.read_text())["subject"] for _, qc in listed] == ["02"]


def test_tr_and_mean_fd_from_the_phenotype_table(tmp_path):
    for subject in ("51001", "51002"):
        np.save(tmp_path / f"{subject}.npy", _series(int(subject), 6, 2))
    table = tmp_path / "pheno.csv"
    table.write_text("SUB_ID,SITE_ID,func_mean_fd\n51001,NYU,0.12\n51002,UM_1,-9999\n")
    labels = tmp_path / "labels.tsv"
    labels.write_text("name\tnetwork\nA\tVis\nB\tDefault\n")
    outputs = import_roi_cohort(
        "abide", {"files": str(tmp_path), "pattern": r"(?P<subject>\d+)\.npy", "site_column": "SITE_ID",
                  "tr_by_site": {"NYU": 2.0, "UM_1": 2.5}, "mean_fd_column": "func_mean_fd", "parcellation": "P2",
                  "labels": str(labels)},
        {"table": str(table), "participant_column": "SUB_ID"}, tmp_path / "out")
    qcs = [json.loads(qc.read_text()) for _, qc in outputs]
    assert [qc["tr"] for qc in qcs] == [2.0, 2.5]
    assert qcs[0]["mean_fd"] == 0.12 and np.isnan(qcs[1]["mean_fd"])


def test_tr_missing_for_a_site_names_site_and_key(abide_folder, tmp_path):
    folder, _ = abide_folder
    message = r"UM_0050003_rois_cc200.1D: site 'UM' has no repetition time; add it under roi.tr_by_site"
    with pytest.raises(SemantoksError, match=message):
        import_roi_timeseries(folder, PATTERN, "abide", "cc200", tmp_path / "out", tr_by_site={"NYU": 2.0})
    with pytest.raises(SemantoksError, match=r"roi: no repetition time; set roi.tr"):
        import_roi_timeseries(folder, PATTERN, "abide", "cc200", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_inconsistent_parcel_counts_name_the_file(abide_folder, tmp_path):
    folder, _ = abide_folder
    _write_1d(folder / "NYU_0051009_rois_cc200.1D", _series(9, 12, 6))
    with pytest.raises(SemantoksError, match=r"NYU_0051009_rois_cc200.1D: has 6 parcels but most files have 5 .*move it out of roi.files"):
        import_roi_timeseries(folder, PATTERN, "abide", "cc200", tmp_path / "out", tr=2.0)
    assert not (tmp_path / "out").exists()


def test_unparseable_file_is_named(abide_folder, tmp_path):
    folder, _ = abide_folder
    (folder / "NYU_0051010_rois_cc200.1D").write_text("#1 #2 #3 #4 #5\n0.1 0.2 0 0 1\n0.3 oops 0 0 1\n")
    with pytest.raises(SemantoksError, match=r"NYU_0051010_rois_cc200.1D: could not read a numeric table"):
        import_roi_timeseries(folder, PATTERN, "abide", "cc200", tmp_path / "out", tr=2.0)


def test_pattern_matching_no_file(abide_folder, tmp_path):
    folder, _ = abide_folder
    with pytest.raises(SemantoksError, match=r"roi.pattern .* matches no file"):
        import_roi_timeseries(folder, r"(?P<subject>\d+)_rois_aal\.1D", "abide", "aal", tmp_path / "out", tr=2.0)
    with pytest.raises(SemantoksError, match=r"has no \(\?P<subject>"):
        import_roi_timeseries(folder, r"\d+_rois_cc200\.1D", "abide", "cc200", tmp_path / "out", tr=2.0)


def test_subject_label_must_be_alphanumeric(tmp_path):
    np.save(tmp_path / "sub-01;rm.npy", np.ones((3, 2)))
    with pytest.raises(SemantoksError, match=r"not alphanumeric"):
        import_roi_timeseries(tmp_path, r"sub-(?P<subject>[^.]+)\.npy", "c", "a", tmp_path / "out", tr=2)


def test_reimport_keeps_exactly_the_current_source_files(abide_folder, tmp_path):
    folder, _ = abide_folder
    out = tmp_path / "ts"
    import_roi_timeseries(folder, PATTERN, "abide", "cc200", out, tr=2.0)
    (folder / "NYU_0051002_rois_cc200.1D").unlink()
    outputs = import_roi_timeseries(folder, PATTERN, "abide", "cc200", out, tr=2.0)
    listed = read_import_index(out / "roi_import.tsv")
    assert listed == [(p, q) for p, q in outputs] and len(listed) == 2
    assert not (out / "sub-0051002").exists()
    assert sorted(p.name for p in out.rglob("*_qc.json")) == sorted(q.name for _, q in outputs)


CC200 = "abide_pcp_cc200"


def test_labels_table_with_its_own_headers_names_the_parcels(shared_data):
    roi = {"labels": str(shared_data / CC200 / "cc200_yeo7_mapping.tsv"),
           "label_columns": {"name": "roi", "network": "yeo7_network"}}
    table = roi_parcel_table(roi, "abide")
    assert len(table) == 200 and table["name"].tolist()[:3] == ["1", "2", "3"]
    assert table["network"].value_counts().to_dict()["Default"] == 48
    assert set(table["hemisphere"]) == {"unknown"}
    with pytest.raises(SemantoksError, match=r"cc200_yeo7_mapping.tsv: no name column .*label_columns.name"):
        roi_parcel_table({"labels": roi["labels"]}, "abide")
    with pytest.raises(SemantoksError, match=r"no network column; .* or set cohorts.abide.roi.dseg"):
        roi_parcel_table({"labels": roi["labels"], "label_columns": {"name": "roi"}}, "abide")


def documented_nifti_roi(repo_root, data):
    """The "labels + NIfTI" roi: section of docs/cohorts.md, with its data path replaced by `data`."""
    text = (repo_root / "docs" / "cohorts.md").read_text()
    [block] = re.findall(r"```yaml\n# the roi: section of abide.yaml, labels \+ NIfTI variant\n(.*?)```", text, re.DOTALL)
    return yaml.safe_load(block.replace("/data/abide_pcp_cc200", str(data)))["roi"]


def test_labels_and_nifti_assign_networks_by_yeo_overlap(shared_data, templateflow_home, repo_root, tmp_path):
    mapping = pd.read_csv(shared_data / CC200 / "cc200_yeo7_mapping.tsv", sep="\t")
    data = tmp_path / CC200
    data.mkdir()
    for name in ("rois_cc200", "CC200.nii.gz"):
        (data / name).symlink_to(shared_data / CC200 / name)
    # the docs' table: a name per parcel and its label value in the NIfTI, no network column
    (data / "cc200_labels.tsv").write_text("index\tname\n" + "".join(f"{i}\tCC{i:03d}\n" for i in mapping["roi"]))
    roi = documented_nifti_roi(repo_root, data)
    table = roi_parcel_table(roi, "abide", templateflow_home=templateflow_home)
    assert set(table["hemisphere"]) == {"L", "R"}
    # the shared table was derived from Schaefer-400 in another template: most cortical parcels must agree
    cortical = (mapping["yeo7_network"] != "NonCortical").to_numpy() & (table["network"] != "Unassigned").to_numpy()
    agree = (table["network"].to_numpy() == mapping["yeo7_network"].to_numpy())[cortical].mean()
    assert cortical.sum() > 120 and agree > 0.6
    outputs = import_roi_cohort("abide", roi, {}, tmp_path / "ts", templateflow_home=templateflow_home)
    assert len(outputs) == 91
    assert pq.read_schema(outputs[0][0]).names[:3] == ["frame", "CC001", "CC002"]
    assert "atlas-CC200_desc-imported" in outputs[0][0].name


def test_cohorts_with_different_parcellations_are_refused_naming_them(tmp_path):
    labels = tmp_path / "labels.tsv"
    labels.write_text("name\tnetwork\nA\tVis\n")
    config = {"cohorts": {"abide": {"source": "roi", "roi": {"parcellation": "CC200", "labels": str(labels)}},
                          "adhd": {"source": "roi", "roi": {"parcellation": "AAL", "labels": str(labels)}},
                          "demo": {"source": "simulated"}}}
    with pytest.raises(SemantoksError, match=r"different parcellations \(AAL: adhd; CC200: abide\)"):
        parcellation_id(config)
    del config["cohorts"]["adhd"]
    assert parcellation_id(config) == "CC200"
    with pytest.raises(SemantoksError, match=r"ROI cohort\(s\) abide use parcellation CC200 but cohort\(s\) demo"):
        check_mixed_sources(config, "CC200", "Schaefer100x7")
    check_mixed_sources(config, "Schaefer100x7", "Schaefer100x7")
    with pytest.raises(SemantoksError, match=r"cohorts.abide.roi.parcellation: not set"):
        parcellation_id({"cohorts": {"abide": {"source": "roi", "roi": {}}}})
    with pytest.raises(SemantoksError, match=r"FILL_IN: labels table not found; fix cohorts.abide.roi.labels"):
        parcellation_id({"cohorts": {"abide": {"source": "roi", "roi": {"parcellation": "CC200", "labels": "FILL_IN"}}}})


def test_a_file_of_another_parcellation_names_the_labels_table_not_orientation(abide_folder, tmp_path):
    # the dead end: with a mismatching table the advice was "remove the file or set roi.orientation"
    folder, _ = abide_folder
    labels = pd.DataFrame({"name": [f"P{i}" for i in range(7)], "network": "Vis"})
    with pytest.raises(SemantoksError) as raised:
        import_roi_timeseries(folder, PATTERN, "abide", "cc200", tmp_path / "out", tr=2.0, labels=labels)
    assert "no axis of 7 parcels, the labels table's row count" in str(raised.value)
    assert "orientation" not in str(raised.value)
    with pytest.raises(SemantoksError, match=r"cohorts.abide.roi.labels: not set"):
        import_roi_cohort("abide", {"files": str(folder), "pattern": PATTERN, "parcellation": "CC200", "tr": 2.0},
                          {}, tmp_path / "out")


def test_parcels_by_position_from_the_column_field(tmp_path):
    np.save(tmp_path / "sub01.npy", np.arange(12, dtype=float).reshape(4, 3) + 1)
    labels = pd.DataFrame({"name": ["C", "A"], "network": "Vis", "column": [3, 1]})
    [(parquet, _)] = import_roi_timeseries(tmp_path, r"sub(?P<subject>\d+)\.npy", "c", "P2", tmp_path / "out",
                                           tr=2, labels=labels)
    table = pq.read_table(parquet)
    assert table.schema.names == ["frame", "C", "A"]
    assert table["C"].to_pylist() == [3, 6, 9, 12] and table["A"].to_pylist() == [1, 4, 7, 10]


def test_nonfinite_values_are_missing_counted_and_too_few_parcels_excluded(tmp_path):
    folder = tmp_path / "rois"
    folder.mkdir()
    spiky, sparse = _series(4, 10), _series(5, 10)
    spiky[2, 1], spiky[3, 4], spiky[5, 0] = np.inf, -np.inf, np.nan
    sparse[:, :3] = np.nan
    np.save(folder / "sub-01.npy", spiky)
    np.save(folder / "sub-02.npy", sparse)
    outputs = import_roi_timeseries(folder, r"sub-(?P<subject>\d+)\.npy", "lab", "toy", tmp_path / "ts", tr=2.0)
    first, second = (json.loads(qc.read_text()) for _, qc in outputs)
    assert first["included"] and first["n_nonfinite_values"] == 3 and first["n_uncovered_parcels"] == 0
    table = pq.read_table(outputs[0][0])
    values = np.column_stack([table[n].to_numpy() for n in table.schema.names[1:]])
    assert np.isnan(values[[2, 3, 5], [1, 4, 0]]).all() and np.isfinite(values).sum() == 47
    assert not second["included"] and second["n_uncovered_parcels"] == 3 and second["n_nonfinite_values"] == 30
    assert second["reason"] == "Only 2 of 5 parcels hold data (at least 50% are needed); 30 values are NaN or inf."


def test_roi_files_whose_subjects_differ_only_in_leading_zeros_are_refused(tmp_path):
    # ROI files 0050958 and 50958 became two subjects with the same phenotype row
    folder = tmp_path / "rois"
    folder.mkdir()
    for label, seed in (("0050958", 1), ("50958", 2)):
        _write_1d(folder / f"NYU_{label}_rois_cc200.1D", _series(seed, 10))
    with pytest.raises(SemantoksError, match=r"subjects '0050958' \(.*NYU_0050958_rois_cc200.1D\) and '50958' "
                                             r"\(.*NYU_50958_rois_cc200.1D\) differ only in leading zeros"):
        import_roi_timeseries(folder, PATTERN, "abide", "cc200", tmp_path / "ts", tr=2.0)
    assert not (tmp_path / "ts").exists()


def test_numbered_headers_match_the_labels_table_by_value_or_name_whatever_its_row_order(tmp_path):
    # '#1 ... #N' headers were matched to the table by row order: a reordered table mislabelled parcels and networks
    folder = tmp_path / "rois"
    folder.mkdir()
    data = _series(6, 10, 4)
    np.savetxt(folder / "sub-01.1D", data, delimiter="\t", header="\t".join(f"#{i}" for i in range(1, 5)),
               comments="", fmt="%.4f")
    by_index = pd.DataFrame({"index": [3, 1, 4, 2], "name": ["C", "A", "D", "B"], "network": ["N3", "N1", "N4", "N2"]})
    by_name = pd.DataFrame({"name": ["3", "1", "4", "2"], "network": ["N3", "N1", "N4", "N2"]})
    for name, labels in (("index", by_index), ("name", by_name)):
        (parquet, _), = import_roi_timeseries(folder, r"sub-(?P<subject>\d+)", "lab", "toy", tmp_path / name, tr=2.0,
                                              labels=labels)
        table = pq.read_table(parquet)
        assert table.schema.names[1:] == labels["name"].tolist()
        values = np.column_stack([table[n].to_numpy() for n in table.schema.names[1:]])
        np.testing.assert_array_equal(values, data[:, [2, 0, 3, 1]].astype(np.float32))
    # no one-to-one match (a value missing from the table): refused, not paired by row order
    with pytest.raises(SemantoksError, match=r"column 1 is headed '1' but the labels table's parcel 1 is 'C', and the "
                                             r"header matches neither the table's names nor its index values"):
        import_roi_timeseries(folder, r"sub-(?P<subject>\d+)", "lab", "toy", tmp_path / "bad", tr=2.0,
                              labels=by_index.assign(index=[3, 7, 4, 2]))


def test_the_labels_table_is_checked_when_the_config_is_read(abide_folder, tmp_path):
    # a table without a network column, blank networks, or a row short was "valid" and failed at the first job
    folder, _ = abide_folder
    tables = {
        "short": "name\tnetwork\nA\tVis\nB\tVis\nC\tDefault\nD\tDefault\n",
        "blank": "name\tnetwork\nA\t\nB\t\nC\t\nD\t\nE\t\n",
        "nonet": "name\nA\nB\nC\nD\nE\n",
    }
    expected = {
        "short": r"short.tsv: 4 rows but the time-series files have 5 parcels",
        "blank": r"blank.tsv: the network column is blank for every parcel, so the model would see one network",
        "nonet": r"nonet.tsv: no network column; add one .* or set cohorts.abide.roi.dseg",
    }
    for name, text in tables.items():
        (tmp_path / f"{name}.tsv").write_text(text)
        roi = {"files": str(folder), "pattern": PATTERN, "parcellation": "CC200", "labels": str(tmp_path / f"{name}.tsv")}
        with pytest.raises(SemantoksError, match=expected[name]):
            parcellation_id({"cohorts": {"abide": {"source": "roi", "roi": roi}}})
    (tmp_path / "good.tsv").write_text("name\tnetwork\nA\tVis\nB\tVis\nC\t\nD\tDefault\nE\tDefault\n")
    roi = {"files": str(folder), "pattern": PATTERN, "parcellation": "CC200", "labels": str(tmp_path / "good.tsv")}
    assert parcellation_id({"cohorts": {"abide": {"source": "roi", "roi": roi}}}) == "CC200"


def test_a_hemisphere_column_can_mark_midline_parcels_as_the_projects_labels_tsv_does(tmp_path):
    from semantoks.cohorts.roi_parcellation import read_roi_labels

    labels = tmp_path / "labels.tsv"
    labels.write_text("index\tname\tnetwork\themisphere\n1\tA\tVis\tL\n2\tVermis\tCont\tunknown\n3\tB\tVis\tright\n"
                      "4\tC\tVis\tmidline\n")
    table, _ = read_roi_labels(labels, {})
    assert table["hemisphere"].tolist() == ["L", "unknown", "R", "unknown"]
    labels.write_text("name\tnetwork\themisphere\nA\tVis\tX\n")
    with pytest.raises(SemantoksError, match=r"hemisphere 'X' is not L or R; .*or unknown, midline or blank"):
        read_roi_labels(labels, {})


def test_scans_shorter_than_roi_min_seconds_are_excluded_with_their_reason(tmp_path):
    # a 30 s ROI scan was included; the fMRIPrep route skips runs below its minimum length
    folder = tmp_path / "rois"
    folder.mkdir()
    np.save(folder / "sub-01.npy", _series(7, 15))
    np.save(folder / "sub-02.npy", _series(8, 60))
    labels = tmp_path / "labels.tsv"
    labels.write_text("name\tnetwork\n" + "".join(f"P{i}\tVis\n" for i in range(5)))
    roi = {"files": str(folder), "pattern": r"sub-(?P<subject>\d+)\.npy", "parcellation": "Toy", "labels": str(labels),
           "tr": 2.0}
    first, second = (json.loads(qc.read_text()) for _, qc in import_roi_cohort("lab", roi, {}, tmp_path / "ts"))
    assert not first["included"] and first["reason"] == "Only 15 volumes (30 s), below the 120 s of roi.min_seconds."
    assert second["included"] and second["n_frames"] == 60
    outputs = import_roi_cohort("lab", {**roi, "min_seconds": 20}, {}, tmp_path / "ts")
    assert json.loads(outputs[0][1].read_text())["included"]


def test_a_file_stored_in_the_other_orientation_is_named_as_such(tmp_path):
    # the message said "shape (5, 12) has no axis of 5 parcels"
    folder = tmp_path / "rois"
    folder.mkdir()
    for subject, seed in (("01", 1), ("02", 2)):
        np.save(folder / f"sub-{subject}.npy", _series(seed, 12))
    np.save(folder / "sub-03.npy", _series(3, 12).T)
    labels = pd.DataFrame({"name": [f"P{i}" for i in range(5)], "network": "Vis"})
    with pytest.raises(SemantoksError, match=r"sub-03.npy: shape \(5, 12\) holds the 5 parcels on the other axis than "
                                             r"the other files \(frames x parcels\); save it as frames x parcels"):
        import_roi_timeseries(folder, r"sub-(?P<subject>\d+)", "lab", "toy", tmp_path / "ts", tr=2.0, labels=labels)


def test_only_the_phenotype_cells_the_import_reads_decide_its_reruns(tmp_path):
    # a byte-identical copy of the table, or an edited age cell, reran import, dataset and pretraining (27 jobs)
    from semantoks.cohorts.roi_import import import_phenotype_values

    table = tmp_path / "p.tsv"
    table.write_text("participant_id\tsite\tage\nsub-01\tNYU\t20\nsub-02\tUM\t30\n")
    roi = {"site_column": "site", "tr_by_site": {"NYU": 2.0, "UM": 2.5}}
    digest = import_phenotype_values(roi, {"table": str(table)})
    copy = tmp_path / "copy.tsv"
    copy.write_bytes(table.read_bytes())
    assert import_phenotype_values(roi, {"table": str(copy)}) == digest
    table.write_text("participant_id\tsite\tage\nsub-01\tNYU\t21\nsub-02\tUM\t30\n")
    assert import_phenotype_values(roi, {"table": str(table)}) == digest
    table.write_text("participant_id\tsite\tage\nsub-01\tUM\t21\nsub-02\tUM\t30\n")
    assert import_phenotype_values(roi, {"table": str(table)}) != digest
    assert import_phenotype_values({"tr": 2.0}, {"table": str(table)}) is None
