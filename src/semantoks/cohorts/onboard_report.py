"""The parts of an onboarding report that every cohort source writes (fMRIPrep, BIDS, ROI files)."""

from pathlib import Path

from semantoks.cohorts.phenotype_types import subject_key

SHOWN = 10
# a value the user must replace; the config schema refuses it, so it cannot run by accident
FILL_IN = "FILL_IN"


def phenotype_section(table, participant_column, subjects, guesses, path, report):
    rows = {subject_key(label): label for label in table[participant_column].dropna()}
    scanned = {subject_key(s): s for s in subjects}
    report += ["", f"Phenotypes: {Path(path).resolve()} ({len(table)} rows, column {participant_column})"]
    duplicated = table[participant_column][table[participant_column].duplicated()].dropna().unique()
    listing(report, "Participants listed more than once", [str(d) for d in duplicated])
    without_row = [f"sub-{s}" for k, s in sorted(scanned.items()) if k not in rows]
    report.append(f"Matched: {len(scanned) - len(without_row)} of {len(scanned)} imaging subjects have a phenotype row "
                  "(sub- prefix, case and leading zeros ignored)")
    listing(report, "Subjects with scans but no phenotype row", without_row)
    listing(report, "Phenotype rows without scans", [f"sub-{s}" for k, s in sorted(rows.items()) if k not in scanned])
    report.append("Columns (type guessed; confirm in the YAML):")
    width = max((len(str(g.name)) for g in guesses), default=0)
    for guess in guesses:
        kind = guess.type if guess.kept else "left out"
        note = f" ({guess.reason})" if not guess.kept or "check" in guess.reason else ""
        report.append(f"  {str(guess.name):<{width}}  {kind:<11} {guess.summary}{note}")


def listing(report, title, items):
    if not items:
        return
    report.append(f"{title}: {len(items)}")
    report += [f"  {item}" for item in items[:SHOWN]]
    if len(items) > SHOWN:
        report.append(f"  ... and {len(items) - SHOWN} more")
