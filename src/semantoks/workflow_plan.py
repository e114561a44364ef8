"""What the Snakemake DAG needs to know before any job runs: atlas id, cohorts' runs, output paths."""

from dataclasses import dataclass, replace
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
    # the cohort's repetition-time override (s), used instead of the sidecar's RepetitionTime
    tr: float | None = None
    # raw BIDS root whose sidecars stand in when the derivative sidecar has no RepetitionTime
    bids: str | None = None

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
        return with_escape_hatches(cohort, cohort_config, _simulated_runs(config, cohort))
    if source == "fmriprep":
        from semantoks.cohorts.derivatives import find_preprocessed_runs

        root = cohort_config.get("derivatives")
        if not root:
            raise SemantoksError(f"config.yaml: cohort '{cohort}' has source fmriprep but no derivatives path; set cohorts.{cohort}.derivatives.")
        # a TR override or raw BIDS sidecars make the derivative sidecar optional
        need_sidecar = not (cohort_config.get("tr") or cohort_config.get("tr_by_site") or cohort_config.get("bids"))
        # existing derivatives: any grid of the space (fMRIPrep omits res- unless asked); the atlas is resampled to it
        records = find_preprocessed_runs(root, space=config["atlas"]["space"], task=cohort_config.get("task"),
                                         cache_dir=cache_dir, preferred_res=config["atlas"]["resolution"],
                                         need_sidecar=need_sidecar)
        return with_escape_hatches(cohort, cohort_config, [_from_record(cohort, record) for record in records])
    if source == "bids":
        from semantoks.cohorts.bids_raw import expected_fmriprep_outputs, find_bids_runs

        if not cohort_config.get("bids"):
            raise SemantoksError(f"config.yaml: cohort '{cohort}' has source bids but no bids path; set cohorts.{cohort}.bids.")
        out_root = derivatives_root(results, cohort, cohort_config)
        runs = find_bids_runs(cohort_config["bids"], task=cohort_config.get("task"), cache_dir=cache_dir)
        planned = [_from_record(cohort, expected_fmriprep_outputs(run, out_root, space)) for run in runs]
        return with_escape_hatches(cohort, cohort_config, planned)
    return []


def with_escape_hatches(cohort, cohort_config, runs):
    """Runs with the cohort's `exclude` (as their skip reason), `tr`/`tr_by_site` and raw `bids` sidecars applied."""
    excluded = _exclusions(cohort, cohort_config, runs)
    site_trs = _site_trs(cohort, cohort_config, runs) if cohort_config.get("tr_by_site") else {}
    bids = cohort_config.get("bids") or None
    planned = []
    for run in runs:
        reason = excluded.get(run.scan_id) or excluded.get(("sub", run.subject))
        tr = site_trs.get(run.subject, cohort_config.get("tr"))
        changes = {"tr": float(tr) if tr is not None else None, "bids": bids}
        if reason:
            changes["problem"] = f"Excluded in the config: {reason}"
        planned.append(replace(run, **changes))
    return planned


def _exclusions(cohort, cohort_config, runs):
    """{scan_id or ('sub', label): reason}; an entry that names no run of the cohort is a typo, so refused."""
    from semantoks.cohorts.phenotype_types import subject_key

    key = f"cohorts.{cohort}.exclude"
    scans, subjects = {run.scan_id for run in runs}, {subject_key(run.subject): run.subject for run in runs}
    excluded = {}
    for position, entry in enumerate(cohort_config.get("exclude") or []):
        if ("subject" in entry) == ("scan" in entry):
            raise SemantoksError(f"config.yaml: {key}[{position}] must name exactly one of subject or scan; fix the entry.")
        if "scan" in entry:
            if entry["scan"] not in scans:
                raise SemantoksError(f"config.yaml: {key}[{position}] names scan {entry['scan']}, which cohort '{cohort}' "
                                     f"does not have (e.g. {next(iter(sorted(scans)), 'none')}); fix the scan id.")
            excluded[entry["scan"]] = entry["reason"]
        else:
            subject = subjects.get(subject_key(entry["subject"]))
            if subject is None:
                raise SemantoksError(f"config.yaml: {key}[{position}] names subject {entry['subject']}, which cohort "
                                     f"'{cohort}' has no run of; fix the subject label.")
            excluded[("sub", subject)] = entry["reason"]
    return excluded


def _site_trs(cohort, cohort_config, runs):
    """{subject: TR} from the phenotype table's site column and `tr_by_site`."""
    from semantoks.cohorts.phenotype_types import read_participants, subject_key

    key = f"cohorts.{cohort}"
    table, column = cohort_config["phenotypes"].get("table"), cohort_config.get("site_column")
    if not table or not column:
        raise SemantoksError(f"config.yaml: {key}.tr_by_site needs {key}.site_column and {key}.phenotypes.table "
                             "to find each subject's site; set both, or use tr.")
    participant_column = cohort_config["phenotypes"].get("participant_column", "participant_id")
    participants = read_participants(table, participant_column)
    if column not in participants.columns:
        raise SemantoksError(f"{table}: no column '{column}'; set {key}.site_column to the site column.")
    sites = {subject_key(label): _site_label(site) for label, site in zip(participants[participant_column], participants[column])
             if isinstance(label, str) and site == site}
    by_site = {str(site): value for site, value in cohort_config["tr_by_site"].items()}
    trs = {}
    for run in runs:
        site = sites.get(subject_key(run.subject))
        if site in by_site:
            trs[run.subject] = by_site[site]
        elif site is not None and cohort_config.get("tr") is None:
            raise SemantoksError(f"config.yaml: site '{site}' of subject {run.subject} has no repetition time; "
                                 f"add it under {key}.tr_by_site (e.g. {site}: 2.0) or set {key}.tr.")
    return trs


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


def source_datasets(config):
    """BIDS `SourceDatasets` and `DatasetLinks` (cohort name -> file URI) for the cohorts' input folders."""
    links = {}
    for cohort, settings in config["cohorts"].items():
        source = settings["source"]
        if source == "simulated":
            folder = cohort_root(config["results"], cohort)
        elif source == "roi":
            files = settings.get("roi", {}).get("files")
            folder = files if isinstance(files, str) else None
        else:
            folder = settings.get("derivatives") if source == "fmriprep" else settings.get("bids")
        if folder:
            links[cohort] = Path(folder).resolve().as_uri()
    return [{"URL": uri} for uri in links.values()], links


def _site_label(site):
    # a numeric site column reads as float: 20.0 must match tr_by_site's key 20
    return str(int(site)) if isinstance(site, float) and site.is_integer() else str(site)


def bids_string(value):
    """A BIDS entity value: letters and digits only (`36P_scrub` -> `36Pscrub`)."""
    return "".join(ch for ch in str(value) if ch.isalnum())


def plan_workflow(config):
    """(atlas id, {cohort: [PlannedRun]}): what the DAG will run, after every check the Snakefile makes at parse time.

    The Snakefile and `semantoks check-config` both call this, so a config that checks clean plans the same runs.
    """
    from semantoks.cohorts.roi_parcellation import check_mixed_sources, parcellation_id

    atlas_id = atlas_spec_from_config(config).atlas_id
    # ROI cohorts bring their own parcellation: its name is the atlas id of every output, partition and model
    roi_atlas_id = parcellation_id(config)
    check_mixed_sources(config, roi_atlas_id, atlas_id)
    return roi_atlas_id or atlas_id, {cohort: planned_runs(config, cohort) for cohort in config["cohorts"]}
