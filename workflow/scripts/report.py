from semantoks.provenance import config_hash
from semantoks.report import build_report, first_scan
from semantoks.rule_runner import rule_script

with rule_script(snakemake):
    build_report(
        snakemake.input.summary,
        list(snakemake.input.probes),
        list(snakemake.input.manifests),
        snakemake.input.log_csv[0] if snakemake.input.log_csv else None,
        first_scan(snakemake.params.dataset, snakemake.params.atlas_id),
        snakemake.input.labels,
        snakemake.output.html,
        config_hash=config_hash(snakemake.config),
        figures_dir=snakemake.output.figures,
        language_json=snakemake.input.language[0] if snakemake.input.get("language") else None,
    )
