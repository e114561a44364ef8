from pathlib import Path

from semantoks.language.text_embed import embed_texts
from semantoks.rule_runner import rule_script

with rule_script(snakemake) as log:
    encoder = embed_texts(Path(snakemake.input.reference).parent, snakemake.params.encoder,
                          snakemake.output.embeddings, snakemake.output.encoder)
    log.info("texts embedded with %s", encoder.identity)
