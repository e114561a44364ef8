from pathlib import Path

from semantoks.language.codes import codes_stage
from semantoks.rule_runner import rule_script

with rule_script(snakemake):
    settings = snakemake.params.language
    codes_stage(snakemake.input.tokens, Path(snakemake.input.reference).parent, Path(snakemake.output.features).parent,
                k=settings["codes_k"], seed=settings["seed"])
