rule embed:
    """Frozen-teacher embeddings of every scan (model), or the same architecture untrained (random_init), at one seed."""
    input:
        unpack(feature_inputs),
    output:
        SEEDED_FEATURES,
    wildcard_constraints:
        feature_set=wildcard_constraint("embed"),
    params:
        dataset=dataset_root,
        atlas_id=ATLAS_ID,
        cohorts=PROBE_COHORTS,
        embed=canonical(config["embed"]),
        # the trained model brings its settings in its checkpoint; random_init builds the section's architecture
        pretrain=lambda wildcards: seeded_pretrain_params(
            wildcards, RANDOM_INIT_KEYS if wildcards.feature_set == "random_init" else ("seed",)
        ),
        code=script_code("embed.py"),
    log:
        f"{R}/logs/features/{{feature_set}}_seed-{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/features/{{feature_set}}_seed-{{seed}}.tsv"
    conda:
        "../../envs/model.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    script:
        "../scripts/embed.py"


rule connectivity_features:
    """Baselines: full Fisher-z FC, its within/between-network means, or per-scan covariances for tangent FC."""
    input:
        unpack(feature_inputs),
    output:
        f"{R}/features/{{feature_set}}.parquet",
    wildcard_constraints:
        feature_set=wildcard_constraint("connectivity_features"),
    params:
        dataset=dataset_root,
        atlas_id=ATLAS_ID,
        cohorts=PROBE_COHORTS,
        code=script_code("static_features.py"),
    log:
        f"{R}/logs/features/{{feature_set}}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=8000,
    script:
        "../scripts/static_features.py"


rule dynamics_features:
    """Baseline: per-network ALFF, fALFF, lag-1 autocorrelation, log-PSD bins and 1/f slope."""
    input:
        unpack(feature_inputs),
    output:
        f"{R}/features/{{feature_set}}.parquet",
    wildcard_constraints:
        feature_set=wildcard_constraint("dynamics_features"),
    params:
        dataset=dataset_root,
        atlas_id=ATLAS_ID,
        cohorts=PROBE_COHORTS,
        code=script_code("static_features.py"),
    log:
        f"{R}/logs/features/{{feature_set}}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=8000,
    script:
        "../scripts/static_features.py"
