"""The func/ folders of a BIDS-style tree (sub-*/[ses-*/]func), listed once and cached by folder mtimes."""

import hashlib
import json
import logging
import os
from pathlib import Path

from semantoks.atomic import write_text
from semantoks.bids_names import check_label
from semantoks.errors import SemantoksError

INDEX_FORMAT = 1
log = logging.getLogger(__name__)


def default_cache_dir():
    """$SEMANTOKS_CACHE_DIR, else $XDG_CACHE_HOME/semantoks, else ~/.cache/semantoks."""
    if os.environ.get("SEMANTOKS_CACHE_DIR"):
        return Path(os.environ["SEMANTOKS_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "semantoks"


def index_func_files(root, suffixes, kind, cache_dir=None, summarize=None):
    """{'sub-X[/ses-Y]/func': sorted names ending in one of `suffixes`} for every subject under `root`.

    Only subject, session and func folders are read (never anat/ or figures/). `summarize(folder, names)`,
    if given, replaces the names by a JSON-able summary, which is cached with them. With a cache, a subject
    whose folders' mtimes are unchanged is neither listed nor summarised again; cache_dir=False turns it off.
    """
    root = Path(root).resolve()
    suffixes = tuple(suffixes)
    cache_path = None if cache_dir is False else _cache_path(cache_dir, root, suffixes, kind)
    cached = _read_cache(cache_path, root) if cache_path else {}
    subjects, changed = {}, False
    try:
        entries = sorted((e.name for e in os.scandir(root) if e.name.startswith("sub-") and e.is_dir()))
    except OSError as error:
        raise SemantoksError(f"{root}: cannot list the folder ({error.strerror}); check the path and permissions.") from None
    for name in entries:
        check_label(name[4:], "subject", f"{root}/{name}")
        previous = cached.get(name)
        if previous is not None and _unchanged(root, previous["stamps"]):
            subjects[name] = previous
        else:
            subjects[name] = _scan_subject(root, name, suffixes, summarize)
            changed = True
    if cache_path and (changed or set(cached) != set(subjects)):
        _write_cache(cache_path, root, subjects)
    return {folder: files for subject in subjects.values() for folder, files in subject["folders"].items()}


def _scan_subject(root, subject, suffixes, summarize):
    stamps = {subject: _stamp(f"{root}/{subject}")}
    folders = {}
    for child in sorted(os.scandir(f"{root}/{subject}"), key=lambda e: e.name):
        if not child.is_dir():
            continue
        if child.name == "func":
            _scan_func(root, f"{subject}/func", suffixes, summarize, stamps, folders)
        elif child.name.startswith("ses-"):
            check_label(child.name[4:], "session", child.path)
            session = f"{subject}/{child.name}"
            stamps[session] = _stamp(f"{root}/{session}")
            if os.path.isdir(f"{root}/{session}/func"):
                _scan_func(root, f"{session}/func", suffixes, summarize, stamps, folders)
    return {"stamps": stamps, "folders": folders}


def _scan_func(root, folder, suffixes, summarize, stamps, folders):
    stamps[folder] = _stamp(f"{root}/{folder}")
    names = sorted(e.name for e in os.scandir(f"{root}/{folder}") if e.name.endswith(suffixes) and not e.name.startswith("."))
    if names:
        folders[folder] = summarize(folder, names) if summarize else names


def _stamp(path):
    mtime = os.stat(path).st_mtime_ns
    # on file systems with whole-second mtimes a file added within the same second would look unchanged
    return -1 if mtime % 1_000_000_000 == 0 else mtime


def _unchanged(root, stamps):
    try:
        return all(stamp != -1 and os.stat(f"{root}/{folder}").st_mtime_ns == stamp for folder, stamp in stamps.items())
    except OSError:
        return False


def _cache_path(cache_dir, root, suffixes, kind):
    key = hashlib.sha1("\n".join((str(root), kind, *suffixes)).encode()).hexdigest()[:16]
    return Path(cache_dir or default_cache_dir()) / f"index-{kind}-{key}.json"


def _read_cache(path, root):
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if data.get("format") != INDEX_FORMAT or data.get("root") != str(root):
        return {}
    return data.get("subjects", {})


def _write_cache(path, root, subjects):
    text = json.dumps({"format": INDEX_FORMAT, "root": str(root), "subjects": subjects}, separators=(",", ":"))
    try:
        write_text(path, text)
    except OSError as error:
        # a read-only cache location only costs speed
        log.warning("could not write the index cache %s (%s); indexing will not be cached", path, error)
