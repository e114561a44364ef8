from semantoks.atlas import read_labels_tsv, read_label_image
from semantoks.rule_runner import rule_script
from semantoks.simulate import plan_cohort, simulate_run

with rule_script(snakemake):
    plan = plan_cohort(**snakemake.params.simulate)
    simulate_run(
        plan,
        snakemake.wildcards.scan_id,
        read_label_image(snakemake.input.dseg),
        read_labels_tsv(snakemake.input.labels),
        snakemake.params.root,
    )
