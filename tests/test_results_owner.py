"""One workflow per results folder (semantoks.results_owner)."""

import json
import shutil

import pytest

from semantoks.errors import SemantoksError
from semantoks.results_owner import OWNER_FILE, claim_results_folder


def test_a_second_working_directory_is_refused_and_a_moved_project_is_not(tmp_path):
    shared = tmp_path / "shared" / "results"
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    claim_results_folder(shared, first, [first / "scrubbing.yaml"])
    owner = json.loads((shared / OWNER_FILE).read_text())
    assert owner["workdir"] == str(first.resolve()) and owner["configfiles"] == [str(first / "scrubbing.yaml")]
    claim_results_folder(shared, first, [first / "edited.yaml"])
    with pytest.raises(SemantoksError, match=rf"{OWNER_FILE}: this results folder belongs to the workflow run from "
                                             rf"{first} \(config {first}/scrubbing.yaml\); a second workflow"):
        claim_results_folder(shared, second, [second / "simple.yaml"])
    # a project moved as a whole (working directory and its results) is still the owner
    claim_results_folder(first / "results", first, [])
    moved = tmp_path / "moved"
    shutil.move(first, moved)
    claim_results_folder(moved / "results", moved, [])


def test_a_dry_run_checks_without_claiming(tmp_path):
    claim_results_folder(tmp_path / "results", tmp_path / "a", [], write=False)
    assert not (tmp_path / "results").exists()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / OWNER_FILE).write_text("{not json")
    with pytest.raises(SemantoksError, match="unreadable .*delete it"):
        claim_results_folder(tmp_path / "results", tmp_path / "a", [])
