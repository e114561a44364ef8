"""semantoks: fMRIPrep derivatives to network-token foundation models and phenotype probes."""

import os

from semantoks.lazy import lazy_names

# OpenMP (torch, MKL) otherwise spins its idle worker threads between operations; with any other process on
# the cores that made CPU pretraining 5-10x slower (benchmarks/RESULTS.md). Read when torch loads OpenMP, so
# it is set here, before any module imports torch; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# `semantoks.load_model(path)` loads the API on first use: every module imports this package, and a static
# import here would make every rule's code hash (semantoks.provenance) cover the whole model package
__getattr__, __dir__ = lazy_names(__name__, {"load_model": "api"})
