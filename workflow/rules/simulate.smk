localrules:
    simulate_cohort_files,


rule simulate_subject:
    """Every run of one subject of the simulated demo cohort, standing in for fMRIPrep's outputs."""
    input:
        labels=ATLAS_LABELS,
        dseg=ATLAS_DSEG,
    output:
        # one job per subject (not per run) halves the demo's fixed per-job cost; the marker stands for its runs
        touch(f"{R}/cohorts/{{cohort}}/simulate_done/sub-{{subject}}.done"),
    params:
        simulate=lambda wildcards: canonical(config["cohorts"][wildcards.cohort]["simulate"]),
        root=lambda wildcards: f"{R}/cohorts/{wildcards.cohort}",
        code=script_code("simulate_subject.py"),
    log:
        f"{R}/logs/simulate/{{cohort}}/sub-{{subject}}.log",
    group:
        "simulate"
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    script:
        "../scripts/simulate_subject.py"


rule simulate_cohort_files:
    """participants.tsv, dataset descriptions and the planted ground truth of the demo cohort."""
    output:
        participants=f"{R}/cohorts/{{cohort}}/bids/participants.tsv",
        participants_sidecar=f"{R}/cohorts/{{cohort}}/bids/participants.json",
        bids_description=f"{R}/cohorts/{{cohort}}/bids/dataset_description.json",
        bids_readme=f"{R}/cohorts/{{cohort}}/bids/README",
        derivatives_description=f"{R}/cohorts/{{cohort}}/derivatives/fmriprep/dataset_description.json",
        ground_truth=f"{R}/cohorts/{{cohort}}/ground_truth.json",
    params:
        simulate=lambda wildcards: canonical(config["cohorts"][wildcards.cohort]["simulate"]),
        root=lambda wildcards: f"{R}/cohorts/{wildcards.cohort}",
        code=script_code("simulate_cohort_files.py"),
    log:
        f"{R}/logs/simulate/{{cohort}}/cohort_files.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/simulate_cohort_files.py"
