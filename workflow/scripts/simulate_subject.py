from semantoks.atlas import read_labels_tsv, read_label_image
from semantoks.rule_runner import rule_script
from semantoks.simulate import plan_cohort, simulate_subject

with rule_script(snakemake) as log:
    summaries = simulate_subject(
        plan_cohort(**snakemake.params.simulate),
        snakemake.wildcards.subject,
        read_label_image(snakemake.input.dseg),
        read_labels_tsv(snakemake.input.labels),
        snakemake.params.root,
    )
    log.info("sub-%s: %d runs simulated", snakemake.wildcards.subject, len(summaries))
