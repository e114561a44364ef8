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


def test_minus_9999_is_missing_not_an_iq(tmp_path):
    # the old reader kept -9999 as an IQ: R^2 of -300 reported as "ok"
    table = write_participants(tmp_path / "p.csv", [("50001", "-9999", "1"), ("50002", "110", "2"),
                                                    ("50003", "-9999.0", "-999"), ("50004", "98", "n/a"),
                                                    ("50005", "NA", "2")],
                               header=("SUB_ID", "FIQ", "SEX"), separator=",")
    frame, report = read_phenotypes(table, "SUB_ID", {"FIQ": "continuous", "SEX": "binary"})
    assert frame["FIQ"].isna().tolist() == [True, False, True, False, True]
    assert frame["SEX"].isna().tolist() == [False, False, True, True, False]
    assert report["missing"] == {"FIQ": 3, "SEX": 2}


def test_missing_values_are_configurable_per_cohort(tmp_path):
    table = write_participants(tmp_path / "p.tsv", [("01", "-1", "x"), ("02", "-9999", "y"), ("03", "7", "x")],
                               header=("participant_id", "score", "g"))
    frame, _ = read_phenotypes(table, "participant_id", {"score": "continuous"}, missing=["-1"])
    assert frame["score"].tolist()[0] != frame["score"].tolist()[0]  # NaN
    assert frame["score"].tolist()[1:] == [-9999.0, 7.0]


def test_far_outliers_are_logged_with_their_subjects(tmp_path, caplog):
    rows = [(f"{i:02d}", str(100 + i), "x") for i in range(1, 12)] + [("12", "-555", "x")]
    table = write_participants(tmp_path / "p.tsv", rows, header=("participant_id", "iq", "g"))
    with caplog.at_level(logging.WARNING):
        _, report = read_phenotypes(table, "participant_id", {"iq": "continuous"})
    assert report["outliers"] == {"iq": ["12"]}
    assert "12=-555" in caplog.text and "robust SDs" in caplog.text


def test_leading_zeros_and_prefix_match_the_imaging_labels(tmp_path):
    # PCP: the file says 0050001, the table SUB_ID 50001; the probes join on the imaging label
    table = write_participants(tmp_path / "p.csv", [("50001", "20"), ("50002", "30"), ("SUB-ab", "40")],
                               header=("SUB_ID", "age"), separator=",")
    frame, report = read_phenotypes(table, "SUB_ID", {"age": "continuous"}, subjects=["0050001", "sub-0050002", "AB"])
    assert frame["subject"].tolist() == ["0050001", "0050002", "AB"]
    assert report["imaging_only"] == [] and report["phenotype_only"] == []


def test_fewer_than_half_matched_is_an_error_with_examples_from_both_sides(tmp_path):
    table = write_participants(tmp_path / "p.csv", [("A1", "20"), ("A2", "30"), ("51003", "40")],
                               header=("SUB_ID", "age"), separator=",")
    with pytest.raises(SemantoksError) as raised:
        read_phenotypes(table, "SUB_ID", {"age": "continuous"}, subjects=["0051003", "0051004", "0051005"],
                        cohort="abide")
    message = str(raised.value)
    assert "cohort abide: " in message and "only 1 of 3 imaging subjects have a phenotype row" in message
    assert "imaging e.g. 0051004, 0051005" in message and "table e.g. A1, A2" in message


def test_imaging_subjects_differing_only_in_leading_zeros_are_refused(tmp_path):
    # '01' and '001' shared a key: sub-01's row went to 001 without a word
    table = write_participants(tmp_path / "p.tsv", [("sub-01", "20"), ("sub-02", "30")], header=("participant_id", "age"))
    with pytest.raises(SemantoksError, match=r"cohort lab: subjects '01' \(imaging\) and '001' \(imaging\) differ only "
                                             r"in leading zeros"):
        read_phenotypes(table, "participant_id", {"age": "continuous"}, subjects=["01", "001", "02"], cohort="lab")


def test_class_codes_get_their_names_from_the_config(tmp_path):
    path = write_participants(tmp_path / "participants.tsv", [("sub-01", "1", "1"), ("sub-02", "2", "2")],
                              header=("participant_id", "dx_group", "sex"))
    declared = {"dx_group": "binary", "sex": "binary"}
    frame, _ = read_phenotypes(path, "participant_id", declared, classes={"dx_group": {1: "autism", 2: "control"}})
    assert list(frame["dx_group"]) == ["autism", "control"] and list(frame["sex"]) == ["1", "2"]
    with pytest.raises(SemantoksError, match=r"column 'dx_group' has code '2' \(row 3\) with no class name .*"
                                             r"phenotypes.classes.dx_group"):
        read_phenotypes(path, "participant_id", declared, classes={"dx_group": {1: "autism"}})
    with pytest.raises(SemantoksError, match="names column 'age', which is not a declared binary or categorical"):
        read_phenotypes(path, "participant_id", declared, classes={"age": {1: "young"}})


def test_class_codes_get_their_names_from_the_bids_sidecar_levels(tmp_path):
    path = write_participants(tmp_path / "participants.tsv", [("sub-01", "1"), ("sub-02", "2"), ("sub-03", "n/a")],
                              header=("participant_id", "dx_group"))
    (tmp_path / "participants.json").write_text(json.dumps(
        {"dx_group": {"Description": "diagnostic group", "Levels": {"1": "autism", "2": "control"}}}))
    frame, _ = read_phenotypes(path, "participant_id", {"dx_group": "binary"})
    assert frame["dx_group"].tolist()[:2] == ["autism", "control"] and pd.isna(frame["dx_group"].iloc[2])
    # Levels describe words too (BIDS); words are kept, only bare codes are replaced
    path = write_participants(tmp_path / "participants.tsv", [("sub-01", "patient", "F"), ("sub-02", "control", "M")],
                              header=("participant_id", "diagnosis", "sex"))
    (tmp_path / "participants.json").write_text(json.dumps(
        {"diagnosis": {"Levels": {"patient": "a patient", "control": "a control"}},
         "sex": {"Levels": {"F": "female", "M": "male"}}}))
    frame, _ = read_phenotypes(path, "participant_id", {"diagnosis": "binary", "sex": "binary"})
    assert frame["diagnosis"].tolist() == ["patient", "control"] and frame["sex"].tolist() == ["female", "male"]
    path = write_participants(tmp_path / "participants.tsv", [("sub-01", "1"), ("sub-02", "2"), ("sub-03", "n/a")],
                              header=("participant_id", "dx_group"))
    (tmp_path / "participants.json").write_text(json.dumps({"dx_group": {"Levels": {"1": "autism", "2": "control"}}}))
    # the config wins over the sidecar
    frame, _ = read_phenotypes(path, "participant_id", {"dx_group": "binary"},
                               classes={"dx_group": {"1": "ASD", "2": "TD"}})
    assert frame["dx_group"].tolist()[:2] == ["ASD", "TD"]


def test_real_abide_dx_group_and_sex_codes_named(shared_data):
    path = shared_data / "abide1_cc200" / "participants.tsv"
    frame, _ = read_phenotypes(path, "SUB_ID", {"DX_GROUP": "binary", "SEX": "binary"},
                               classes={"DX_GROUP": {1: "autism", 2: "control"}, "SEX": {1: "male", 2: "female"}})
    assert set(frame["DX_GROUP"].cat.categories) == {"autism", "control"}
    assert set(frame["SEX"].cat.categories) == {"female", "male"}
