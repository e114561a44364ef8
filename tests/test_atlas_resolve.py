"""Atlas files come from the local TemplateFlow folder; the network only when a file is missing and allowed."""

import socket
import sys
import types

import pytest

from semantoks.atlas import AtlasSpec, load_atlas, templateflow_home
from semantoks.errors import SemantoksError

SCHAEFER_100x7 = (
    "tpl-MNI152NLin2009cAsym/tpl-MNI152NLin2009cAsym_res-02_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.nii.gz"
)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the atlas code opened a network socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def fake_templateflow(monkeypatch, templateflow_home):
    """Stands in for the optional templateflow package: serves files from the real tree, records calls."""
    calls = []

    def get(template, **entities):
        calls.append((template, entities))
        return sorted(str(path) for path in (templateflow_home / f"tpl-{template}").glob("*"))

    api = types.ModuleType("templateflow.api")
    api.get = get
    package = types.ModuleType("templateflow")
    package.api = api
    monkeypatch.setitem(sys.modules, "templateflow", package)
    monkeypatch.setitem(sys.modules, "templateflow.api", api)
    return calls


@pytest.mark.parametrize("allow_download", [False, True])
def test_missing_file_names_the_file_and_the_fix_without_network(tmp_path, monkeypatch, no_network, allow_download):
    monkeypatch.setitem(sys.modules, "templateflow", None)  # as on this machine: not installed
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(SemantoksError) as error:
        load_atlas(AtlasSpec(), templateflow_home=tmp_path, allow_download=allow_download)
    message = str(error.value)
    assert str(tmp_path / SCHAEFER_100x7) in message
    assert "atlas.templateflow_home" in message and "TEMPLATEFLOW_HOME" in message
    assert "pip install" in message


def test_local_file_is_used_without_calling_templateflow(templateflow_home, fake_templateflow, no_network):
    atlas = load_atlas(AtlasSpec(subcortex="S1"), templateflow_home=templateflow_home, allow_download=True)
    assert len(atlas.labels) == 116
    assert fake_templateflow == []


def test_missing_file_is_fetched_with_templateflow_when_allowed(tmp_path, monkeypatch, fake_templateflow):
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path))
    atlas = load_atlas(AtlasSpec(n_parcels=200, n_networks=17), templateflow_home=tmp_path, allow_download=True)
    assert len(atlas.networks) == 17
    volume_call = fake_templateflow[0]
    assert volume_call == ("MNI152NLin2009cAsym", dict(
        resolution=2, atlas="Schaefer2018", desc="200Parcels17Networks", suffix="dseg", extension=".nii.gz"))
    assert "resolution" not in fake_templateflow[1][1]


def test_missing_file_is_not_fetched_when_downloads_are_off(tmp_path, fake_templateflow):
    with pytest.raises(SemantoksError, match="atlas.allow_download: true"):
        load_atlas(AtlasSpec(), templateflow_home=tmp_path, allow_download=False)
    assert fake_templateflow == []


def test_templateflow_home_order(monkeypatch, tmp_path):
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "env"))
    assert templateflow_home(tmp_path / "arg") == tmp_path / "arg"
    assert templateflow_home() == tmp_path / "env"
    monkeypatch.delenv("TEMPLATEFLOW_HOME")
    assert templateflow_home().name == "templateflow" and templateflow_home().parent.name == ".cache"


@pytest.mark.parametrize("keep", [0.5, 0.002])
def test_truncated_templateflow_volume_names_the_file_and_the_fix(tmp_path, templateflow_home, no_network, keep):
    # a download cut short: half the gzip stream (voxels fail), or a few bytes (the header fails)
    real = templateflow_home / SCHAEFER_100x7
    table = real.with_name(real.name.replace("_res-02", "").replace(".nii.gz", ".tsv"))
    local = tmp_path / SCHAEFER_100x7
    local.parent.mkdir(parents=True)
    data = real.read_bytes()
    local.write_bytes(data[: int(len(data) * keep)])
    (tmp_path / table.relative_to(templateflow_home)).write_bytes(table.read_bytes())
    with pytest.raises(SemantoksError) as error:
        load_atlas(AtlasSpec(n_parcels=100, n_networks=7), templateflow_home=tmp_path)
    message = str(error.value)
    assert message.startswith(f"{local}: cannot be read as a NIfTI volume") and "\n" not in message
    assert "delete it so it is fetched again" in message
