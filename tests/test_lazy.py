"""Lazy package faces (semantoks.lazy): a name loads its submodule on first use and nothing else."""

import json
import subprocess
import sys

import pytest

import semantoks
import semantoks.model
import semantoks.probes


def _modules_after(statements):
    probe = "import json, sys\n" + statements + "\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_handing_out_labels_loads_neither_probe_py_nor_torch():
    loaded = _modules_after("from semantoks.probes import labels, expand_phenotype_specs")
    assert "semantoks.probes.labels" in loaded
    assert not {"semantoks.probes.probe", "torch"} & loaded


def test_model_configuration_loads_no_torch_and_a_model_name_loads_its_module():
    assert "torch" not in _modules_after("from semantoks.model.config import PretrainConfig, resolve_pretrain_config")
    assert {"semantoks.model.losses", "torch"} <= _modules_after("from semantoks.model import coding_rate")


def test_faces_hand_out_their_public_names_and_refuse_others():
    from semantoks.probes.probe import run_probes

    assert semantoks.probes.run_probes is run_probes
    assert "run_probes" in dir(semantoks.probes) and "coding_rate" in dir(semantoks.model)
    with pytest.raises(AttributeError, match="semantoks.probes.*no_such_name"):
        semantoks.probes.no_such_name


def test_the_package_hands_out_load_model_without_loading_the_api_first():
    loaded = _modules_after("import semantoks")
    assert not {"semantoks.api", "torch"} & loaded
    from semantoks.api import load_model

    assert semantoks.load_model is load_model
