rule pretrain:
    """Self-distilled network-token model at one seed; torchrun with one process per requested GPU.

    One job per seed of `pretrain.seeds` (parallel on a cluster). Resumable state lives in
    {MODEL_SEED_DIR}/state (no output, so Snakemake never deletes it); the outputs are the final
    checkpoint and log, copied there when training ends.
    """
    input:
        partitions=[PARTITION.format(cohort=c) for c in PRETRAIN_COHORTS],
        # online evaluation of phenotypes and pretrain.hold_out read the dataset's phenotype tables
        phenotypes=[PHENOTYPE_TABLE.format(cohort=c) for c in PRETRAIN_COHORTS]
        if config["pretrain"]["eval_phenotypes"] or config["pretrain"]["hold_out"]
        else [],
    output:
        checkpoint=f"{MODEL_SEED_DIR}/checkpoint.pt",
        log_csv=f"{MODEL_SEED_DIR}/log.csv",
    params:
        # the settings that decide the model at this seed; execution keys (logging, budgets, runtime) are read from the config by the script
        pretrain=lambda wildcards: seeded_pretrain_params(wildcards),
        dataset=dataset_root,
        atlas_id=ATLAS_ID,
        cohorts=PRETRAIN_COHORTS,
        out_dir=lambda wildcards, output: str(Path(output.checkpoint).parent),
        code=script_code("pretrain.py"),
    log:
        f"{MODEL_SEED_DIR}/pretrain.log",
    benchmark:
        f"{MODEL_SEED_DIR}/benchmark.tsv"
    conda:
        "../../envs/model.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        gpu=config["pretrain"]["gpus"],
        runtime=config["pretrain"]["runtime"],
    script:
        "../scripts/pretrain.py"
