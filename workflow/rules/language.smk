rule descriptors:
    """Per-scan descriptors of four families and their texts, z-scored on the language split's training subjects."""
    input:
        partitions=[PARTITION.format(cohort=c) for c in PROBE_COHORTS],
    output:
        descriptors=f"{LANG}/descriptors/descriptors.parquet",
        texts=f"{LANG}/descriptors/texts.parquet",
        reference=f"{LANG}/descriptors/reference.json",
        skipped=f"{LANG}/descriptors/skipped.tsv",
    params:
        dataset=dataset_root,
        atlas_id=ATLAS_ID,
        cohorts=PROBE_COHORTS,
        language=canonical(LANGUAGE),
        code=script_code("language_descriptors.py"),
    log:
        f"{R}/logs/language/descriptors.log",
    benchmark:
        f"{R}/benchmarks/language/descriptors.tsv"
    conda:
        "../../envs/language.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    script:
        "../scripts/language_descriptors.py"


rule text_embed:
    """Every descriptor text in the frozen text space of the configured encoder, loaded with no network."""
    input:
        texts=rules.descriptors.output.texts,
        reference=rules.descriptors.output.reference,
    output:
        embeddings=f"{LANG}/text_embeddings.parquet",
        encoder=f"{LANG}/text_encoder.json",
    params:
        encoder=LANGUAGE["text_encoder"],
        code=script_code("language_text_embed.py"),
    log:
        f"{R}/logs/language/text_embed.log",
    benchmark:
        f"{R}/benchmarks/language/text_embed.tsv"
    conda:
        "../../envs/language.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/language_text_embed.py"


rule align:
    """Network tokens of the frozen teacher, then scan-, network- and label-transfer heads onto the text space."""
    input:
        reference=rules.descriptors.output.reference,
        text_embeddings=rules.text_embed.output.embeddings,
        text_encoder=rules.text_embed.output.encoder,
        features=MODEL_FEATURES,
        checkpoint=CHECKPOINT,
        partitions=[PARTITION.format(cohort=c) for c in PROBE_COHORTS],
        phenotypes=[PHENOTYPE_TABLE.format(cohort=c) for c in PROBE_COHORTS],
    output:
        tokens=f"{LANG}/network_tokens.parquet",
        summary=f"{LANG}/heads/align.json",
        aligned=ALIGNED_FEATURES,
    params:
        dataset=dataset_root,
        atlas_id=ATLAS_ID,
        cohorts=PROBE_COHORTS,
        language=canonical(LANGUAGE),
        embed=config["embed"],
        code=script_code("language_align.py"),
    log:
        f"{R}/logs/language/align.log",
    benchmark:
        f"{R}/benchmarks/language/align.tsv"
    conda:
        "../../envs/language.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    script:
        "../scripts/language_align.py"


rule codes:
    """Cosine k-means vocabulary of network tokens, its usage, code names and per-scan code features."""
    input:
        tokens=rules.align.output.tokens,
        reference=rules.descriptors.output.reference,
        texts=rules.descriptors.output.texts,
    output:
        features=f"{LANG}/codes/codes_{LANGUAGE['codes_k']}.parquet",
        names=f"{LANG}/codes/codes_{LANGUAGE['codes_k']}_names.tsv",
        usage=f"{LANG}/codes/codes_{LANGUAGE['codes_k']}_usage.json",
    params:
        language=canonical(LANGUAGE),
        code=script_code("language_codes.py"),
    log:
        f"{R}/logs/language/codes.log",
    benchmark:
        f"{R}/benchmarks/language/codes.tsv"
    conda:
        "../../envs/language.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/language_codes.py"


rule vq_codes:
    """Stage 1 trained: the text-aligned VQ tokenizer over network tokens, its codebook usage and per-scan codes."""
    input:
        tokens=rules.align.output.tokens,
        reference=rules.descriptors.output.reference,
        text_embeddings=rules.text_embed.output.embeddings,
        text_encoder=rules.text_embed.output.encoder,
    output:
        features=VQ_FEATURES,
        usage=f"{LANG}/vq/vq_{LANGUAGE['vq_codebook_size']}_usage.json",
        tokenizer=f"{LANG}/vq/vq_{LANGUAGE['vq_codebook_size']}_tokenizer.pt",
    params:
        language=canonical(LANGUAGE),
        code=script_code("language_vq_codes.py"),
    log:
        f"{R}/logs/language/vq_codes.log",
    benchmark:
        f"{R}/benchmarks/language/vq_codes.tsv"
    conda:
        "../../envs/language.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/language_vq_codes.py"


rule language_eval:
    """Text retrieval beside ridge, random-init and FC baselines, constant-prediction rows, repeated splits, attribute probes, label transfer beside a same-subject probe and few-shot."""
    input:
        reference=rules.descriptors.output.reference,
        text_embeddings=rules.text_embed.output.embeddings,
        text_encoder=rules.text_embed.output.encoder,
        features=MODEL_FEATURES,
        network_fc=FEATURES.format(feature_set="network_fc"),
        random_init=RANDOM_INIT_FEATURES,
        descriptors=rules.descriptors.output.descriptors,
        tokens=rules.align.output.tokens,
        heads=rules.align.output.summary,
        codes=rules.codes.output.features,
        codes_usage=rules.codes.output.usage,
        vq_codes=rules.vq_codes.output.features,
        vq_usage=rules.vq_codes.output.usage,
        partitions=[PARTITION.format(cohort=c) for c in PROBE_COHORTS],
        phenotypes=[PHENOTYPE_TABLE.format(cohort=c) for c in PROBE_COHORTS],
    output:
        json=f"{LANG}/evaluation.json",
        tsv=f"{LANG}/evaluation.tsv",
    params:
        dataset=dataset_root,
        cohorts=PROBE_COHORTS,
        language=canonical(LANGUAGE),
        code=script_code("language_evaluate.py"),
    log:
        f"{R}/logs/language/evaluate.log",
    benchmark:
        f"{R}/benchmarks/language/evaluate.tsv"
    conda:
        "../../envs/language.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/language_evaluate.py"
