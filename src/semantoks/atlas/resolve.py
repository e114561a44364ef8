"""Find atlas files by TemplateFlow name in a local folder; download only when allowed and the file is missing."""

import os
from pathlib import Path

from semantoks.errors import SemantoksError

DEFAULT_TEMPLATEFLOW_HOME = Path("~/.cache/templateflow")


def templateflow_home(home=None):
    """The local TemplateFlow-layout folder: the argument, else $TEMPLATEFLOW_HOME, else ~/.cache/templateflow."""
    if home is None:
        home = os.environ.get("TEMPLATEFLOW_HOME") or DEFAULT_TEMPLATEFLOW_HOME
    return Path(home).expanduser()


def templateflow_name(space, atlas, desc, suffix, extension, resolution=None):
    """Relative path of one TemplateFlow file, e.g. tpl-X/tpl-X_res-02_atlas-Y_desc-Z_dseg.nii.gz."""
    res = f"_res-{resolution:02d}" if resolution is not None else ""
    return Path(f"tpl-{space}") / f"tpl-{space}{res}_atlas-{atlas}_desc-{desc}_{suffix}{extension}"


def atlas_files(space, atlas, desc, resolution, home=None, allow_download=False):
    """(dseg.nii.gz, dseg.tsv) of one TemplateFlow atlas; the volume carries res-, the table does not."""
    volume = resolve_templateflow_file(
        templateflow_name(space, atlas, desc, "dseg", ".nii.gz", resolution), home, allow_download)
    table = resolve_templateflow_file(
        templateflow_name(space, atlas, desc, "dseg", ".tsv"), home, allow_download)
    return volume, table


def resolve_templateflow_file(relative, home=None, allow_download=False):
    """Local path of a TemplateFlow file; the network is used only if it is missing and downloads are allowed."""
    home = templateflow_home(home)
    local = home / relative
    if local.is_file():
        return local
    fetched = _fetch_with_templateflow(relative, home) if allow_download else None
    if fetched is not None:
        return fetched
    download = "" if allow_download else " with atlas.allow_download: true"
    raise SemantoksError(
        f"{local} is missing; put that file there (or set atlas.templateflow_home in config.yaml, or "
        f"TEMPLATEFLOW_HOME, to a folder that holds {relative}), or install templateflow "
        f"(pip install 'semantoks[online]') and go online{download}.")


def _fetch_with_templateflow(relative, home):
    # templateflow reads TEMPLATEFLOW_HOME when first imported, so downloads land in our folder
    os.environ.setdefault("TEMPLATEFLOW_HOME", str(home))
    try:
        from templateflow import api
    except ImportError:
        return None
    space = relative.parent.name.removeprefix("tpl-")
    entities = _entities(relative.name)
    try:
        found = api.get(space, **entities)
    except Exception:  # any failure (offline, unknown template) ends in our one clear error
        return None
    paths = [Path(path) for path in (found if isinstance(found, list) else [found]) if path]
    matches = [path for path in paths if path.name == relative.name and path.is_file()]
    return matches[0] if matches else None


def _entities(file_name):
    stem, _, extension = file_name.partition(".")
    *pairs, suffix = stem.split("_")
    keys = {"res": "resolution"}
    entities = {}
    for pair in pairs[1:]:
        key, value = pair.split("-", 1)
        entities[keys.get(key, key)] = int(value) if key == "res" else value
    return {**entities, "suffix": suffix, "extension": f".{extension}"}
