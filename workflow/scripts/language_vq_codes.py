from pathlib import Path

from semantoks.language.vq_codes import vq_codes_stage
from semantoks.rule_runner import rule_script

with rule_script(snakemake):
    settings = snakemake.params.language
    vq_codes_stage(snakemake.input.tokens, Path(snakemake.input.reference).parent, snakemake.input.text_embeddings,
                   snakemake.input.text_encoder, Path(snakemake.output.features).parent,
                   codebook_size=settings["vq_codebook_size"], steps=settings["vq_steps"], seed=settings["seed"])
