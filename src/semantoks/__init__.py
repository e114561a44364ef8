"""semantoks: fMRIPrep derivatives to network-token foundation models and phenotype probes."""

__version__ = "0.1.0"


def load_model(path, device="cpu"):
    """A trained encoder from a checkpoint.pt or an exported folder; see semantoks.api.SemantoksModel."""
    from semantoks.api import load_model as _load_model

    return _load_model(path, device)
