import os
import sys
from pathlib import Path

# the package lives in src/; jobs (and conda envs) import it from there, installed or not
SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
_inherited = dict(os.environ).get("PYTHONPATH", "")
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (SRC, _inherited) if p))

from snakemake import __version__ as SNAKEMAKE_VERSION
from snakemake.scheduling.job_scheduler import JobScheduler
from semantoks.snakemake_threads import reserve_lone_jobs

# Snakemake 9.10-9.16 run more threads than --cores without it (benchmarks/RESULTS.md, "Threads within --cores")
reserve_lone_jobs(JobScheduler, SNAKEMAKE_VERSION)

from semantoks.bids_names import xcpd_paths
from semantoks.cohorts.roi_import import import_phenotype_values
from semantoks.cohorts.roi_scans import find_roi_scans
from semantoks.config import workflow_config
from semantoks.config_checks import PHENOTYPE_NAME_CHARS
from semantoks.features.registry import wildcard_constraint
from semantoks.probes.fusion import ALIGNED_FEATURE_SET, feature_files, language_feature_sets, probed_feature_sets
from semantoks.model.config import rerun_settings as pretrain_rerun_settings
from semantoks.probes.labels import phenotype_job_names
from semantoks.provenance import canonical, code_hash_for_script
from semantoks.seeds import pretrain_seeds, split_seed
from semantoks.results_owner import claim_results_folder
from semantoks.workflow_plan import (
    atlas_spec_from_config,
    bids_string,
    derivatives_root,
    plan_workflow,
)

config.update(workflow_config(config, workflow.configfiles))

R = config["results"]
# checked when the Snakefile is parsed (jobs re-parse it in subprocesses: the main process checks); claimed only
# when jobs run, so a dry run or --lint writes nothing
if workflow.is_main_process:
    claim_results_folder(R, os.getcwd(), workflow.configfiles, write=False)


onstart:
    claim_results_folder(R, os.getcwd(), workflow.configfiles)
ATLAS = atlas_spec_from_config(config)
ATLAS_ID, PLANNED_RUNS = plan_workflow(config)
ROI_ONLY = all(cohort["source"] == "roi" for cohort in config["cohorts"].values())
SPACE = (next(iter(config["cohorts"].values()))["roi"].get("space") or "unknown") if ROI_ONLY else config["atlas"]["space"]
STRATEGY = config["denoise"]["strategy"]
DESC = bids_string(STRATEGY)
COHORTS = list(config["cohorts"])

RUNS = {cohort: {run.scan_id: run for run in runs} for cohort, runs in PLANNED_RUNS.items()}
SIMULATED = [c for c in COHORTS if config["cohorts"][c]["source"] == "simulated"]
ROI_COHORTS = [c for c in COHORTS if config["cohorts"][c]["source"] == "roi"]
BIDS_COHORTS = [c for c in COHORTS if config["cohorts"][c]["source"] == "bids"]
PRETRAIN_COHORTS = config["pretrain"]["cohorts"] or COHORTS
PROBE_COHORTS = config["probe"]["cohorts"] or COHORTS
# continuous phenotypes with bins also get a <name>_binned job
PHENOTYPES = phenotype_job_names(config["probe"]["phenotypes"])
# what shapes the random-init control: the architecture, its inputs' preparation and the seed (extra may hold model
# keys; read through pretrain_rerun_settings, so an operational key under extra reruns nothing)
RANDOM_INIT_KEYS = ("preset", "model", "window", "patch_len", "model_tr", "band_pass", "zscore", "filter_order", "clip_mad", "seed",
                    "extra")
# model and random_init are drawn once per pretraining seed (`model@1`), pooled in the probes (semantoks/seeds.py)
PRETRAIN_SEEDS = pretrain_seeds(config["pretrain"])
FEATURE_SETS = probed_feature_sets(config["probe"]["feature_sets"], config["pretrain"]["enabled"], PRETRAIN_SEEDS)
# fused sets (model+network_fc) are built in the probe from these files
FEATURE_FILES = feature_files(FEATURE_SETS)


wildcard_constraints:
    cohort="[A-Za-z0-9]+",
    subject="[A-Za-z0-9]+",
    scan_dir=r"sub-[A-Za-z0-9]+(/ses-[A-Za-z0-9]+)?/func",
    scan_id=r"sub-[A-Za-z0-9]+(_[a-z]+-[A-Za-z0-9]+)*",
    phenotype=PHENOTYPE_NAME_CHARS,
    feature_set="[a-z_]+",
    seed="-?[0-9]+",


ATLAS_LABELS = f"{R}/atlas/{ATLAS_ID}/labels.tsv"
ATLAS_DSEG = f"{R}/atlas/{ATLAS_ID}/dseg.nii.gz"
TIMESERIES = f"{R}/timeseries/{{cohort}}/{{scan_dir}}/{{scan_id}}_space-{SPACE}_atlas-{ATLAS_ID}_desc-{DESC}_timeseries.parquet"
RUN_QC = TIMESERIES.replace("_timeseries.parquet", "_qc.json")
# XCP-D-named TSVs beside each run's Parquet (outputs.tsv)
RUN_TSVS = xcpd_paths(TIMESERIES) if config["outputs"]["tsv"] else {}
ROI_IMPORT_INDEX = f"{R}/timeseries/{{cohort}}/roi_import.tsv"
PARTITION = f"{R}/dataset/timeseries/atlas={ATLAS_ID}/cohort={{cohort}}/part-0.parquet"
MANIFEST = f"{R}/dataset/manifest/atlas={ATLAS_ID}/cohort={{cohort}}/part-0.parquet"
PHENOTYPE_TABLE = f"{R}/dataset/phenotypes/cohort={{cohort}}/part-0.parquet"
# one folder per pretraining seed; MODEL_DIR and CHECKPOINT are the first seed's (the language stages and the report use it)
MODEL_SEED_DIR = f"{R}/models/{config['pretrain']['preset']}_{ATLAS_ID}/seed-{{seed}}"
MODEL_DIR = MODEL_SEED_DIR.format(seed=PRETRAIN_SEEDS[0])
CHECKPOINT = f"{MODEL_DIR}/checkpoint.pt"
FEATURES = f"{R}/features/{{feature_set}}.parquet"
SEEDED_FEATURES = f"{R}/features/{{feature_set}}/seed-{{seed}}.parquet"
MODEL_FEATURES = SEEDED_FEATURES.format(feature_set="model", seed=PRETRAIN_SEEDS[0])
RANDOM_INIT_FEATURES = SEEDED_FEATURES.format(feature_set="random_init", seed=PRETRAIN_SEEDS[0])
LANGUAGE = config["language"]
LANG = f"{R}/language"
# the language sets are probed in their own job per phenotype, so a language.* edit reruns no other probe
ALIGNED_FEATURES = FEATURES.format(feature_set=ALIGNED_FEATURE_SET)
CODES_FEATURES = f"{LANG}/codes/codes_{LANGUAGE['codes_k']}.parquet"
VQ_FEATURES = f"{LANG}/vq/vq_{LANGUAGE['vq_codebook_size']}.parquet"
LANGUAGE_FEATURE_FILES = dict(zip(language_feature_sets(LANGUAGE), (ALIGNED_FEATURES, CODES_FEATURES, VQ_FEATURES)))


def script_code(name):
    """A rule's `code` param: its script and the semantoks modules it imports, so edits rerun only its jobs."""
    return code_hash_for_script(Path(workflow.basedir) / "workflow" / "scripts" / name)


def run_of(wildcards):
    try:
        return RUNS[wildcards.cohort][wildcards.scan_id]
    except KeyError:
        raise ValueError(f"no run {wildcards.scan_id} in cohort {wildcards.cohort}") from None


def parcellate_inputs(wildcards):
    run = run_of(wildcards)
    inputs = {"labels": ATLAS_LABELS, "dseg": ATLAS_DSEG}
    if run.problem:
        # unusable or excluded in the config: recorded from the plan, none of its files needed
        return inputs
    if wildcards.cohort in SIMULATED:
        # the demo simulates a subject's runs in one job; its marker stands for all of them
        inputs["simulated"] = f"{R}/cohorts/{wildcards.cohort}/simulate_done/sub-{run.subject}.done"
    elif wildcards.cohort in BIDS_COHORTS and config["fmriprep"]["runner"] != "existing":
        # fMRIPrep writes a subject's runs in one job; its marker stands for all of them
        inputs["fmriprep"] = f"{R}/cohorts/{wildcards.cohort}/fmriprep_done/sub-{run.subject}.done"
    else:
        # the sidecar is optional when the cohort sets tr or bids
        paths = dict(bold=run.bold, mask=run.mask, confounds=run.confounds, sidecar=run.sidecar)
        inputs.update({kind: path for kind, path in paths.items() if path})
    return inputs


def run_outputs(cohort, pattern):
    return [
        pattern.format(cohort=cohort, scan_dir=run.scan_dir, scan_id=run.scan_id)
        for run in RUNS[cohort].values()
    ]


def roi_settings(cohort):
    return config["cohorts"][cohort]["roi"]


def roi_parcellation_inputs(wildcards):
    roi = roi_settings(ROI_COHORTS[0])
    return {"labels": roi["labels"], **({"dseg": roi["dseg"]} if roi.get("dseg") else {})}


def roi_import_inputs(wildcards):
    """The cohort's source files (so adding, editing or deleting one reruns the import) and its tables."""
    roi = roi_settings(wildcards.cohort)
    inputs = {"sources": [str(scan.source) for scan in find_roi_scans(roi["files"], roi["pattern"])],
              "labels": roi["labels"]}
    if roi.get("dseg"):
        inputs["dseg"] = roi["dseg"]
    return inputs


def roi_import_phenotypes(wildcards):
    """The phenotype cells the import reads (TR, site, mean FD), as a digest: a param, not the table as an input,
    so a copy of the table or an edit of another column reruns nothing."""
    return import_phenotype_values(roi_settings(wildcards.cohort), config["cohorts"][wildcards.cohort]["phenotypes"])


def partition_inputs(wildcards):
    if wildcards.cohort in ROI_COHORTS:
        return {"roi": ROI_IMPORT_INDEX.format(cohort=wildcards.cohort), "labels": ATLAS_LABELS}
    return {
        "timeseries": run_outputs(wildcards.cohort, TIMESERIES),
        "qc": run_outputs(wildcards.cohort, RUN_QC),
        "labels": ATLAS_LABELS,
    }


def phenotype_table_path(cohort):
    table = config["cohorts"][cohort]["phenotypes"]["table"]
    if table:
        return table
    if cohort in SIMULATED:
        return f"{R}/cohorts/{cohort}/bids/participants.tsv"
    return None


def phenotype_inputs(wildcards):
    inputs = {"manifest": MANIFEST.format(cohort=wildcards.cohort)}
    table = phenotype_table_path(wildcards.cohort)
    if table:
        inputs["table"] = table
        # a BIDS sidecar's Levels name the class codes: editing it reruns the table; a simulated cohort writes its
        # sidecar in the same run, so it is an input before it exists (else the next dry run reruns the table)
        sidecar = Path(table).with_suffix(".json")
        if sidecar.is_file() or config["cohorts"][wildcards.cohort]["source"] == "simulated":
            inputs["levels"] = str(sidecar)
    return inputs


def fmriprep_work_dir(wildcards):
    base = config["fmriprep"]["work_dir"] or f"{R}/work/fmriprep"
    return f"{base}/{wildcards.cohort}/sub-{wildcards.subject}"


def dataset_root(wildcards, input):
    """The dataset root, derived from a partition input so jobs need no hard-coded prefix."""
    partition = input.partitions[0] if "partitions" in input.keys() else input.partition
    return str(Path(partition).parents[3])


def phenotype_types(wildcards):
    """The declared type of every phenotype column of the probed cohorts (a probe param)."""
    return canonical(
        {
            column: kind
            for cohort in PROBE_COHORTS
            for column, kind in config["cohorts"][cohort]["phenotypes"]["columns"].items()
        }
    )


def probe_records():
    """Every per-phenotype probe record: the main ones, then the language sets' (merged per phenotype)."""
    records = expand(f"{R}/probes/{{phenotype}}.json", phenotype=PHENOTYPES)
    if LANGUAGE_FEATURE_FILES:
        records += expand(f"{R}/probes/language/{{phenotype}}.json", phenotype=PHENOTYPES)
    return records


def feature_inputs(wildcards):
    partitions = [PARTITION.format(cohort=c) for c in PROBE_COHORTS]
    if wildcards.feature_set == "model":
        return {"partitions": partitions, "checkpoint": f"{MODEL_SEED_DIR}/checkpoint.pt".format(seed=wildcards.seed)}
    return {"partitions": partitions}


def feature_path(name):
    """The file of a file-level feature set; one drawn at a pretraining seed (`model@1`) has one per seed."""
    base, seed = split_seed(name)
    return FEATURES.format(feature_set=name) if seed is None else SEEDED_FEATURES.format(feature_set=base, seed=seed)


def seeded_pretrain_params(wildcards, keys=None):
    """The pretrain section at this job's seed, without `seeds` (a new seed must not rerun the others);
    only `keys` when given. Execution keys stay out (read from the config by the script)."""
    section = {k: v for k, v in pretrain_rerun_settings(config["pretrain"]).items() if k != "seeds"}
    section["seed"] = int(wildcards.seed)
    return canonical({k: v for k, v in section.items() if keys is None or k in keys})


def final_targets():
    targets = [f"{R}/dataset/dataset_description.json"]
    targets += [PARTITION.format(cohort=c) for c in COHORTS]
    targets += [PHENOTYPE_TABLE.format(cohort=c) for c in COHORTS]
    if PHENOTYPES:
        targets += [f"{R}/probes/summary.tsv", f"{R}/report/report.html"]
    if LANGUAGE["enabled"]:
        targets += [f"{LANG}/evaluation.json", f"{LANG}/codes/codes_{LANGUAGE['codes_k']}.parquet"]
    return targets
