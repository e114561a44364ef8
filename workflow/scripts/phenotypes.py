from semantoks.dataset import read_manifest_file
from semantoks.phenotypes import read_phenotypes, write_phenotypes
from semantoks.rule_runner import rule_script

with rule_script(snakemake) as log:
    settings = snakemake.params.phenotypes
    subjects = read_manifest_file(snakemake.input.manifest)["subject"].unique()
    table = snakemake.input.get("table")
    phenotypes, report = read_phenotypes(
        table,
        participant_column=settings["participant_column"],
        columns=settings["columns"],
        subjects=subjects,
        cohort=snakemake.wildcards.cohort,
        missing=settings.get("missing_values"),
        classes=settings.get("classes"),
    )
    write_phenotypes(phenotypes, snakemake.output[0], settings["columns"])
    log.info("%s", report)
