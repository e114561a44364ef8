"""Linear probes of phenotypes from frozen embeddings and functional-connectivity baselines."""

from semantoks.lazy import lazy_names

# each public name and the submodule that defines it; loaded on first use
_PUBLIC = {
    "align_feature_sets": "features",
    "expand_phenotype_specs": "labels",
    "phenotype_job_names": "labels",
    "probe_phenotype": "probe",
    "run_probes": "probe",
    "subject_splits": "splits",
    "summarise": "summary",
}
__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
