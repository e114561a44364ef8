"""`semantoks onboard`: index a new cohort, report what would be skipped, write its config.yaml entry."""

import argparse
import json
from collections import Counter
from pathlib import Path

import yaml

from semantoks.atomic import write_text
from semantoks.bids_names import check_label
from semantoks.cohorts.bids_raw import BidsRun, bids_metadata, find_bids_runs
from semantoks.cohorts.derivatives import find_preprocessed_runs, format_space, parse_space
from semantoks.cohorts.fmriprep_versions import fmriprep_versions
from semantoks.cohorts.onboard_cli import DEFAULT_SPACE, add_arguments
from semantoks.cohorts.onboard_report import FILL_IN, listing, phenotype_section
from semantoks.cohorts.phenotype_types import guess_columns, read_participants
from semantoks.errors import SemantoksError

def onboard(name, phenotypes=None, derivatives=None, bids=None, participant_column="participant_id", task=None,
            space=DEFAULT_SPACE, out=None, cache_dir=None, roi=None, pattern=None, site_column=None, tr_column=None,
            parcellation=None, labels=None):
    """(cohort entry dict, report text); with `out`, the entry is also written there as YAML for config.yaml."""
    check_label(name, "cohort", "--name")
    if roi:
        from semantoks.cohorts.onboard_roi import onboard_roi

        entry, guesses, report = onboard_roi(name, roi, pattern, phenotypes, participant_column, site_column,
                                             tr_column, parcellation, labels)
        return _finish(name, entry, guesses, report, out)
    if not derivatives and not bids:
        raise SemantoksError("onboard: none of --derivatives, --bids or --roi given; pass the cohort's fMRIPrep, "
                             "BIDS or ROI time-series folder.")
    space_name, res = parse_space(space)
    report = [f"Cohort {name}: onboarding report", ""]
    has_derivatives = derivatives and any(p.is_dir() for p in Path(derivatives).glob("sub-*"))
    if has_derivatives:
        subjects = _derivative_runs(derivatives, bids, task, space, cache_dir, report)
    else:
        subjects = _raw_runs(bids, derivatives, task, space_name, res, cache_dir, report)
    guesses = []
    if phenotypes:
        table = read_participants(phenotypes, participant_column)
        guesses = guess_columns(table, participant_column)
        phenotype_section(table, participant_column, subjects, guesses, phenotypes, report)
    else:
        report += ["", "Phenotypes: no table given (--phenotypes); the cohort can be pretrained on but not probed."]
    entry = {"source": "fmriprep" if has_derivatives else "bids"}
    for key, value in (("derivatives", derivatives), ("bids", bids)):
        if value:
            entry[key] = str(Path(value).resolve())
    if task:
        entry["task"] = task
    if phenotypes:
        entry["phenotypes"] = {
            "table": str(Path(phenotypes).resolve()),
            "participant_column": participant_column,
            "columns": {g.name: g.type for g in guesses if g.kept},
        }
    return _finish(name, entry, guesses, report, out)


def _finish(name, entry, guesses, report, out):
    if out:
        write_text(out, cohort_yaml(name, entry, guesses))
        report += ["", f"Wrote the cohort entry to {out}: check the column types, then copy it under cohorts: in config.yaml."]
    return entry, "\n".join(report) + "\n"


def cohort_yaml(name, entry, guesses):
    """The entry as YAML text; columns left out are written as comments with the reason."""
    lines = [
        "# Written by `semantoks onboard`: check the phenotype column types, then copy this under cohorts: in config.yaml.",
        "# Columns left out are commented; uncomment one (binary, categorical or continuous) to use it.",
        "cohorts:",
        f"  {_key(name)}:",
    ]
    for key in ("source", "derivatives", "bids", "task"):
        if key in entry:
            lines.append(f"    {key}: {_value(entry[key])}")
    if "roi" in entry:
        lines += _roi_lines(entry["roi"])
    if "phenotypes" not in entry:
        return "\n".join(lines) + "\n"
    pheno = entry["phenotypes"]
    lines += ["    phenotypes:", f"      table: {_value(pheno['table'])}",
              f"      participant_column: {_value(pheno['participant_column'])}"]
    lines.append("      columns:" if pheno["columns"] else "      columns: {}")
    for guess in guesses:
        if guess.kept:
            lines.append(f"        {_key(guess.name)}: {guess.type}  # {guess.summary}")
        else:
            suggestion = "continuous" if " to " in guess.summary else "categorical"
            lines.append(f"        # {_key(guess.name)}: {suggestion}  # left out: {guess.reason}")
    return "\n".join(lines) + "\n"


def _roi_lines(roi):
    """The roi: block; values the user must fill (FILL_IN) carry a comment saying what to put there."""
    notes = {"parcellation": "FILL_IN: the atlas the series were extracted with, letters and digits (e.g. CC200)",
             "labels": "FILL_IN: labels table, one row per file column (name, network)"}
    lines = ["    roi:"]
    for key, value in roi.items():
        if key == "tr_by_site":
            lines.append("      tr_by_site:")
            for site, tr in value.items():
                comment = "  # FILL_IN: this site's TR in seconds" if tr == FILL_IN else ""
                lines.append(f"        {_key(site)}: {tr if tr == FILL_IN else f'{tr:g}'}{comment}")
        elif key == "tr" and value == FILL_IN:
            lines.append(f"      tr: {FILL_IN}  # FILL_IN: the repetition time in seconds")
        elif value == FILL_IN:
            lines.append(f"      {key}: {FILL_IN}  # {notes[key]}")
        else:
            lines.append(f"      {key}: {_value(value)}")
    return lines


def main(args=None):
    """Entry point of `semantoks onboard`; `args` is the parsed namespace or an argv list."""
    if args is None or isinstance(args, (list, tuple)):
        args = add_arguments(argparse.ArgumentParser(prog="semantoks onboard")).parse_args(args)
    # the CLI may define only some of onboard_cli's options
    option = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    cache_dir = False if option("no_cache") else option("cache_dir")
    _, report = onboard(args.name, option("phenotypes"), derivatives=option("derivatives"), bids=option("bids"),
                        participant_column=option("participant_column", "participant_id"), task=option("task"),
                        space=option("space", DEFAULT_SPACE), out=option("out", "cohort.yaml"), cache_dir=cache_dir,
                        roi=option("roi"), pattern=option("pattern"), site_column=option("site_column"),
                        tr_column=option("tr_column"), parcellation=option("parcellation"), labels=option("labels"))
    if option("report"):
        write_text(args.report, report)
    print(report, end="")
    return 0


def _derivative_runs(derivatives, bids, task, space, cache_dir, report):
    records = find_preprocessed_runs(derivatives, space, task=task, cache_dir=cache_dir)
    subjects = sorted({r.subject for r in records})
    usable = [r for r in records if r.problem is None]
    report.append(f"fMRIPrep derivatives: {Path(derivatives).resolve()}")
    _run_summary(records, subjects, report)
    versions = fmriprep_versions(derivatives)
    mixed = " <- MIXED: consider re-running with one version" if len(versions) > 1 else ""
    report.append("fMRIPrep versions: " + "; ".join(
        f"{v} ({len(s)} subjects)" for v, s in sorted(versions.items())) + mixed)
    spaces = Counter(s for r in records for s in r.spaces_found)
    report.append("Spaces present (runs): " + (", ".join(f"{s} {n}" for s, n in spaces.most_common()) or "none"))
    report.append(f"Usable in {space}: {len(usable)} of {len(records)} runs")
    listing(report, "Runs that will be skipped", [f"{r.scan_id}: {r.problem}" for r in records if r.problem])
    no_tr = []
    trs = Counter()
    for record in usable:
        tr = _sidecar_tr(record.sidecar)
        if tr is not None:
            trs[tr] += 1
            continue
        raw = _bids_tr(bids, record) if bids else None
        hint = f" (the raw BIDS metadata says {raw:g} s: add it to this sidecar)" if raw else ""
        no_tr.append(f"{record.scan_id}: {Path(record.sidecar).name} has no RepetitionTime{hint}")
    _tr_summary(trs, no_tr, report)
    return subjects


def _raw_runs(bids, derivatives, task, space, res, cache_dir, report):
    if not bids:
        raise SemantoksError(f"{derivatives}: no sub-* folders with fMRIPrep outputs; pass --bids to run fMRIPrep into it.")
    runs = find_bids_runs(bids, task=task, cache_dir=cache_dir)
    subjects = sorted({r.subject for r in runs})
    report.append(f"Raw BIDS: {Path(bids).resolve()} (fMRIPrep will write {format_space(space, res)} outputs"
                  + (f" to {derivatives})" if derivatives else ")"))
    _run_summary(runs, subjects, report)
    trs, no_tr = Counter(), []
    for run in runs:
        tr = bids_metadata(run, bids).get("RepetitionTime")
        if isinstance(tr, (int, float)):
            trs[float(tr)] += 1
        else:
            no_tr.append(f"{run.scan_id}: no RepetitionTime in its sidecars")
    _tr_summary(trs, no_tr, report)
    return subjects


def _run_summary(runs, subjects, report):
    sessions = {(r.subject, r.session) for r in runs if r.session}
    tasks = Counter(r.task for r in runs)
    report.append(f"Runs: {len(runs)} of {len(subjects)} subjects, {len(sessions)} sessions; tasks: "
                  + (", ".join(f"{t} {n}" for t, n in tasks.most_common()) or "none"))
    if not runs:
        report.append("  No BOLD runs found: check the folder and the --task filter.")


def _tr_summary(trs, no_tr, report):
    report.append("Repetition times (s): " + (", ".join(f"{tr:g} ({n} runs)" for tr, n in sorted(trs.items())) or "none"))
    listing(report, "Runs without RepetitionTime (their parcellation stops with an error until it is added)", no_tr)


def _sidecar_tr(path):
    try:
        tr = json.loads(Path(path).read_text()).get("RepetitionTime")
    except (OSError, ValueError, AttributeError):
        return None
    return float(tr) if isinstance(tr, (int, float)) and tr > 0 else None


def _bids_tr(bids, record):
    folder = Path(bids) / record.scan_dir
    bold = folder / f"{record.scan_id}_bold.nii.gz"
    tr = bids_metadata(BidsRun(record.entities, record.scan_id, bold), bids).get("RepetitionTime")
    return float(tr) if isinstance(tr, (int, float)) and tr > 0 else None


def _key(name):
    text = str(name)
    return text if _reads_back(f"{text}: 1", {text: 1}) and "#" not in text else json.dumps(text)


def _value(value):
    text = str(value)
    return text if _reads_back(f"k: {text}", {"k": text}) and "#" not in text else json.dumps(text)


def _reads_back(line, expected):
    """Whether YAML reads `line` back as `expected` (a column such as 'Unnamed: 0.1' needs quotes)."""
    try:
        return yaml.safe_load(line) == expected
    except yaml.YAMLError:
        return False
