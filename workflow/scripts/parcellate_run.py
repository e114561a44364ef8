from semantoks.atlas import read_atlas
from semantoks.cohorts.derivatives import raw_sidecars
from semantoks.confounds import resolve_strategy
from semantoks.parcellate import parcellate_run, write_unusable_run
from semantoks.rule_runner import rule_script

with rule_script(snakemake) as log:
    run = snakemake.params.run
    denoise = snakemake.params.strategy
    atlas = read_atlas(snakemake.input.labels.rsplit("/", 1)[0], snakemake.params.atlas_id, snakemake.params.space)
    strategy = resolve_strategy(denoise["strategy"], denoise["overrides"])
    common = dict(atlas_id=snakemake.params.atlas_id, atlas_space=snakemake.params.space, cohort=snakemake.wildcards.cohort,
                  tsv_outputs=snakemake.params.outputs["tsv"])
    if run.problem:
        # found unusable when the cohort was indexed (or excluded by the user): recorded in the manifest, not a failure
        qc = write_unusable_run(snakemake.output.timeseries, snakemake.output.qc, atlas.labels, strategy,
                                entities=run.entities, reason=run.problem, source_bold=run.bold, **common)
    else:
        qc = parcellate_run(
            bold_path=run.bold,
            mask_path=run.mask,
            confounds_path=run.confounds,
            sidecar_path=run.sidecar or None,
            tr=run.tr,
            raw_sidecar_paths=raw_sidecars(run.bids, run.entities) if run.bids else (),
            atlas_img=atlas.image,
            labels=atlas.labels,
            strategy=strategy,
            out_parquet=snakemake.output.timeseries,
            out_qc=snakemake.output.qc,
            min_coverage=denoise["min_coverage"],
            max_uncovered_fraction=denoise["max_uncovered_fraction"],
            **common,
        )
    log.info("%s: included=%s %s", run.scan_id, qc["included"], qc.get("reason") or "")
