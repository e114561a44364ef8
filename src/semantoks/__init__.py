"""semantoks: fMRIPrep derivatives to network-token foundation models and phenotype probes."""

import importlib
import os

# OpenMP (torch, MKL) otherwise spins its idle worker threads between operations; with any other process on
# the cores that made CPU pretraining 5-10x slower (benchmarks/RESULTS.md). Read when torch loads OpenMP, so
# it is set here, before any module imports torch; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"


def load_model(path, device="cpu"):
    """A trained encoder from a checkpoint.pt or an exported folder; see semantoks.api.SemantoksModel."""
    # imported by name at call time: every module imports this package, and a static import here would make
    # every rule's code hash (semantoks.provenance) cover the whole model package
    return importlib.import_module("semantoks.api").load_model(path, device)
