"""Config loading (strict YAML, schema, defaults), the cross-key checks, and which config files a run reads."""

import re
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from semantoks.config import load_config, read_config_file, validate_config
from semantoks.provenance import config_hash
from semantoks.config_checks import PHENOTYPE_NAME
from semantoks.errors import SemantoksError
from semantoks.features.registry import DEFAULT_FEATURE_SETS

MINIMAL = {"cohorts": {"demo": {"source": "simulated"}}}


def test_repository_config_is_valid_and_fills_defaults(repo_root):
    config = load_config(repo_root / "config" / "config.yaml")
    assert config["cohorts"]["demo"]["source"] == "simulated"
    assert config["pretrain"]["window"] == 100 and config["pretrain"]["patch_len"] == 20
    assert config["cohorts"]["demo"]["phenotypes"]["participant_column"] == "participant_id"


def test_defaults_fill_nested_cohort_entries():
    config = validate_config(MINIMAL)
    assert config["cohorts"]["demo"]["simulate"] == {"n_subjects": 48, "seed": 0, "resolution_mm": 6}
    assert config["atlas"]["n_parcels"] == 100
    assert config["probe"]["feature_sets"] == list(DEFAULT_FEATURE_SETS)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"atlas": {"n_parcel": 200}}, "'atlas.n_parcel' is not a known setting; did you mean 'n_parcels'?"),
        ({"atlas": {"n_parcels": "200"}}, "'atlas.n_parcels' must be of type integer"),
        ({"atlas": {"n_parcels": 150}}, "'atlas.n_parcels' is 150 but must be one of"),
        ({"denoise": {"strategy": "aroma"}}, "'denoise.strategy' is 'aroma' but must be one of"),
        ({"pretrian": {}}, "'pretrian' is not a known setting; did you mean 'pretrain'?"),
        ({"cohorts": {"demo": {"source": "simulated", "phenotypes": {"columns": {"age": "numeric"}}}}},
         "'cohorts.demo.phenotypes.columns.age' is 'numeric'"),
    ],
)
def test_schema_errors_name_the_key(change, expected):
    config = {**MINIMAL, **change}
    with pytest.raises(SemantoksError) as error:
        validate_config(config, source="my.yaml")
    message = str(error.value)
    assert message.startswith("my.yaml: ") and expected in message
    assert "\n" not in message


def test_config_hash_tracks_content():
    first = validate_config(MINIMAL)
    second = validate_config({**MINIMAL, "atlas": {"n_parcels": 200}})
    assert config_hash(first) == config_hash(validate_config(MINIMAL))
    assert config_hash(first) != config_hash(second)


def test_cli_reports_bad_config_in_one_line_without_traceback(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "atlas": {"n_networks": 12}}))
    result = subprocess.run([sys.executable, "-m", "semantoks", "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"semantoks: error: {path}: 'atlas.n_networks' is 12 but must be one of: 7, 17."
    ]


def test_cli_reports_invalid_yaml_with_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("cohorts:\n  demo: {source: simulated\n")
    result = subprocess.run([sys.executable, "-m", "semantoks", "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path} line" in result.stderr and "not valid YAML" in result.stderr


def _simulated(columns=None, **extra):
    return {"source": "simulated", "phenotypes": {"columns": columns or {}}, **extra}


def _refused(config, source="my.yaml"):
    with pytest.raises(SemantoksError) as error:
        validate_config(config, source=source)
    message = str(error.value)
    assert message.startswith(f"{source}: ") and "\n" not in message
    return message


def test_duplicate_yaml_key_is_refused_naming_the_key_and_lines(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("cohorts:\n  lab:\n    source: simulated\n  lab:\n    source: fmriprep\n")
    with pytest.raises(SemantoksError) as error:
        read_config_file(path)
    assert str(error.value) == f"{path}: 'cohorts.lab' is given twice (lines 2 and 4); keep one."


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("base: &base {source: simulated}\ncohorts:\n  lab:\n    <<: *base\n    source: simulated\n")
    assert read_config_file(path)["cohorts"]["lab"] == {"source": "simulated"}


def test_unknown_denoise_override_names_the_key():
    message = _refused({**MINIMAL, "denoise": {"strategy": "scrubbing", "overrides": {"fd_treshold": 0.3}}})
    assert "'denoise.overrides.fd_treshold' is not a denoising setting; did you mean 'fd_threshold'?" in message


def test_bad_denoise_override_value_names_the_key():
    message = _refused({**MINIMAL, "denoise": {"overrides": {"fd_threshold": -1}}})
    assert "denoise.overrides: denoising key 'fd_threshold' is -1" in message


def test_unknown_pretrain_extra_key_names_the_key():
    message = _refused({**MINIMAL, "pretrain": {"extra": {"learning_rat": 0.1}}})
    assert message.startswith("my.yaml: pretrain: ") and "learning_rat" in message


def test_window_not_a_multiple_of_patch_len_names_both_keys():
    message = _refused({**MINIMAL, "pretrain": {"window": 90, "patch_len": 20}})
    assert "'pretrain.window' (90) must be a whole number of 'pretrain.patch_len' (20)" in message


@pytest.mark.parametrize("section", ["pretrain", "probe"])
def test_unknown_cohort_in_a_cohort_list_names_the_key(section):
    message = _refused({**MINIMAL, section: {"cohorts": ["demo", "dmeo"]}})
    assert f"'{section}.cohorts' names 'dmeo', which is not under cohorts; use one of demo." in message


def test_probe_phenotype_not_declared_in_a_probed_cohort_names_the_key():
    config = {"cohorts": {"a": _simulated({"age": "continuous"}), "b": _simulated({"iq": "continuous"})},
              "probe": {"cohorts": ["a"], "phenotypes": {"iq": {}}}}
    message = _refused(config)
    assert "'probe.phenotypes.iq' is not declared in any probed cohort's phenotypes.columns (declared: age)" in message
    config["probe"]["cohorts"] = None
    assert validate_config(config)["probe"]["phenotypes"] == {"iq": {"bins": None}}


def test_phenotype_classes_with_int_codes_validate_and_must_name_a_categorical_column():
    columns = {"DX_GROUP": "binary", "AGE": "continuous"}
    config = {"cohorts": {"abide": _simulated(columns)}}
    config["cohorts"]["abide"]["phenotypes"]["classes"] = {"DX_GROUP": {1: "autism", 2: "control"}}
    assert validate_config(config)["cohorts"]["abide"]["phenotypes"]["classes"]["DX_GROUP"][1] == "autism"
    config["cohorts"]["abide"]["phenotypes"]["classes"] = {"AGE": {1: "young"}}
    assert ("cohorts.abide.phenotypes.classes names column 'AGE', which is not a declared binary or categorical"
            in _refused(config))


def test_label_transfer_of_an_undeclared_or_continuous_phenotype_names_the_key():
    config = {"cohorts": {"demo": _simulated({"age": "continuous", "diagnosis": "binary"})},
              "language": {"enabled": True, "label_transfer": ["diagnosis", "age"]}}
    assert "'language.label_transfer' names 'age' (continuous in the probed cohorts'" in _refused(config)
    config["language"]["label_transfer"] = ["diagnosis"]
    assert validate_config(config)["language"]["split_repeats"] == 4


def test_binned_job_name_as_a_phenotype_points_to_bins():
    message = _refused({"cohorts": {"demo": _simulated({"age": "continuous"})}, "probe": {"phenotypes": {"age_binned": {}}}})
    assert "'probe.phenotypes.age_binned' is not a column; probe 'age' with bins: K" in message


@pytest.mark.parametrize("name", ["age at scan", "../age", "âge", "age.v2"])
def test_phenotype_name_that_is_no_safe_file_name_says_the_pattern(name):
    config = {"cohorts": {"demo": _simulated({name: "continuous"})}, "probe": {"phenotypes": {name: {}}}}
    message = _refused(config)
    assert f"'probe.phenotypes.{name}'" in message and PHENOTYPE_NAME.pattern in message


@pytest.mark.parametrize("version", ["latest", "25.2", "v25.2.3"])
def test_unpinned_fmriprep_version_names_the_key(version):
    message = _refused({**MINIMAL, "fmriprep": {"version": version}})
    assert f"'fmriprep.version' is '{version}'; pin a release as X.Y.Z" in message


@pytest.mark.parametrize("kind", ["binary", "categorical"])
def test_bins_on_a_non_continuous_phenotype_names_the_key(kind):
    config = {"cohorts": {"demo": _simulated({"site": kind})}, "probe": {"phenotypes": {"site": {"bins": 3}}}}
    message = _refused(config)
    assert f"'probe.phenotypes.site.bins' is set but site is declared {kind}" in message


@pytest.mark.parametrize("first, second", [("derivatives", "derivatives"), ("derivatives", "bids")])
def test_one_dataset_under_two_cohort_names_is_refused(tmp_path, monkeypatch, first, second):
    monkeypatch.chdir(tmp_path)
    cohorts = {"site1": {"source": "fmriprep", first: str(tmp_path / "data")},
               "site2": {"source": "bids" if second == "bids" else "fmriprep", second: "./data/"}}
    message = _refused({"cohorts": cohorts})
    assert f"'cohorts.site2.{second}' and 'cohorts.site1.{first}' are the same folder ({tmp_path / 'data'})" in message


def test_one_roi_folder_under_two_cohort_names_is_refused(tmp_path):
    roi = {"files": str(tmp_path / "roi"), "pattern": "*.1D"}
    message = _refused({"cohorts": {"a": {"source": "roi", "roi": roi}, "b": {"source": "roi", "roi": dict(roi)}}})
    assert "'cohorts.b.roi.files' and 'cohorts.a.roi.files' are the same folder" in message


def _check_config_cli(*paths, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "semantoks", "check-config", *map(str, paths)],
                          capture_output=True, text=True, cwd=cwd, env=env)


def test_cli_refuses_a_cross_key_problem_in_one_line_exit_2(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "fmriprep": {"version": "latest"}}))
    result = _check_config_cli(path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"semantoks: error: {path}: 'fmriprep.version' is 'latest'")


def test_cli_refuses_duplicate_keys_in_one_line_exit_2(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("cohorts:\n  demo: {source: simulated}\nprobe: {n_repeats: 5}\nprobe: {n_repeats: 6}\n")
    result = _check_config_cli(path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"semantoks: error: {path}: 'probe' is given twice (lines 3 and 4); keep one."]


def test_cli_checks_only_the_given_file_not_the_demo(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(USER_CONFIG))
    result = _check_config_cli(path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"{path}: valid; atlas Schaefer100x7, cohorts lab, probed phenotypes sex; "
                                     "planned: lab 6 runs (0 to skip)")


USER_CONFIG = {
    "cohorts": {"lab": _simulated({"sex": "binary"}, simulate={"n_subjects": 4, "seed": 3})},
    "pretrain": {"enabled": False},
    "probe": {"phenotypes": {"sex": {}}},
}


def _dry_run(snakefile, workdir, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "-s", str(snakefile), *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=workdir, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _workflow_copy(repo_root, folder):
    """The workflow files as a user's clone has them (Snakefile, workflow/, config/), to run from inside it."""
    for name in ("workflow", "config"):
        shutil.copytree(repo_root / name, folder / name, symlinks=True)
    shutil.copy(repo_root / "Snakefile", folder / "Snakefile")
    return folder / "Snakefile"


@pytest.mark.usefixtures("templateflow_home")
@pytest.mark.parametrize("route", ["inside a clone", "-s from a fresh folder"])
def test_a_user_config_runs_only_the_users_cohorts_and_phenotypes(repo_root, tmp_path, route):
    snakefile = _workflow_copy(repo_root, tmp_path) if route == "inside a clone" else repo_root / "Snakefile"
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(USER_CONFIG))
    jobs = _dry_run(snakefile, tmp_path, "--configfile", "my.yaml")
    assert f"semantoks: config read from {tmp_path / 'my.yaml'}\n" in jobs
    assert "cohort=lab" in jobs and "phenotype=sex" in jobs
    # the demo config is not merged in: no demo cohort, no demo phenotypes, no pretraining
    for demo in ("cohort=demo", "phenotype=diagnosis", "phenotype=age", "rule pretrain"):
        assert demo not in jobs


@pytest.mark.usefixtures("templateflow_home")
def test_without_a_config_file_the_demo_is_planned(repo_root, tmp_path):
    jobs = _dry_run(repo_root / "Snakefile", tmp_path)
    assert f"semantoks: config read from {repo_root / 'config' / 'config.yaml'}\n" in jobs
    for demo in ("cohort=demo", "phenotype=diagnosis", "phenotype=age_binned", "rule pretrain"):
        assert demo in jobs


def test_snakefile_refuses_duplicate_keys_at_parse_time(repo_root, tmp_path):
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(USER_CONFIG) + "pretrain: {enabled: true}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "-s", str(repo_root / "Snakefile"),
               "--configfile", "my.yaml"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode != 0
    assert "'pretrain' is given twice" in result.stdout + result.stderr


def test_config_readme_example_passes_check_config(repo_root, tmp_path):
    text = (repo_root / "config" / "README.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    # check-config plans the runs as the Snakefile does, so the example's folders must exist: a site of one run
    site = tmp_path / "data" / "site1"
    func = site / "derivatives" / "fmriprep" / "sub-01" / "func"
    func.mkdir(parents=True)
    stem = "sub-01_task-rest_space-MNI152NLin2009cAsym_res-2"
    for name in (f"{stem}_desc-preproc_bold.nii.gz", f"{stem}_desc-brain_mask.nii.gz", f"{stem}_desc-preproc_bold.json",
                 "sub-01_task-rest_desc-confounds_timeseries.tsv"):
        (func / name).touch()
    (site / "participants.tsv").write_text("participant_id\tdiagnosis\tage\nsub-01\tpatient\t30\n")
    (tmp_path / "my.yaml").write_text(example.replace("/data/site1", str(site)))
    result = _check_config_cli("my.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("my.yaml: valid; atlas Schaefer200x17, cohorts site1, probed phenotypes "
                                     "diagnosis, age; planned: site1 1 runs (0 to skip)")


def test_bad_input_catalogue_names_existing_tests(repo_root):
    rows = [line for line in (repo_root / "docs" / "bad_input.md").read_text().splitlines()
            if line.startswith("| ") and "`test_" in line]
    assert len(rows) >= 40
    for row in rows:
        file_name, test_name = row.rsplit("`", 2)[-2].split("::")
        source = (repo_root / "tests" / file_name).read_text()
        assert f"def {test_name}(" in source, f"docs/bad_input.md names {file_name}::{test_name}, which does not exist"


def test_check_config_plans_the_runs_and_catches_what_only_planning_finds(tmp_path):
    """An exclusion naming no subject is found when runs are planned: check-config plans as the Snakefile does."""
    func = tmp_path / "fmriprep" / "sub-01" / "func"
    func.mkdir(parents=True)
    stem = "sub-01_task-rest_space-MNI152NLin2009cAsym_res-2"
    for name in (f"{stem}_desc-preproc_bold.nii.gz", f"{stem}_desc-brain_mask.nii.gz", f"{stem}_desc-preproc_bold.json",
                 "sub-01_task-rest_desc-confounds_timeseries.tsv"):
        (func / name).touch()
    cohort = {"source": "fmriprep", "derivatives": str(tmp_path / "fmriprep")}
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump({"results": str(tmp_path / "results"), "cohorts": {"lab": cohort}}))
    result = _check_config_cli(path)
    assert result.returncode == 0 and "planned: lab 1 runs (0 to skip)" in result.stdout
    cohort["exclude"] = [{"subject": "99", "reason": "never scanned"}]
    path.write_text(yaml.safe_dump({"results": str(tmp_path / "results"), "cohorts": {"lab": cohort}}))
    result = _check_config_cli(path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cohorts.lab.exclude[0] names subject 99" in result.stderr and result.stderr.count("\n") == 1


def test_a_text_encoder_that_is_not_installed_is_refused_at_config_time(monkeypatch):
    # a missing encoder package passed check-config and failed in the text_embed job, after pretraining
    from semantoks.language import text_encoders

    config = {**MINIMAL, "language": {"enabled": True, "text_encoder": "wordllama"}}
    monkeypatch.setitem(text_encoders.PACKAGES, "wordllama", ("no_such_encoder_package", "text"))
    with pytest.raises(SemantoksError, match=r"'language.text_encoder' is 'wordllama' but its package "
                                             r"no_such_encoder_package is not installed; pip install 'semantoks\[text\]'"):
        validate_config(config)
    validate_config({**config, "language": {"enabled": False, "text_encoder": "wordllama"}})
    validate_config({**config, "language": {"enabled": True, "text_encoder": "hashing"}})


def test_site_split_needs_a_declared_site_column():
    config = {"cohorts": {"a": _simulated({"site": "categorical", "age": "continuous"})},
              "probe": {"phenotypes": {"age": {}}, "split": "leave_site_out"}}
    assert "'probe.split' is leave_site_out but 'probe.site_column' is not set" in _refused(config)
    config["probe"]["site_column"] = "centre"
    assert "'probe.site_column' 'centre' is not declared" in _refused(config)
    config["probe"]["site_column"] = "site"
    assert validate_config(config)["probe"]["split"] == "leave_site_out"
    config["probe"]["phenotypes"]["site"] = {}
    assert "'probe.phenotypes.site' cannot be probed with probe.split leave_site_out" in _refused(config)


def test_only_held_out_needs_a_pretrain_hold_out_on_a_declared_column():
    config = {"cohorts": {"a": _simulated({"site": "categorical"})}, "probe": {"only_held_out": True}}
    assert "'probe.only_held_out' is true but 'pretrain.hold_out' is not set" in _refused(config)
    config["pretrain"] = {"hold_out": {"column": "centre", "values": ["x"]}}
    assert "'pretrain.hold_out.column' 'centre' is not declared in cohorts.a.phenotypes.columns" in _refused(config)
    config["pretrain"]["hold_out"]["column"] = "site"
    assert validate_config(config)["pretrain"]["hold_out"] == {"column": "site", "values": ["x"]}


def test_the_site_held_out_example_of_docs_probes_validates(repo_root):
    text = (repo_root / "docs" / "probes.md").read_text()
    block = re.findall(r"```yaml\n(# site-held-out probing\n.*?)```", text, re.DOTALL)
    assert len(block) == 1
    config = yaml.safe_load(block[0])
    config["cohorts"] = {"abide": _simulated({"SITE_ID": "categorical", "AGE_AT_SCAN": "continuous"})}
    config["probe"]["phenotypes"] = {"AGE_AT_SCAN": {}}
    resolved = validate_config(config)
    assert resolved["probe"]["split"] == "site_grouped" and resolved["pretrain"]["hold_out"]["column"] == "SITE_ID"


def test_probe_confounds_must_be_declared_continuous():
    config = {"cohorts": {"a": _simulated({"site": "categorical", "fd": "continuous"})},
              "probe": {"confounds": ["site"]}}
    assert "'probe.confounds' names 'site', which is not declared continuous" in _refused(config)
    config["probe"]["confounds"] = ["fd"]
    assert validate_config(config)["probe"]["confounds"] == ["fd"]


def test_the_paper_space_band_passes_pretraining_input_as_the_reference_unless_set():
    base = {"atlas": {"family": "brainsemantoks457", "space": "MNI152NLin6Asym", "custom": {"dseg": "space457.nii.gz"}},
            "cohorts": {"demo": {"source": "simulated"}}}
    assert validate_config(base)["pretrain"]["band_pass"] == [0.01, 0.1]
    assert validate_config({**base, "pretrain": {"band_pass": None}})["pretrain"]["band_pass"] is None
    assert validate_config({**base, "pretrain": {"steps": 5}})["pretrain"]["band_pass"] == [0.01, 0.1]
    schaefer = {"cohorts": {"demo": {"source": "simulated"}}}
    assert validate_config(schaefer)["pretrain"]["band_pass"] is None
