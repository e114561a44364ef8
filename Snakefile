# semantoks: fMRIPrep derivatives -> parcel time series -> foundation model -> phenotype probes.
import os

from snakemake.logging import logger
from snakemake.utils import min_version

min_version("9.0")


# the demo config is read only when no --configfile is given: Snakemake would merge it into the user's
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


logger.info(f"semantoks: config read from {', '.join(map(str, workflow.configfiles)) or '--config only'}")



include: "workflow/rules/common.smk"
include: "workflow/rules/atlas.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/fmriprep.smk"
include: "workflow/rules/parcellate.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/language.smk"


rule all:
    input:
        final_targets(),
    default_target: True
