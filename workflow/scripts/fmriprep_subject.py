from semantoks.cohorts.fmriprep_runner import run_fmriprep_subject
from semantoks.rule_runner import rule_script

with rule_script(snakemake):
    run_fmriprep_subject(
        snakemake.wildcards.subject,
        snakemake.params.bids,
        snakemake.params.out,
        snakemake.params.work,
        settings=snakemake.params.fmriprep,
        space=snakemake.params.space,
        # fMRIPrep's own output goes beside the rule log, which rule_script owns
        log_path=snakemake.log[0] + ".fmriprep",
        templateflow_home=snakemake.params.templateflow_home,
        task=snakemake.params.task,
    )
