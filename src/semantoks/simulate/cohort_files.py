"""Cohort-level files: participants table, dataset descriptions and the planted ground truth."""

from pathlib import Path

import pandas as pd

from semantoks import __version__
from semantoks.atomic import write_json, write_table_tsv, write_text
from semantoks.simulate.paths import SPACE, cohort_paths, derivative_paths

GENERATOR = "semantoks-simulate"
BIDS_VERSION = "1.9.0"

PARTICIPANT_COLUMNS = {
    "participant_id": {"Description": "Participant label."},
    "age": {"Description": "Age at scan.", "Units": "years"},
    "sex": {"Description": "Sex.", "Levels": {"M": "male", "F": "female"}},
    "diagnosis": {"Description": "Simulated diagnostic group.", "Levels": {"control": "control", "patient": "patient"}},
    "score": {"Description": "Simulated continuous score (standard normal) carried only by Default-network dynamics."},
    "state_order": {"Description": "Direction in which the SomMot-Limbic coupling cycles through its three states; "
                                   "invisible to time-averaged FC and spectra by construction.",
                    "Levels": {"forward": "strong -> none -> negative", "reverse": "strong -> negative -> none"}},
    "site": {"Description": "Simulated acquisition site (A: TR 2.0 s, no sessions; B: TR 1.5 s, sessions).",
             "Levels": {"A": "site A", "B": "site B"}},
}


def participants_frame(plan):
    return pd.DataFrame({
        "participant_id": [s.participant_id for s in plan.subjects],
        "age": [s.age for s in plan.subjects],
        "sex": [s.sex for s in plan.subjects],
        "diagnosis": [s.diagnosis for s in plan.subjects],
        "score": [s.score for s in plan.subjects],
        "state_order": [s.state_order for s in plan.subjects],
        "site": [s.site for s in plan.subjects],
    })


def write_cohort_files(plan, out_root):
    """participants.tsv/.json, both dataset_description.json files, a README and ground_truth.json."""
    paths = cohort_paths(out_root)
    write_table_tsv(paths["participants"], participants_frame(plan))
    write_json(paths["participants_sidecar"], PARTICIPANT_COLUMNS)
    write_json(paths["bids_description"], {
        "Name": "semantoks simulated demo cohort",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "License": "CC0",
        "GeneratedBy": [_generated_by("Raw sidecars only; the BOLD images exist only as simulated derivatives.")],
    })
    write_text(paths["bids_readme"], (
        "Simulated resting-state cohort written by semantoks-simulate. Only JSON sidecars are raw data here;\n"
        "the preprocessed images are in ../derivatives/fmriprep and the planted effects in ../ground_truth.json.\n"))
    write_json(paths["derivatives_description"], {
        "Name": "semantoks simulated fMRIPrep-style derivatives",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [_generated_by(
            "Stands in for fMRIPrep: preprocessed BOLD in MNI152NLin2009cAsym, brain masks and fMRIPrep (>= 21) "
            "confounds tables, simulated with planted network structure and phenotype effects.")],
        "SourceDatasets": [{"URL": "../../bids"}],
    })
    write_json(paths["ground_truth"], ground_truth(plan, out_root))
    return paths


def ground_truth(plan, out_root=None):
    """The planted model: networks, base coupling, phenotype effects, per-subject coupling, amplitudes, spectral
    exponents and coupling-state order."""
    params = plan.params
    return {
        "generator": GENERATOR,
        "version": __version__,
        "seed": plan.seed,
        "space": SPACE,
        "resolution_mm": plan.resolution_mm,
        "networks": list(plan.networks),
        "base_coupling": _rounded(plan.base_coupling),
        "effects": [
            {"phenotype": "diagnosis", "level": "patient", "kind": "coupling", "networks": ["Cont", "Default"],
             "delta": params.patient_cont_default_delta},
            {"phenotype": "diagnosis", "level": "patient", "kind": "amplitude", "networks": ["Default"],
             "factor": params.patient_default_amplitude},
            {"phenotype": "sex", "level": "F", "kind": "amplitude", "networks": ["Vis"],
             "factor": params.female_vis_amplitude},
            {"phenotype": "age", "kind": "coupling", "networks": ["DorsAttn", "Default"],
             "slope_per_year": params.age_dorsattn_default_slope, "centre_years": params.age_centre},
            {"phenotype": "diagnosis", "level": "patient", "kind": "spectral_exponent", "networks": ["SalVentAttn"],
             "delta": params.patient_salventattn_exponent},
            {"phenotype": "age", "kind": "spectral_exponent", "networks": ["Vis"],
             "slope_per_year": params.age_vis_exponent_slope, "centre_years": params.age_centre},
            {"phenotype": "score", "kind": "spectral_exponent", "networks": ["Default"],
             "slope_per_unit": params.score_default_exponent},
            {"phenotype": "state_order", "level": "reverse", "kind": "state_order",
             "networks": list(params.state_networks), "coupling_deltas": list(params.state_coupling_deltas), "dwell_s": list(params.state_dwell_s)},
        ],
        "params": params.as_dict(),
        "subjects": [_subject_truth(plan, subject, out_root) for subject in plan.subjects],
    }


def _subject_truth(plan, subject, out_root):
    runs = []
    for run in plan.runs_of(subject.label):
        entry = {"scan_id": run.scan_id, "session": run.session, "run": run.run, "tr": run.tr,
                 "n_volumes": run.n_volumes, "n_dummy": run.n_dummy, "heavy_motion": run.heavy_motion}
        if out_root is not None:
            entry["bold"] = str(derivative_paths(out_root, run)["bold"].relative_to(Path(out_root)))
        runs.append(entry)
    return {
        "participant_id": subject.participant_id,
        "age": subject.age,
        "sex": subject.sex,
        "diagnosis": subject.diagnosis,
        "score": subject.score,
        "state_order": subject.state_order,
        "site": subject.site,
        "heavy_motion": subject.heavy_motion,
        "expected_coupling": _rounded(subject.expected_coupling),
        "coupling": _rounded(subject.coupling),
        "amplitude": dict(zip(plan.networks, (round(a, 4) for a in subject.amplitude))),
        "spectral_exponent": dict(zip(plan.networks, (round(e, 4) for e in subject.exponent))),
        "runs": runs,
    }


def _generated_by(description):
    return {"Name": GENERATOR, "Version": __version__, "Description": description}


def _rounded(matrix):
    return [[round(value, 4) for value in row] for row in matrix]
