from semantoks.probes.summary import summarise
from semantoks.rule_runner import rule_script

with rule_script(snakemake):
    summarise(list(snakemake.input), snakemake.output.summary, snakemake.output.paired)
