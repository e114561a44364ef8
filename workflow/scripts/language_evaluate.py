from pathlib import Path

from semantoks.language.evaluate import evaluate_stage
from semantoks.probes.load import load_phenotypes
from semantoks.rule_runner import rule_script

with rule_script(snakemake):
    settings = snakemake.params.language
    evaluate_stage(Path(snakemake.input.reference).parent, snakemake.input.text_embeddings, snakemake.input.text_encoder,
                   snakemake.input.features, snakemake.input.tokens, Path(snakemake.input.heads).parent,
                   snakemake.output.json, snakemake.output.tsv,
                   baselines={"network_fc": snakemake.input.network_fc, "random_init": snakemake.input.random_init},
                   codes_parquet=snakemake.input.codes, vq_parquet=snakemake.input.vq_codes,
                   codebook_usage={"codes": snakemake.input.codes_usage, "vq_codes": snakemake.input.vq_usage},
                   phenotypes=load_phenotypes(snakemake.params.dataset, list(snakemake.params.cohorts)),
                   label_transfer_phenotypes=settings["label_transfer"], few_shot_ks=settings["few_shot_ks"],
                   few_shot_draws=settings["few_shot_draws"], split_repeats=settings["split_repeats"],
                   test_size=settings["test_size"], align_steps=settings["align_steps"], seed=settings["seed"])
