"""What the Snakemake DAG needs to know before any job runs: atlas id, cohorts' runs, output paths."""

from dataclasses import dataclass
from pathlib import Path

from semantoks.bids_names import subject_dir
from semantoks.errors import SemantoksError


@dataclass(frozen=True)
class PlannedRun:
    """One BOLD run of a cohort, with where its inputs are (or will be) and where its outputs go."""

    cohort: str
    # (key, label) pairs of the BIDS entities; a tuple keeps the record hashable
    entity_items: tuple
    scan_id: str
    bold: str
    mask: str
    confounds: str
    sidecar: str
    problem: str | None = None

    @property
    def entities(self):
        return dict(self.entity_items)

    @property
    def subject(self):
        return self.entities["sub"]

    @property
    def session(self):
        return self.entities.get("ses")

    @property
    def scan_dir(self):
        return f"{subject_dir(self.entities).as_posix()}/func"


def atlas_spec_from_config(config):
    from semantoks.atlas import AtlasSpec

    atlas = config["atlas"]
    if atlas["family"] == "brainsemantoks457":
        return AtlasSpec(family="brainsemantoks457", space=atlas["space"], resolution=atlas["resolution"],
                         dseg=atlas["custom"].get("dseg"))
    if atlas["family"] == "custom":
        custom = atlas["custom"]
        missing = [key for key in ("name", "dseg", "labels") if not custom.get(key)]
        if missing:
            raise SemantoksError(f"config.yaml: atlas.family is custom but atlas.custom.{missing[0]} is not set; add it.")
        return AtlasSpec(
            family="custom",
            space=atlas["space"],
            resolution=atlas["resolution"],
            name=custom["name"],
            dseg=custom["dseg"],
            labels=custom["labels"],
            network_table=custom.get("network_table"),
        )
    return AtlasSpec(
        family="schaefer",
        n_parcels=atlas["n_parcels"],
        n_networks=atlas["n_networks"],
        space=atlas["space"],
        resolution=atlas["resolution"],
        subcortex=atlas["subcortex"],
    )


def cohort_root(results, cohort):
    """Where a simulated cohort, or fMRIPrep run by the workflow, writes its BIDS tree and derivatives."""
    return Path(results) / "cohorts" / cohort


def derivatives_root(results, cohort, cohort_config):
    if cohort_config["source"] == "fmriprep":
        return Path(cohort_config["derivatives"])
    if cohort_config["source"] == "bids" and cohort_config.get("derivatives"):
        return Path(cohort_config["derivatives"])
    return cohort_root(results, cohort) / "derivatives" / "fmriprep"


def planned_runs(config, cohort):
    """Every BOLD run of `cohort`, known at parse time so each becomes its own job."""
    cohort_config = config["cohorts"][cohort]
    source = cohort_config["source"]
    # fMRIPrep's output space must match the atlas grid, resolution included
    space = f"{config['atlas']['space']}:res-{config['atlas']['resolution']}"
    results = config["results"]
    cache_dir = Path(results) / ".cache"
    if source == "simulated":
        return _simulated_runs(config, cohort)
    if source == "fmriprep":
        from semantoks.cohorts.derivatives import find_preprocessed_runs

        root = cohort_config.get("derivatives")
        if not root:
            raise SemantoksError(f"config.yaml: cohort '{cohort}' has source fmriprep but no derivatives path; set cohorts.{cohort}.derivatives.")
        # existing derivatives: any grid of the space (fMRIPrep omits res- unless asked); the atlas is resampled to it
        records = find_preprocessed_runs(root, space=config["atlas"]["space"], task=cohort_config.get("task"),
                                         cache_dir=cache_dir, preferred_res=config["atlas"]["resolution"])
        return [_from_record(cohort, record) for record in records]
    if source == "bids":
        from semantoks.cohorts.bids_raw import expected_fmriprep_outputs, find_bids_runs

        if not cohort_config.get("bids"):
            raise SemantoksError(f"config.yaml: cohort '{cohort}' has source bids but no bids path; set cohorts.{cohort}.bids.")
        out_root = derivatives_root(results, cohort, cohort_config)
        runs = find_bids_runs(cohort_config["bids"], task=cohort_config.get("task"), cache_dir=cache_dir)
        return [_from_record(cohort, expected_fmriprep_outputs(run, out_root, space)) for run in runs]
    return []


def _entity_items(entities):
    return tuple((key, value) for key, value in entities.items() if value is not None)


def _from_record(cohort, record):
    return PlannedRun(
        cohort=cohort,
        entity_items=_entity_items(record.entities),
        scan_id=record.scan_id,
        bold=_path_or_empty(record.bold),
        mask=_path_or_empty(record.mask),
        confounds=_path_or_empty(record.confounds),
        sidecar=_path_or_empty(record.sidecar),
        problem=getattr(record, "problem", None),
    )


def _path_or_empty(path):
    return str(path) if path else ""


def _simulated_runs(config, cohort):
    from semantoks.simulate import derivative_paths, plan_cohort

    settings = config["cohorts"][cohort]["simulate"]
    plan = plan_cohort(**settings)
    root = cohort_root(config["results"], cohort)
    runs = []
    for run in plan.runs:
        paths = derivative_paths(root, run)
        runs.append(
            PlannedRun(
                cohort=cohort,
                entity_items=_entity_items(run.entities),
                scan_id=paths["scan_id"],
                bold=str(paths["bold"]),
                mask=str(paths["mask"]),
                confounds=str(paths["confounds"]),
                sidecar=str(paths["sidecar"]),
            )
        )
    return runs


def bids_string(value):
    """A BIDS entity value: letters and digits only (`36P_scrub` -> `36Pscrub`)."""
    return "".join(ch for ch in str(value) if ch.isalnum())
