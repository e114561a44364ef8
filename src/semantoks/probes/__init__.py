"""Linear probes of phenotypes from frozen embeddings and functional-connectivity baselines."""

from semantoks.probes.features import align_feature_sets
from semantoks.probes.labels import expand_phenotype_specs, phenotype_job_names
from semantoks.probes.probe import probe_phenotype, run_probes
from semantoks.probes.splits import subject_splits
from semantoks.probes.summary import summarise

__all__ = [
    "align_feature_sets",
    "expand_phenotype_specs",
    "phenotype_job_names",
    "probe_phenotype",
    "run_probes",
    "subject_splits",
    "summarise",
]
