from semantoks.embed import embed_dataset
from semantoks.rule_runner import rule_script

with rule_script(snakemake) as log:
    settings = snakemake.params.pretrain
    frame = embed_dataset(
        snakemake.input.get("checkpoint"),
        snakemake.params.dataset,
        snakemake.params.atlas_id,
        list(snakemake.params.cohorts),
        snakemake.output[0],
        n_crops=snakemake.params.embed["n_crops"],
        batch_size=snakemake.params.embed["batch_size"],
        config=settings,
        seed=settings["seed"],
    )
    log.info("%d scans embedded", len(frame))
