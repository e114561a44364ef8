"""The simulated demo cohort: BIDS sidecars and fMRIPrep-style derivatives with planted ground truth."""

from semantoks.simulate.cohort_files import ground_truth, participants_frame, write_cohort_files
from semantoks.simulate.grid import SimulationGrid, build_grid
from semantoks.simulate.params import BASE_COUPLING, NETWORKS, SimulationParams
from semantoks.simulate.paths import cohort_paths, derivative_paths, run_outputs
from semantoks.simulate.plan import CohortPlan, RunPlan, SubjectPlan, plan_cohort
from semantoks.simulate.run import simulate_cohort, simulate_run, simulate_subject

__all__ = [
    "BASE_COUPLING", "CohortPlan", "NETWORKS", "RunPlan", "SimulationGrid", "SimulationParams", "SubjectPlan",
    "build_grid", "cohort_paths", "derivative_paths", "ground_truth", "participants_frame", "plan_cohort",
    "run_outputs", "simulate_cohort", "simulate_run", "simulate_subject", "write_cohort_files",
]
