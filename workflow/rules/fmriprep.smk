rule fmriprep_subject:
    """fMRIPrep on one subject of a raw BIDS cohort, through fmriprep-docker or Apptainer."""
    output:
        touch(R + "/cohorts/{cohort}/fmriprep_done/sub-{subject}.done"),
    params:
        bids=lambda wildcards: config["cohorts"][wildcards.cohort]["bids"],
        out=lambda wildcards: str(derivatives_root(R, wildcards.cohort, config["cohorts"][wildcards.cohort])),
        work=lambda wildcards: f"{config['fmriprep']['work_dir'] or R + '/work/fmriprep'}/{wildcards.cohort}/sub-{wildcards.subject}",
        fmriprep=config["fmriprep"],
        space=f"{SPACE}:res-{config['atlas']['resolution']}",
        templateflow_home=config["fmriprep"]["templateflow_home"],
        task=lambda wildcards: config["cohorts"][wildcards.cohort]["task"],
    log:
        R + "/logs/fmriprep/{cohort}/sub-{subject}.log",
    benchmark:
        R + "/benchmarks/fmriprep/{cohort}/sub-{subject}.tsv"
    conda:
        "../../envs/fmriprep.yaml"
    threads: config["fmriprep"]["threads"]
    resources:
        mem_mb=config["fmriprep"]["mem_mb"],
        runtime=1440,
    script:
        "../scripts/fmriprep_subject.py"
