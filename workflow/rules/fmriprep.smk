rule fmriprep_subject:
    """fMRIPrep on one subject of a raw BIDS cohort, through fmriprep-docker or Apptainer."""
    output:
        touch(f"{R}/cohorts/{{cohort}}/fmriprep_done/sub-{{subject}}.done"),
    params:
        bids=lambda wildcards: config["cohorts"][wildcards.cohort]["bids"],
        out=lambda wildcards: str(derivatives_root(R, wildcards.cohort, config["cohorts"][wildcards.cohort])),
        work=fmriprep_work_dir,
        fmriprep=canonical(config["fmriprep"]),
        space=f"{SPACE}:res-{config['atlas']['resolution']}",
        templateflow_home=config["fmriprep"]["templateflow_home"],
        task=lambda wildcards: config["cohorts"][wildcards.cohort]["task"],
    log:
        f"{R}/logs/fmriprep/{{cohort}}/sub-{{subject}}.log",
    benchmark:
        f"{R}/benchmarks/fmriprep/{{cohort}}/sub-{{subject}}.tsv"
    conda:
        "../../envs/fmriprep.yaml"
    threads: config["fmriprep"]["threads"]
    resources:
        mem_mb=config["fmriprep"]["mem_mb"],
        runtime=1440,
    script:
        "../scripts/fmriprep_subject.py"
