"""Runs of an existing fMRIPrep derivatives tree: BOLD, mask, confounds and sidecar per scan."""

import re
from dataclasses import dataclass, field
from pathlib import Path

from semantoks.bids_names import SCAN_ENTITIES, check_label, parse_entities, scan_id
from semantoks.cohorts.func_index import index_func_files
from semantoks.errors import SemantoksError

BOLD = "_desc-preproc_bold.nii.gz"
SIDECAR = "_desc-preproc_bold.json"
MASK = "_desc-brain_mask.nii.gz"
# fMRIPrep <= 20.x named the confounds table desc-confounds_regressors
CONFOUNDS = ("_desc-confounds_timeseries.tsv", "_desc-confounds_regressors.tsv")
SUFFIXES = (BOLD, SIDECAR, MASK, *CONFOUNDS)
# names the cache files; change it whenever _group_files' output changes
INDEX_KIND = "fmriprep2"
_NAME = re.compile(r"^(?P<entities>sub-[A-Za-z0-9]+(?:_[A-Za-z0-9]+-[A-Za-z0-9]+)*)_[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)+$")
_DERIVED_ENTITY = re.compile(r"_(?:space|res|desc)-")
_SPACE_RES = re.compile(r"_space-([A-Za-z0-9]+)(?:_res-([A-Za-z0-9]+))?_")
_SPACE = re.compile(r"^(?P<space>[A-Za-z0-9]+)(?::res-(?P<res>[A-Za-z0-9]+))?$")


@dataclass(frozen=True)
class RunRecord:
    """One BOLD run; `problem` says why the pipeline must skip it (None when usable).

    Paths are strings: building tens of thousands of Path objects would make every Snakefile parse slow.
    """

    entities: dict
    scan_id: str
    bold: str | None
    mask: str | None
    confounds: str | None
    sidecar: str | None
    space: str
    res: str | None = None
    problem: str | None = None
    spaces_found: tuple = field(default=(), compare=False)

    @property
    def subject(self):
        return self.entities["sub"]

    @property
    def session(self):
        return self.entities.get("ses")

    @property
    def task(self):
        return self.entities.get("task")

    @property
    def run(self):
        return self.entities.get("run")

    @property
    def scan_dir(self):
        """`sub-X[/ses-Y]/func`, relative to the derivatives root."""
        parts = [f"sub-{self.subject}"] + ([f"ses-{self.session}"] if self.session else [])
        return "/".join([*parts, "func"])

    def paths(self):
        """The four input files, for the pipeline's job inputs."""
        return {"bold": self.bold, "mask": self.mask, "confounds": self.confounds, "sidecar": self.sidecar}


def parse_space(space, res=None):
    """('MNI152NLin2009cAsym', '2') from 'MNI152NLin2009cAsym:res-2' (fMRIPrep's --output-spaces syntax)."""
    match = _SPACE.match(str(space))
    if not match:
        raise SemantoksError(
            f"space '{space}': not a template name with an optional :res-N; write it as e.g. MNI152NLin2009cAsym:res-2.")
    res = match["res"] if match["res"] is not None else (None if res is None else str(res))
    return match["space"], res


def find_preprocessed_runs(derivatives_root, space, task=None, res=None, cache_dir=None, preferred_res=None):
    """Every run of an fMRIPrep derivatives tree, with its files in `space` (e.g. 'MNI152NLin2009cAsym:res-2').

    Runs missing the BOLD in that space, a mask, confounds or a sidecar are kept with `problem` set.
    `preferred_res` (the config's atlas.resolution) picks one grid when a run has the space at several.
    """
    space, res = parse_space(space, res)
    if task is not None:
        check_label(task, "task", "cohort task filter")
    root = str(Path(derivatives_root))
    runs = []
    for folder, group in scan_groups(root, cache_dir):
        if task is not None and group["entities"].get("task") != task:
            continue
        runs.append(_record(f"{root}/{folder}", group, space, res, preferred_res))
    return runs


def scan_groups(derivatives_root, cache_dir=None):
    """(func folder, {entities, scan_id, bold/sidecar/mask: [[space, res, name]], confounds}) per scan."""
    root = check_derivatives_root(derivatives_root)
    listing = index_func_files(root, SUFFIXES, INDEX_KIND, cache_dir, summarize=lambda f, n: _group_files(root, f, n))
    for folder, groups in listing.items():
        for group in groups:
            yield folder, group


def _group_files(root, folder, names):
    groups = {}
    for name in names:
        if not _NAME.match(name):
            parse_entities(Path(root, folder, name))  # raises the clear error for a non-BIDS name
        # files of one run share the entities before space/res/desc: parse those once per run
        prefix = _DERIVED_ENTITY.split(name, 1)[0]
        group = groups.get(prefix)
        if group is None:
            entities = dict(pair.split("-", 1) for pair in prefix.split("_"))
            _check_folder(root, folder, name, entities)
            if "task" not in entities:
                raise SemantoksError(
                    f"{Path(root, folder, name)}: a BOLD run needs a task- entity; rename the file the BIDS way.")
            group = groups[prefix] = {
                "entities": {k: entities[k] for k in SCAN_ENTITIES if k in entities}, "scan_id": scan_id(entities),
                "prefix": prefix, "bold": [], "sidecar": [], "mask": [], "confounds": None,
            }
        _add_file(group, name[len(prefix):])
    return sorted(groups.values(), key=lambda group: group["scan_id"])


def check_derivatives_root(derivatives_root):
    root = Path(derivatives_root)
    if not root.is_dir():
        raise SemantoksError(f"{root}: the fMRIPrep derivatives folder does not exist; fix the derivatives path.")
    return root


def format_space(space, res):
    return f"{space}:res-{res}" if res is not None else space


def _add_file(group, name):
    """Record a file by its name after the run's prefix (`_space-..._desc-preproc_bold.nii.gz`), to keep the cache small."""
    if name.endswith(CONFOUNDS):
        # keep the newer name when both are present
        if group["confounds"] is None or name.endswith(CONFOUNDS[0]):
            group["confounds"] = name
        return
    space = _SPACE_RES.search(name)
    if space is None:
        return
    kind = "bold" if name.endswith(BOLD) else "sidecar" if name.endswith(SIDECAR) else "mask"
    group[kind].append([space[1], space[2], name])


def _same_res(label, preferred):
    # fMRIPrep writes res-2 where TemplateFlow writes res-02
    return label is not None and str(label).lstrip("0") == str(preferred).lstrip("0")


def _check_folder(root, folder, name, entities):
    parts = folder.split("/")
    session = parts[1][4:] if len(parts) == 3 else None
    if entities["sub"] != parts[0][4:] or entities.get("ses") != session:
        raise SemantoksError(
            f"{root / folder / name}: the file's sub/ses entities do not match its folder; move it into its subject's folder.")


def _record(folder, group, space, res, preferred_res=None):
    stem = f"{folder}/{group['prefix']}"
    files = {kind: {(sp, r): name for sp, r, name in group[kind]} for kind in ("bold", "mask", "sidecar")}
    keys = sorted((key for key in files["bold"] if key[0] == space and (res is None or key[1] == res)), key=str)
    found = tuple(sorted(format_space(*key) for key in files["bold"]))
    problems, paths = [], dict.fromkeys(("bold", "mask", "sidecar"))
    if len(keys) > 1 and preferred_res is not None:
        keys = [key for key in keys if _same_res(key[1], preferred_res)] or keys
    if len(keys) > 1:
        resolutions = ", ".join(f"res-{key[1]}" for key in keys)
        choices = [str(key[1]).lstrip("0") or "0" for key in keys]
        problems.append(f"preprocessed BOLD in {space} at several resolutions ({resolutions}); pick one with "
                        f"atlas.resolution: {choices[0]} in the config (one of {', '.join(choices)})")
    elif not keys:
        have = f" (found: {', '.join(found)})" if found else ""
        problems.append(f"no preprocessed BOLD in space {format_space(space, res)}{have}")
    else:
        (key,) = keys
        res = key[1]
        paths["bold"] = f"{stem}{files['bold'][key]}"
        for kind, what in (("mask", "brain mask (desc-brain_mask)"), ("sidecar", "BOLD JSON sidecar")):
            if key in files[kind]:
                paths[kind] = f"{stem}{files[kind][key]}"
            else:
                problems.append(f"no {what} beside the BOLD")
    confounds = f"{stem}{group['confounds']}" if group["confounds"] else None
    if confounds is None:
        problems.append("no confounds table (desc-confounds_timeseries.tsv)")
    return RunRecord(
        entities=group["entities"], scan_id=group["scan_id"], confounds=confounds, space=space, res=res,
        problem="; ".join(problems) + "." if problems else None, spaces_found=found, **paths,
    )
