import json
import tracemalloc

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from semantoks.dataset import (
    ScanReader,
    build_partition,
    iter_scans,
    open_timeseries,
    read_atlas_metadata,
    read_manifest,
    read_manifest_file,
    read_scans,
    scan_index,
    write_dataset_description,
)
from semantoks.errors import SemantoksError

ATLAS = "Toy6x2"
STRATEGY = {"name": "simple", "motion": "basic", "high_pass": 0.01, "fd_threshold": None}


def toy_labels(n_parcels=6, prefix="Toy"):
    networks = ["Vis", "Vis", "Default", "Default", "SomMot", "Vis"][:n_parcels]
    networks += ["Cont"] * (n_parcels - len(networks))
    return pd.DataFrame(
        {
            "index": np.arange(1, n_parcels + 1),
            "name": [f"{prefix}_{'LH' if i % 2 == 0 else 'RH'}_{i}" for i in range(n_parcels)],
            "network": networks,
            "hemisphere": ["L" if i % 2 == 0 else "R" for i in range(n_parcels)],
        }
    )


def write_run_output(folder, cohort, subject, data, labels, session=None, run=None, task="rest", tr=2.0,
                     included=True, reason=None, coverage=None, atlas=ATLAS, qc_overrides=None):
    """Write a per-run Parquet + QC JSON exactly as docs/design.md 'Per-run outputs' describes."""
    entities = [f"sub-{subject}"] + ([f"ses-{session}"] if session else []) + [f"task-{task}"]
    entities += [f"run-{run}"] if run else []
    scan_id = "_".join(entities)
    stem = f"{scan_id}_space-MNI152NLin2009cAsym_atlas-{atlas}_desc-simple"
    run_dir = folder / cohort / f"sub-{subject}" / (f"ses-{session}" if session else "")
    run_dir.mkdir(parents=True, exist_ok=True)
    names = list(labels["name"])
    data = np.zeros((0, len(names)), np.float32) if not included else np.asarray(data, np.float32)
    coverage = [1.0] * len(names) if coverage is None else coverage
    qc = {
        "cohort": cohort, "subject": subject, "session": session, "task": task, "run": run,
        "scan_id": scan_id, "space": "MNI152NLin2009cAsym", "atlas": atlas, "strategy": "simple",
        "tr": tr, "n_volumes": data.shape[0] + 4, "n_dummy": 2, "n_frames": data.shape[0],
        "mean_fd": 0.12, "max_fd": 0.4, "pct_censored": 2 / (data.shape[0] + 4) * 100,
        "included": included, "reason": reason, "parcel_coverage": coverage,
        "source_bold": f"/bids/{scan_id}_bold.nii.gz",
    }
    qc.update(qc_overrides or {})
    columns = {"frame": pa.array(np.arange(2, 2 + data.shape[0], dtype=np.int32))}
    columns.update({name: pa.array(data[:, j]) for j, name in enumerate(names)})
    table = pa.table(columns).replace_schema_metadata({"semantoks": json.dumps(qc)})
    parquet_path = run_dir / f"{stem}_timeseries.parquet"
    qc_path = run_dir / f"{stem}_qc.json"
    pq.write_table(table, parquet_path)
    qc_path.write_text(json.dumps(qc))
    return parquet_path, qc_path


def make_cohort(folder, cohort, n_scans, labels, rng, frames=(20, 40), **kwargs):
    runs, truth = [], {}
    for i in range(n_scans):
        data = rng.standard_normal((int(rng.integers(*frames)), len(labels))).astype(np.float32)
        subject = f"{i // 2:02d}"
        paths = write_run_output(folder, cohort, subject, data, labels, session=str(i % 2 + 1), run="1", **kwargs)
        runs.append(paths)
        truth[f"sub-{subject}_ses-{i % 2 + 1}_task-rest_run-1"] = data
    return runs, truth


def build(runs, root, cohort="demo", labels=None, **kwargs):
    return build_partition(runs, root, cohort, ATLAS, toy_labels() if labels is None else labels,
                           "MNI152NLin2009cAsym", STRATEGY, "0.1.0", "abc123", **kwargs)


def bits(array):
    return np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)


def test_round_trip_is_bit_exact_and_keeps_nan_parcels(tmp_path):
    labels = toy_labels()
    rng = np.random.default_rng(0)
    with_nan = rng.standard_normal((30, 6)).astype(np.float32)
    with_nan[:, 4] = np.nan
    tiny = np.array([[np.float32(1e-45), -0.0, np.inf, 3.4e38, -1.5, 2.0]] * 3, dtype=np.float32)
    runs = [
        write_run_output(tmp_path / "runs", "demo", "01", with_nan, labels, session="1", run="1", tr=0.72,
                         coverage=[1, 1, 1, 0.5, 0.0, 1]),
        write_run_output(tmp_path / "runs", "demo", "02", tiny, labels, tr=2.0),
    ]
    build(runs, tmp_path / "ds")

    scans = {scan.scan_id: scan for scan in iter_scans(tmp_path / "ds", ATLAS)}
    assert sorted(scans) == ["sub-01_ses-1_task-rest_run-1", "sub-02_task-rest"]
    first, second = scans["sub-01_ses-1_task-rest_run-1"], scans["sub-02_task-rest"]
    assert first.data.dtype == np.float32 and first.data.shape == (30, 6)
    assert np.array_equal(bits(first.data), bits(with_nan))
    assert np.isnan(first.data[:, 4]).all()
    # +-inf is stored as missing (NaN) and counted in the manifest
    assert np.array_equal(bits(second.data), bits(np.where(np.isinf(tiny), np.float32(np.nan), tiny)))
    assert read_manifest(tmp_path / "ds", ATLAS)["n_nonfinite_values"].tolist() == [30, 3]
    assert np.array_equal(first.coverage, np.array([1, 1, 1, 0.5, 0.0, 1], np.float32))
    assert (first.cohort, first.subject, first.session, first.task, first.run, first.tr) == (
        "demo", "01", "1", "rest", "1", 0.72)
    assert (second.session, second.run, second.tr) == (None, None, 2.0)


def test_skipped_scans_are_only_in_the_manifest_with_their_reason(tmp_path):
    labels = toy_labels()
    rng = np.random.default_rng(1)
    reason = "Only 12 frames remain after censoring; at least 50 are required."
    runs = [
        write_run_output(tmp_path / "runs", "demo", "01", rng.standard_normal((25, 6)), labels),
        write_run_output(tmp_path / "runs", "demo", "02", None, labels, included=False, reason=reason),
    ]
    summary = build(runs, tmp_path / "ds")

    assert (summary["n_scans"], summary["n_included"]) == (2, 1)
    assert [scan.scan_id for scan in iter_scans(tmp_path / "ds", ATLAS)] == ["sub-01_task-rest"]
    manifest = read_manifest(tmp_path / "ds", ATLAS).set_index("scan_id")
    assert list(manifest.columns[:2]) == ["atlas", "cohort"]
    assert manifest.loc["sub-02_task-rest", "reason"] == reason
    assert not manifest.loc["sub-02_task-rest", "included"]
    assert manifest.loc["sub-01_task-rest", "included"] and manifest.loc["sub-01_task-rest", "n_frames"] == 25
    assert read_manifest_file(summary["manifest"])["scan_id"].tolist() == ["sub-01_task-rest", "sub-02_task-rest"]
    tsv = pd.read_csv(summary["manifest"].parent / "_manifest.tsv", sep="\t", keep_default_na=False)
    assert set(tsv["scan_id"]) == {"sub-01_task-rest", "sub-02_task-rest"}
    assert tsv.set_index("scan_id").loc["sub-01_task-rest", "reason"] == "n/a"
    assert (tsv["cohort"] == "demo").all() and (tsv["atlas"] == ATLAS).all()


def test_partitions_are_readable_by_pyarrow_and_pandas_with_filters(tmp_path):
    rng = np.random.default_rng(2)
    labels = toy_labels()
    runs_a, _ = make_cohort(tmp_path / "runs", "alpha", 3, labels, rng)
    runs_b, truth_b = make_cohort(tmp_path / "runs", "beta", 4, labels, rng)
    build(runs_a, tmp_path / "ds", cohort="alpha")
    build(runs_b, tmp_path / "ds", cohort="beta")

    table = ds.dataset(tmp_path / "ds" / "timeseries", partitioning="hive").to_table()
    assert table.num_rows == 7
    assert set(table.column("cohort").to_pylist()) == {"alpha", "beta"}
    assert set(table.column("atlas").to_pylist()) == {ATLAS}

    frame = pd.read_parquet(tmp_path / "ds" / "timeseries", filters=[("cohort", "==", "beta")])
    assert sorted(frame["scan_id"]) == sorted(truth_b)
    row = frame.set_index("scan_id").loc["sub-01_ses-1_task-rest_run-1"]
    assert np.array_equal(np.asarray(row["timeseries"], np.float32), truth_b[row.name].ravel())

    assert open_timeseries(tmp_path / "ds", ATLAS, cohorts=["alpha"]).count_rows() == 3
    index = scan_index(tmp_path / "ds", ATLAS)
    assert len(index) == 7 and "timeseries" not in index.columns
    assert dict(zip(index["scan_id"][index["cohort"] == "beta"], index["n_frames"][index["cohort"] == "beta"])) == {
        scan_id: data.shape[0] for scan_id, data in truth_b.items()}


def test_schema_metadata_is_complete(tmp_path):
    rng = np.random.default_rng(3)
    labels = toy_labels()
    runs, _ = make_cohort(tmp_path / "runs", "demo", 2, labels, rng)
    runs.append(write_run_output(tmp_path / "runs", "demo", "09", rng.standard_normal((20, 6)), labels, tr=0.8))
    build(runs, tmp_path / "ds")

    schema = ds.dataset(tmp_path / "ds" / "timeseries", partitioning="hive").schema
    meta = json.loads(pq.read_schema(tmp_path / "ds/timeseries" / f"atlas={ATLAS}/cohort=demo/part-0.parquet")
                      .metadata[b"semantoks"])
    assert set(meta) >= {"atlas_id", "space", "labels", "networks", "tr", "strategy", "pipeline_version",
                         "config_hash", "created", "n_scans"}
    assert meta["atlas_id"] == ATLAS and meta["space"] == "MNI152NLin2009cAsym"
    assert meta["labels"] == labels.to_dict(orient="records")
    assert meta["networks"] == ["Vis", "Default", "SomMot"]
    assert meta["tr"] == [0.8, 2.0]
    assert meta["strategy"] == STRATEGY
    assert (meta["pipeline_version"], meta["config_hash"], meta["n_scans"]) == ("0.1.0", "abc123", 3)
    assert pd.Timestamp(meta["created"]).tzinfo is not None
    assert schema.field("timeseries").type.value_type == pa.float32()
    assert "atlas" not in pq.read_schema(tmp_path / "ds/timeseries" / f"atlas={ATLAS}/cohort=demo/part-0.parquet").names

    merged = read_atlas_metadata(tmp_path / "ds", ATLAS)
    assert merged["labels"] == meta["labels"] and merged["tr"] == [0.8, 2.0] and merged["strategy"] == STRATEGY
    assert set(merged["cohorts"]) == {"demo"}


def test_cohorts_disagreeing_on_labels_are_an_error(tmp_path):
    rng = np.random.default_rng(4)
    labels = toy_labels()
    renamed = labels.assign(network=["Vis"] * 6)
    runs_a, _ = make_cohort(tmp_path / "runs", "alpha", 1, labels, rng)
    runs_b, _ = make_cohort(tmp_path / "runs", "beta", 1, labels, rng)
    build(runs_a, tmp_path / "ds", cohort="alpha")
    build(runs_b, tmp_path / "ds", cohort="beta", labels=renamed)
    with pytest.raises(SemantoksError, match="cohort=beta/part-0.parquet: its Toy6x2 parcels differ"):
        read_atlas_metadata(tmp_path / "ds", ATLAS)


def test_mismatched_parcel_columns_name_the_file_and_leave_nothing(tmp_path):
    rng = np.random.default_rng(5)
    labels = toy_labels()
    runs, _ = make_cohort(tmp_path / "runs", "demo", 3, labels, rng)
    other = write_run_output(tmp_path / "runs", "demo", "77", rng.standard_normal((20, 6)), toy_labels(prefix="Other"))
    runs.append(other)
    with pytest.raises(SemantoksError) as raised:
        build(runs, tmp_path / "ds")
    assert str(other[0]) in str(raised.value)
    assert "are not those of Toy6x2's labels table (first: column 1 is 'Other_LH_0'" in str(raised.value)
    assert "delete it and rerun snakemake" in str(raised.value)
    assert not (tmp_path / "ds").exists() or not [p for p in (tmp_path / "ds").rglob("*") if p.is_file()]


def test_imported_runs_name_the_fix_that_reruns_the_import(tmp_path):
    # deleting an imported file does not rerun an import (its outputs are listed, not tracked): the advice must
    # force the import instead of looping on "delete it and rerun"
    rng = np.random.default_rng(5)
    runs, _ = make_cohort(tmp_path / "runs", "demo", 2, toy_labels(), rng, qc_overrides={"strategy": "imported"})
    runs.append(write_run_output(tmp_path / "runs", "demo", "77", rng.standard_normal((20, 6)),
                                 toy_labels(prefix="Other"), qc_overrides={"strategy": "imported"}))
    with pytest.raises(SemantoksError, match=r"rerun the import with `snakemake --forcerun import_roi_timeseries`"):
        build(runs, tmp_path / "ds", written_by="import_roi_timeseries")
    runs[0][0].unlink()
    with pytest.raises(SemantoksError, match=r"time series file is missing; rerun the import with"):
        build(runs[:2], tmp_path / "ds", written_by="import_roi_timeseries")


def test_strategy_provenance_comes_from_the_runs(tmp_path):
    # imported ROI series were not denoised by us: the configured preset must not be recorded for them
    rng = np.random.default_rng(8)
    runs, _ = make_cohort(tmp_path / "runs", "demo", 2, toy_labels(), rng, qc_overrides={"strategy": "imported"})
    build(runs, tmp_path / "ds")
    assert read_atlas_metadata(tmp_path / "ds", ATLAS)["strategy"] == {"name": "imported"}
    mixed, _ = make_cohort(tmp_path / "mixed", "demo", 2, toy_labels(), rng)
    mixed.append(write_run_output(tmp_path / "mixed", "demo", "09", rng.standard_normal((20, 6)), toy_labels(),
                                  qc_overrides={"strategy": "imported"}))
    with pytest.raises(SemantoksError, match=r"different strategies \(imported, simple\)"):
        build(mixed, tmp_path / "ds2")


def test_write_failure_midway_leaves_no_partition_or_temp_file(tmp_path):
    rng = np.random.default_rng(6)
    labels = toy_labels()
    runs, _ = make_cohort(tmp_path / "runs", "demo", 4, labels, rng)
    # a broken page header: the footer is fine, so the failure comes while writing, not while checking
    damaged = bytearray(runs[2][0].read_bytes())
    damaged[4:40] = b"\xff" * 36
    runs[2][0].write_bytes(damaged)
    with pytest.raises(SemantoksError, match=f"{runs[2][0]}: cannot be read"):
        build(runs, tmp_path / "ds")
    assert (tmp_path / "ds").exists()
    assert not [p for p in (tmp_path / "ds").rglob("*") if p.is_file()]


def test_duplicate_scan_ids_are_an_error(tmp_path):
    rng = np.random.default_rng(7)
    labels = toy_labels()
    first = write_run_output(tmp_path / "a", "demo", "01", rng.standard_normal((20, 6)), labels)
    second = write_run_output(tmp_path / "b", "demo", "01", rng.standard_normal((20, 6)), labels)
    with pytest.raises(SemantoksError, match="scan id sub-01_task-rest is also produced by"):
        build([first, second], tmp_path / "ds")


def test_qc_frame_count_disagreeing_with_the_table_is_an_error(tmp_path):
    labels = toy_labels()
    run = write_run_output(tmp_path / "runs", "demo", "01", np.ones((20, 6)), labels, qc_overrides={"n_frames": 25})
    with pytest.raises(SemantoksError, match="has 20 frames but its QC record says 25"):
        build([run], tmp_path / "ds")


def test_entity_prefixes_in_qc_records_are_stripped(tmp_path):
    labels = toy_labels()
    run = write_run_output(tmp_path / "runs", "demo", "01", np.ones((20, 6)), labels, session="2",
                           qc_overrides={"subject": "sub-01", "session": "ses-2", "run": ""})
    build([run], tmp_path / "ds")
    (scan,) = iter_scans(tmp_path / "ds", ATLAS)
    assert (scan.subject, scan.session, scan.run) == ("01", "2", None)


def test_streaming_yields_every_scan_once_in_row_groups_of_bounded_size(tmp_path):
    rng = np.random.default_rng(8)
    labels = toy_labels()
    runs, truth = make_cohort(tmp_path / "runs", "demo", 40, labels, rng, frames=(100, 200))
    row_group_bytes = 8 * 150 * 6 * 4
    build(runs, tmp_path / "ds", row_group_bytes=row_group_bytes)

    footer = pq.read_metadata(tmp_path / "ds/timeseries" / f"atlas={ATLAS}/cohort=demo/part-0.parquet")
    assert footer.num_row_groups >= 4
    group_sizes = [footer.row_group(i).num_rows for i in range(footer.num_row_groups)]
    assert max(group_sizes) <= row_group_bytes // (100 * 6 * 4) + 1 and sum(group_sizes) == 40

    seen = []
    for scan in iter_scans(tmp_path / "ds", ATLAS, batch_size=16):
        assert scan.data.shape == truth[scan.scan_id].shape
        assert np.array_equal(scan.data, truth[scan.scan_id])
        assert not scan.data.flags.writeable
        seen.append(scan.scan_id)
    assert sorted(seen) == sorted(truth)


def test_iter_scans_filter_and_column_choice(tmp_path):
    rng = np.random.default_rng(9)
    runs, truth = make_cohort(tmp_path / "runs", "demo", 6, toy_labels(), rng)
    build(runs, tmp_path / "ds")
    scans = list(iter_scans(tmp_path / "ds", ATLAS, columns=["parcel_coverage"],
                            filter=pc.field("subject").isin(["00", "02"])))
    assert sorted(scan.subject for scan in scans) == ["00", "00", "02", "02"]
    assert all(scan.data is None and scan.coverage.shape == (6,) for scan in scans)


def test_read_scans_random_access_returns_keys_in_order(tmp_path):
    rng = np.random.default_rng(10)
    labels = toy_labels()
    runs_a, truth_a = make_cohort(tmp_path / "runs", "alpha", 12, labels, rng)
    runs_b, truth_b = make_cohort(tmp_path / "runs", "beta", 5, labels, rng)
    build(runs_a, tmp_path / "ds", cohort="alpha", row_group_bytes=3000)
    build(runs_b, tmp_path / "ds", cohort="beta", row_group_bytes=3000)
    truth = {("alpha", k): v for k, v in truth_a.items()} | {("beta", k): v for k, v in truth_b.items()}
    keys = [list(truth)[i] for i in rng.permutation(len(truth))[:9]]

    scans = read_scans(tmp_path / "ds", ATLAS, keys)
    assert [scan.key for scan in scans] == keys
    for scan in scans:
        assert np.array_equal(bits(scan.data), bits(truth[scan.key]))
    reader = ScanReader(tmp_path / "ds", ATLAS)
    footers = {cohort: pq.read_metadata(path) for cohort, path in reader.files.items()}
    for cohort, group in reader.index.groupby("cohort", sort=False):
        sizes = [footers[cohort].row_group(i).num_rows for i in range(footers[cohort].num_row_groups)]
        assert np.bincount(group["row_group"]).tolist() == sizes
    assert sum(footer.num_row_groups for footer in footers.values()) > 2
    with pytest.raises(SemantoksError, match="scan sub-99_task-rest of cohort alpha is not in"):
        read_scans(tmp_path / "ds", ATLAS, [("alpha", "sub-99_task-rest")])


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(SemantoksError, match="no timeseries partitions for atlas Toy6x2"):
        list(iter_scans(tmp_path, ATLAS))


def test_dataset_description_is_a_bids_derivative(tmp_path):
    path = write_dataset_description(tmp_path, "0.1.0", code_url="https://example.org/semantoks",
                                     source_datasets=[{"URL": "file:///bids"}])
    description = json.loads(path.read_text())
    assert description["DatasetType"] == "derivative" and description["BIDSVersion"]
    assert description["GeneratedBy"] == [{"Name": "semantoks", "Version": "0.1.0",
                                           "CodeURL": "https://example.org/semantoks"}]
    assert description["SourceDatasets"] == [{"URL": "file:///bids"}]


def test_building_streams_runs_instead_of_holding_the_cohort(tmp_path):
    rng = np.random.default_rng(11)
    labels = toy_labels(400)
    one_run = np.float32(rng.standard_normal((300, 400)))
    runs = [write_run_output(tmp_path / "runs", "demo", f"{i:03d}", one_run + i, labels) for i in range(50)]
    run_bytes, total_bytes = one_run.nbytes, one_run.nbytes * len(runs)

    # a proxy counts this build's Arrow allocations; it must outlive them, so it lives to the test's end
    arrow_pool = pa.proxy_memory_pool(pa.default_memory_pool())
    previous_pool = pa.default_memory_pool()
    pa.set_memory_pool(arrow_pool)
    tracemalloc.start()
    try:
        build(runs, tmp_path / "ds", labels=labels, row_group_bytes=2 * run_bytes)
        numpy_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(previous_pool)
    peak = numpy_peak + arrow_pool.max_memory()
    # row groups of two runs: about eight runs' worth at the peak, whatever the cohort size
    assert peak < 12 * run_bytes < total_bytes / 4
    assert open_timeseries(tmp_path / "ds", ATLAS).count_rows() == 50


def test_the_same_scan_in_two_cohorts_is_refused_naming_both_files(tmp_path):
    # overlapping releases (ABIDE I and II): copies of one person's files under two cohort names leak across splits
    rng = np.random.default_rng(12)
    labels = toy_labels()
    runs_a, truth = make_cohort(tmp_path / "runs", "alpha", 2, labels, rng)
    copied = truth["sub-00_ses-1_task-rest_run-1"]
    runs_b = [write_run_output(tmp_path / "runs", "beta", "77", copied, labels,
                               qc_overrides={"source_bold": "/copy/sub-77_bold.nii.gz"}),
              write_run_output(tmp_path / "runs", "beta", "78", rng.standard_normal((20, 6)), labels)]
    build(runs_a, tmp_path / "ds", cohort="alpha")
    build(runs_b, tmp_path / "ds", cohort="beta")
    message = r"/copy/sub-77_bold.nii.gz \(cohort beta, sub-77_task-rest\) and /bids/sub-00_ses-1_task-rest_run-1_bold"
    for read in (lambda: scan_index(tmp_path / "ds", ATLAS), lambda: list(iter_scans(tmp_path / "ds", ATLAS))):
        with pytest.raises(SemantoksError, match=message + ".* hold exactly the same values"):
            read()
    assert len(scan_index(tmp_path / "ds", ATLAS, cohorts=["beta"])) == 2
    fingerprints = read_manifest(tmp_path / "ds", ATLAS)["fingerprint"]
    assert fingerprints.notna().all() and fingerprints.nunique() == 3


def test_the_same_values_under_two_subjects_of_one_cohort_are_refused(tmp_path):
    # one scan imported twice under two names
    rng = np.random.default_rng(13)
    labels = toy_labels()
    data = rng.standard_normal((20, 6))
    runs = [write_run_output(tmp_path / "runs", "demo", label, data, labels) for label in ("07", "08")]
    with pytest.raises(SemantoksError, match=r"sub-08_task-rest_bold.nii.gz \(cohort demo, sub-08_task-rest\) and "
                                             r"/bids/sub-07_task-rest_bold.nii.gz .*same values"):
        build(runs, tmp_path / "ds")
    assert not [p for p in (tmp_path / "ds").rglob("*") if p.is_file()]


def test_subjects_differing_only_in_leading_zeros_are_refused(tmp_path):
    # '01' and '001' share a subject key: sub-01's phenotype row went to 001
    rng = np.random.default_rng(14)
    labels = toy_labels()
    runs = [write_run_output(tmp_path / "runs", "demo", label, rng.standard_normal((20, 6)), labels)
            for label in ("01", "001")]
    with pytest.raises(SemantoksError, match=r"cohort demo: subjects '001' \(.*sub-001_task-rest.*_qc.json\) and '01' "
                                             r"\(.*\) differ only in leading zeros"):
        build(runs, tmp_path / "ds")


def test_a_run_with_most_parcels_uncovered_is_left_out_with_its_reason(tmp_path):
    # the encoder refuses a scan with under half its parcels measured: it must not reach pretraining or embedding
    rng = np.random.default_rng(15)
    labels = toy_labels()
    sparse = rng.standard_normal((20, 6))
    sparse[:, 2:] = np.nan
    runs = [write_run_output(tmp_path / "runs", "demo", "01", rng.standard_normal((20, 6)), labels),
            write_run_output(tmp_path / "runs", "demo", "02", sparse, labels, coverage=[1, 1, 0, 0, 0, 0])]
    summary = build(runs, tmp_path / "ds")
    assert summary["n_included"] == 1 and [scan.subject for scan in iter_scans(tmp_path / "ds", ATLAS)] == ["01"]
    left_out = read_manifest(tmp_path / "ds", ATLAS).set_index("subject").loc["02"]
    assert not left_out["included"]
    assert left_out["reason"] == "Only 2 of 6 parcels are covered (at least 50% are needed)."
