import json
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from semantoks.errors import SemantoksError
from semantoks.phenotypes import (
    build_phenotype_table,
    phenotype_table_path,
    read_phenotype_table,
    read_phenotypes,
    write_phenotypes,
)

DECLARED = {"age": "continuous", "sex": "binary", "group": "categorical"}


def write_participants(path, rows, header=("participant_id", "age", "sex", "group"), separator="\t"):
    path.write_text("\n".join(separator.join(map(str, row)) for row in [header, *rows]) + "\n")
    return path


@pytest.fixture
def participants(tmp_path):
    return write_participants(tmp_path / "participants.tsv", [
        ("sub-01", "23.5", "F", "control"),
        ("sub-02", "n/a", "M", "patient"),
        ("03", "41", "", "patient"),
        ("sub-04", "NA", "F", "n/a"),
        ("sub-05", "30", "M", "sibling"),
    ])


def test_types_missing_values_and_subject_labels(participants):
    frame, report = read_phenotypes(participants, "participant_id", DECLARED, subjects=["01", "02", "03", "04", "05"])
    assert list(frame["subject"]) == ["01", "02", "03", "04", "05"]
    assert frame["age"].dtype == np.float64
    assert frame["age"].iloc[0] == 23.5 and frame["age"].iloc[2] == 41.0
    assert frame["age"].isna().tolist() == [False, True, False, True, False]
    assert isinstance(frame["sex"].dtype, pd.CategoricalDtype)
    assert list(frame["sex"].cat.categories) == ["F", "M"] and pd.isna(frame["sex"].iloc[2])
    assert list(frame["group"].cat.categories) == ["control", "patient", "sibling"] and pd.isna(frame["group"].iloc[3])
    assert report["missing"] == {"age": 2, "sex": 1, "group": 1}
    assert report["phenotype_only"] == [] and report["imaging_only"] == []
    assert frame.attrs["phenotype_types"] == DECLARED


def test_subjects_on_one_side_only_are_reported_not_fatal(participants, caplog):
    with caplog.at_level(logging.WARNING):
        frame, report = read_phenotypes(participants, "participant_id", DECLARED, subjects=["sub-01", "02", "09", "10"])
    assert report["phenotype_only"] == ["03", "04", "05"]
    assert report["imaging_only"] == ["09", "10"]
    assert len(frame) == 5
    assert "3 subject(s) have phenotypes but no imaging" in caplog.text
    assert "2 imaging subject(s) have no phenotype row" in caplog.text


def test_written_partition_is_typed_and_round_trips(participants, tmp_path):
    path, report = build_phenotype_table(participants, "participant_id", DECLARED, ["01", "02"], "demo",
                                         tmp_path / "ds")
    assert path == tmp_path / "ds" / "phenotypes" / "cohort=demo" / "part-0.parquet"
    schema = pq.read_schema(path)
    assert schema.field("subject").type == pa.string()
    assert schema.field("age").type == pa.float64()
    assert schema.field("sex").type == pa.dictionary(pa.int32(), pa.string())
    assert schema.field("group").type == pa.dictionary(pa.int32(), pa.string())
    assert json.loads(schema.metadata[b"semantoks.phenotype_types"]) == DECLARED
    assert report["imaging_only"] == [] and report["phenotype_only"] == ["03", "04", "05"]
    assert not [p for p in path.parent.iterdir() if p.name != "part-0.parquet"]

    table = read_phenotype_table(tmp_path / "ds")
    assert list(table.columns) == ["cohort", "subject", "age", "sex", "group"]
    assert (table["cohort"] == "demo").all()
    assert table["age"].isna().sum() == 2 and table.loc[table["subject"] == "05", "age"].item() == 30.0
    assert pd.isna(table.loc[table["subject"] == "04", "group"].item())


def test_cohorts_are_combined_and_must_agree_on_types(tmp_path):
    first = write_participants(tmp_path / "a.tsv", [("sub-01", "20", "F", "x")])
    second = write_participants(tmp_path / "b.csv", [("01", "31", "M", "y"), ("02", "44", "M", "x")], separator=",")
    for cohort, path in [("alpha", first), ("beta", second)]:
        frame, _ = read_phenotypes(path, "participant_id", DECLARED)
        write_phenotypes(frame, phenotype_table_path(tmp_path / "ds", cohort))
    table = read_phenotype_table(tmp_path / "ds")
    assert sorted(zip(table["cohort"], table["subject"])) == [("alpha", "01"), ("beta", "01"), ("beta", "02")]
    assert sorted(table["sex"].cat.categories) == ["F", "M"]
    assert list(read_phenotype_table(tmp_path / "ds", cohorts=["beta"])["subject"]) == ["01", "02"]

    retyped = dict(DECLARED, group="binary")
    frame, _ = read_phenotypes(first, "participant_id", retyped)
    write_phenotypes(frame, phenotype_table_path(tmp_path / "ds", "gamma"), retyped)
    with pytest.raises(SemantoksError, match="column 'group' is binary here but categorical in"):
        read_phenotype_table(tmp_path / "ds")


def test_cohort_without_phenotype_file_gets_its_imaging_subjects_all_missing(tmp_path):
    frame, report = read_phenotypes(None, "participant_id", DECLARED, subjects=["sub-02", "01"], cohort="demo")
    assert list(frame["subject"]) == ["01", "02"]
    assert frame["age"].isna().all() and frame["sex"].isna().all()
    assert report["missing"] == {"age": 2, "sex": 2, "group": 2} and report["source"] is None
    path = write_phenotypes(frame, phenotype_table_path(tmp_path, "demo"))
    assert read_phenotype_table(tmp_path)["subject"].tolist() == ["01", "02"]
    assert pq.read_schema(path).field("sex").type == pa.dictionary(pa.int32(), pa.string())


def test_missing_file(tmp_path):
    with pytest.raises(SemantoksError, match="nope.tsv: phenotype file not found; fix the phenotype path"):
        read_phenotypes(tmp_path / "nope.tsv", "participant_id", DECLARED)


def test_participant_column_absent(participants):
    with pytest.raises(SemantoksError, match=r"has no participant column 'subject_id' \(columns: participant_id, age"):
        read_phenotypes(participants, "subject_id", DECLARED)


def test_declared_column_absent(participants):
    with pytest.raises(SemantoksError, match="participants.tsv: declared phenotype column.s. 'iq' not found"):
        read_phenotypes(participants, "participant_id", {"age": "continuous", "iq": "continuous"})


def test_text_in_continuous_column_names_file_row_and_value(tmp_path):
    path = write_participants(tmp_path / "p.tsv", [("01", "20", "F", "a")] * 1 + [
        (f"{i:02d}", "30", "M", "a") for i in range(2, 6)] + [("06", "forty", "F", "b")])
    with pytest.raises(SemantoksError) as raised:
        read_phenotypes(path, "participant_id", DECLARED)
    assert str(raised.value) == (f"{path}: column 'age' is continuous but row 7 has 'forty'; "
                                 "fix the value or declare it categorical.")


def test_infinite_value_in_continuous_column(tmp_path):
    path = write_participants(tmp_path / "p.tsv", [("01", "inf", "F", "a")])
    with pytest.raises(SemantoksError, match="row 2 has 'inf'"):
        read_phenotypes(path, "participant_id", DECLARED)


def test_binary_column_with_three_values(participants):
    with pytest.raises(SemantoksError, match="'group' is declared binary but has 3 values .control, patient, sibling."):
        read_phenotypes(participants, "participant_id", {"group": "binary"})


def test_duplicate_subjects_even_with_and_without_prefix(tmp_path):
    rows = [("sub-01", "1", "F", "a"), ("02", "2", "M", "a"), ("01", "3", "F", "b")]
    path = write_participants(tmp_path / "p.tsv", rows)
    with pytest.raises(SemantoksError, match="subject 01 appears in rows 2, 4; keep one row per subject"):
        read_phenotypes(path, "participant_id", DECLARED)


def test_empty_participant_label(tmp_path):
    path = write_participants(tmp_path / "p.tsv", [("01", "1", "F", "a"), ("", "2", "M", "a")])
    with pytest.raises(SemantoksError, match="row 3 has no participant label"):
        read_phenotypes(path, "participant_id", DECLARED)


def test_unknown_declared_type(participants):
    with pytest.raises(SemantoksError, match="column 'age' is declared 'numeric'; declare it as one of binary"):
        read_phenotypes(participants, "participant_id", {"age": "numeric"})


def test_real_cobre_phenotypes(shared_data, tmp_path):
    path = shared_data / "cobre_fc" / "COBRE_phenotypic_data.csv"
    declared = {"Age": "continuous", "Gender": "binary", "Subject_Type": "binary", "Diagnosis": "categorical"}
    frame, _ = read_phenotypes(path, "SUB_ID", declared, subjects=None, cohort="cobre")
    assert len(frame) == 146 and frame["subject"].is_unique
    assert frame["Age"].between(18, 70).all()
    assert frame["Subject_Type"].value_counts().to_dict() == {"Control": 74, "Patient": 72}
    assert "None" in frame["Diagnosis"].cat.categories
    with pytest.raises(SemantoksError, match="column 'Handedness' is declared binary but has 3 values"):
        read_phenotypes(path, "SUB_ID", {"Handedness": "binary"})
