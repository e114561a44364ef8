from pathlib import Path

from semantoks.language.align import align_stage
from semantoks.language.network_tokens import network_token_features
from semantoks.probes.load import load_phenotypes
from semantoks.rule_runner import rule_script

with rule_script(snakemake):
    settings, cohorts = snakemake.params.language, list(snakemake.params.cohorts)
    network_token_features(snakemake.input.checkpoint, snakemake.params.dataset, snakemake.params.atlas_id, cohorts,
                           snakemake.output.tokens, n_crops=snakemake.params.embed["n_crops"],
                           batch_size=snakemake.params.embed["batch_size"])
    phenotypes = load_phenotypes(snakemake.params.dataset, cohorts) if settings["label_transfer"] else None
    align_stage(Path(snakemake.input.reference).parent, snakemake.input.text_embeddings, snakemake.input.text_encoder,
                snakemake.input.features, snakemake.output.tokens, Path(snakemake.output.summary).parent, phenotypes,
                settings["label_transfer"], steps=settings["align_steps"], seed=settings["seed"],
                aligned_features=snakemake.output.aligned)
