"""semantoks: fMRIPrep derivatives to network-token foundation models and phenotype probes."""

__version__ = "0.1.0"
