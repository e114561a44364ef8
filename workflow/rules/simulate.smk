SIM_DERIV = f"{R}/cohorts/{{cohort}}/derivatives/fmriprep/{{scan_dir}}/{{scan_id}}"


rule simulate_run:
    """One run of the simulated demo cohort, standing in for fMRIPrep's outputs."""
    input:
        labels=ATLAS_LABELS,
        dseg=ATLAS_DSEG,
    output:
        bold=f"{SIM_DERIV}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
        sidecar=f"{SIM_DERIV}_space-MNI152NLin2009cAsym_desc-preproc_bold.json",
        mask=f"{SIM_DERIV}_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz",
        confounds=f"{SIM_DERIV}_desc-confounds_timeseries.tsv",
        confounds_sidecar=f"{SIM_DERIV}_desc-confounds_timeseries.json",
        raw_sidecar=f"{R}/cohorts/{{cohort}}/bids/{{scan_dir}}/{{scan_id}}_bold.json",
    params:
        simulate=lambda wildcards: config["cohorts"][wildcards.cohort]["simulate"],
        root=lambda wildcards: f"{R}/cohorts/{wildcards.cohort}",
        code=CODE_VERSION,
    log:
        f"{R}/logs/simulate/{{cohort}}/{{scan_dir}}/{{scan_id}}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=1500,
    script:
        "../scripts/simulate_run.py"


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
        simulate=lambda wildcards: config["cohorts"][wildcards.cohort]["simulate"],
        root=lambda wildcards: f"{R}/cohorts/{wildcards.cohort}",
        code=CODE_VERSION,
    log:
        f"{R}/logs/simulate/{{cohort}}/cohort_files.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/simulate_cohort_files.py"
