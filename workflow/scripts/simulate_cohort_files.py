from semantoks.rule_runner import rule_script
from semantoks.simulate import plan_cohort, write_cohort_files

with rule_script(snakemake):
    write_cohort_files(plan_cohort(**snakemake.params.simulate), snakemake.params.root)
