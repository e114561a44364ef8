"""The one feature table: round trip of keys, features and record; bad files named in one line."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from semantoks.errors import SemantoksError
from semantoks.features.table import read_feature_table, write_feature_table


def test_round_trip_keeps_keys_features_null_sessions_and_the_record(tmp_path):
    keys = pd.DataFrame({"cohort": ["a", "a"], "scan_id": ["s1", "s2"], "subject": [1, 2], "session": [None, np.nan]})
    X = np.arange(6, dtype=np.float64).reshape(2, 3) / 4
    write_feature_table(tmp_path / "t.parquet", keys, X, {"feature": "toy", "n": 2})
    found, found_X, record = read_feature_table(tmp_path / "t.parquet")
    np.testing.assert_array_equal(found_X, X)
    assert found["subject"].tolist() == ["1", "2"] and found["session"].isna().all()
    assert record == {"feature": "toy", "n": 2}
    schema = pq.read_schema(tmp_path / "t.parquet")
    assert list(schema.metadata) == [b"semantoks"] and schema.field("embedding").type == pa.list_(pa.float32(), 3)


def test_rows_must_match_scans_and_foreign_files_are_named(tmp_path):
    keys = pd.DataFrame({"cohort": ["a"], "scan_id": ["s1"], "subject": ["1"]})
    with pytest.raises(SemantoksError, match="one row per scan"):
        write_feature_table(tmp_path / "t.parquet", keys, np.zeros((2, 3)))
    assert not (tmp_path / "t.parquet").exists()
    pq.write_table(pa.table({"cohort": ["a"], "scan_id": ["s1"]}), tmp_path / "foreign.parquet")
    with pytest.raises(SemantoksError, match=r"foreign.parquet: lacks column\(s\) subject, embedding"):
        read_feature_table(tmp_path / "foreign.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(SemantoksError, match="junk.parquet: not a readable feature table"):
        read_feature_table(tmp_path / "junk.parquet")
