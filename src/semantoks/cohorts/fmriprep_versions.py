"""Which fMRIPrep version made each subject of a derivatives tree; mixed versions earn a warning."""

import json
import re
import warnings
from pathlib import Path

_TOML_VERSION = re.compile(r'^\[environment\][^\[]*?^version\s*=\s*"([^"]+)"', re.MULTILINE | re.DOTALL)
_REPORT_VERSION = re.compile(r"fMRIPrep version:\s*(?:<[^>]*>\s*)*([0-9][\w.+-]*)")


def fmriprep_versions(derivatives_root):
    """{version: [subjects]}: from each subject's log/*/fmriprep.toml, its dataset_description.json or its
    HTML report, else from the root dataset_description.json; 'unknown' where none says."""
    root = Path(derivatives_root)
    fallback = generated_by_version(root / "dataset_description.json") or "unknown"
    versions = {}
    for subject_dir in sorted(p for p in root.glob("sub-*") if p.is_dir()):
        subject = subject_dir.name[4:]
        version = _subject_version(root, subject_dir) or fallback
        versions.setdefault(version, []).append(subject)
    return versions


def warn_mixed_versions(derivatives_root):
    """A warning (also returned as text) when subjects were preprocessed by different fMRIPrep versions."""
    versions = fmriprep_versions(derivatives_root)
    if len(versions) < 2:
        return None
    parts = [f"{version} ({len(subjects)}: {', '.join(subjects[:5])}{', ...' if len(subjects) > 5 else ''})"
             for version, subjects in sorted(versions.items())]
    message = (f"{derivatives_root}: subjects were preprocessed by different fMRIPrep versions: {'; '.join(parts)}; "
               "results may differ by version, consider re-running them with one version.")
    warnings.warn(message, stacklevel=2)
    return message


def generated_by_version(description_path):
    """The fMRIPrep version in a dataset_description.json (GeneratedBy, or the older PipelineDescription)."""
    try:
        description = json.loads(Path(description_path).read_text())
    except (OSError, ValueError):
        return None
    generators = description.get("GeneratedBy") or [description.get("PipelineDescription") or {}]
    for generator in generators if isinstance(generators, list) else [generators]:
        if isinstance(generator, dict) and str(generator.get("Name", "")).lower() == "fmriprep":
            return str(generator.get("Version")) if generator.get("Version") else None
    return None


def _subject_version(root, subject_dir):
    for toml in sorted(subject_dir.glob("log/*/fmriprep.toml"), reverse=True):
        match = _TOML_VERSION.search(_read(toml))
        if match:
            return match[1]
    version = generated_by_version(subject_dir / "dataset_description.json")
    if version:
        return version
    match = _REPORT_VERSION.search(_read(root / f"{subject_dir.name}.html"))
    return match[1] if match else None


def _read(path):
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""
