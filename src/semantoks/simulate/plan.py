"""The simulated cohort without images: subjects, phenotypes, runs and each subject's planted coupling."""

import dataclasses

import numpy as np

from semantoks.bids_names import scan_id
from semantoks.errors import SemantoksError
from semantoks.simulate.params import BASE_COUPLING, NETWORKS, SimulationParams
from semantoks.simulate.states import ORDERS

TASK = "rest"
DIAGNOSES = ("control", "patient")
SEXES = ("M", "F")
SITES = ("A", "B")
# stream ids keep the draws of plan, subject, anatomy, run, dynamics and coupling states independent of each other
PLAN_STREAM, SUBJECT_STREAM, RUN_STREAM, ANATOMY_STREAM, DYNAMICS_STREAM, STATE_STREAM = 0, 1, 2, 3, 4, 5


def rng_for(seed, *keys):
    """A generator fixed by the seed and the keys, independent of anything drawn elsewhere."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """One BOLD run: its BIDS entities, acquisition and motion class."""

    subject: str
    session: str | None
    task: str
    run: str | None
    order: int
    tr: float
    n_volumes: int
    n_dummy: int
    heavy_motion: bool

    @property
    def entities(self):
        return {"sub": self.subject, "ses": self.session, "task": self.task, "run": self.run}

    @property
    def scan_id(self):
        return scan_id(self.entities)


@dataclasses.dataclass(frozen=True)
class SubjectPlan:
    """One participant: phenotypes and the network coupling, amplitudes, spectral exponents and coupling-state order
    planted in their data."""

    label: str
    number: int
    age: float
    sex: str
    diagnosis: str
    score: float
    site: str
    heavy_motion: bool
    expected_coupling: tuple
    coupling: tuple
    amplitude: tuple
    exponent: tuple
    state_order: str

    @property
    def participant_id(self):
        return f"sub-{self.label}"


@dataclasses.dataclass(frozen=True)
class CohortPlan:
    """Everything the DAG and the simulator need to know before any image exists."""

    seed: int
    resolution_mm: float
    params: SimulationParams
    networks: tuple
    base_coupling: tuple
    subjects: tuple
    runs: tuple

    def subject(self, label):
        label = str(label).removeprefix("sub-")
        for subject in self.subjects:
            if subject.label == label:
                return subject
        raise SemantoksError(f"simulated cohort (seed {self.seed}): no subject '{label}'; use one of the planned subjects.")

    def run(self, scan_id):
        """The planned run with this scan id (`sub-01_task-rest_run-1`)."""
        for run in self.runs:
            if run.scan_id == scan_id:
                return run
        raise SemantoksError(f"simulated cohort (seed {self.seed}): no run '{scan_id}'; use one of the planned scan ids.")

    def runs_of(self, label):
        label = str(label).removeprefix("sub-")
        return tuple(run for run in self.runs if run.subject == label)


def plan_cohort(n_subjects=48, seed=0, resolution_mm=6.0, n_volumes=None, params=None):
    """The cohort for `seed`: cheap, no images, identical for the same arguments."""
    params = params or SimulationParams()
    if n_volumes is not None:
        params = dataclasses.replace(params, n_volumes=tuple(n_volumes))
    if int(n_subjects) < 2:
        raise SemantoksError(f"simulate.n_subjects is {n_subjects}; simulate at least 2 subjects.")
    if not float(resolution_mm) > 0:
        raise SemantoksError(f"simulate.resolution_mm is {resolution_mm}; give a positive voxel size in mm.")
    low, high = params.n_volumes
    if not 20 <= low <= high:
        raise SemantoksError(
            f"simulate n_volumes range {params.n_volumes} is invalid; give (low, high) with 20 <= low <= high.")
    n_subjects = int(n_subjects)
    base = base_coupling_matrix()
    phenotypes = _phenotypes(n_subjects, seed, params)
    width = max(2, len(str(n_subjects)))
    subjects, runs = [], []
    for number, (age, sex, diagnosis, site, heavy, score, state_order) in enumerate(phenotypes, start=1):
        label = f"{number:0{width}d}"
        rng = rng_for(seed, SUBJECT_STREAM, number)
        expected = expected_coupling(base, age, diagnosis, params)
        coupling = _jittered_coupling(expected, rng, params.coupling_jitter_sd)
        amplitude = _amplitudes(sex, diagnosis, rng, params)
        jitter = rng_for(seed, DYNAMICS_STREAM, number).normal(0.0, params.exponent_jitter_sd, size=len(NETWORKS))
        exponent = tuple(float(v) for v in expected_exponent(age, diagnosis, score, params) + jitter)
        subjects.append(SubjectPlan(label, number, age, sex, diagnosis, score, site, heavy, _as_tuple(expected),
                                    _as_tuple(coupling), tuple(amplitude), exponent, str(state_order)))
        runs.extend(_subject_runs(label, site, heavy, rng, params))
    return CohortPlan(int(seed), float(resolution_mm), params, NETWORKS, _as_tuple(base), tuple(subjects), tuple(runs))


def base_coupling_matrix():
    position = {network: i for i, network in enumerate(NETWORKS)}
    matrix = np.eye(len(NETWORKS))
    for (a, b), value in BASE_COUPLING.items():
        matrix[position[a], position[b]] = matrix[position[b], position[a]] = value
    return matrix


def expected_coupling(base, age, diagnosis, params):
    """The base coupling with the diagnosis and age effects applied (before individual jitter)."""
    matrix = base.copy()
    cont, default, dorsattn = (NETWORKS.index(name) for name in ("Cont", "Default", "DorsAttn"))
    if diagnosis == "patient":
        _add_symmetric(matrix, cont, default, params.patient_cont_default_delta)
    _add_symmetric(matrix, dorsattn, default, params.age_dorsattn_default_slope * (age - params.age_centre))
    return matrix


def expected_exponent(age, diagnosis, score, params):
    """Per-network spectral exponents with the diagnosis, age and score effects (before individual jitter)."""
    exponent = np.zeros(len(NETWORKS))
    if diagnosis == "patient":
        exponent[NETWORKS.index("SalVentAttn")] += params.patient_salventattn_exponent
    exponent[NETWORKS.index("Vis")] += params.age_vis_exponent_slope * (age - params.age_centre)
    exponent[NETWORKS.index("Default")] += params.score_default_exponent * score
    return exponent


def _phenotypes(n_subjects, seed, params):
    rng = rng_for(seed, PLAN_STREAM)
    ages = np.round(rng.uniform(*params.age_range, size=n_subjects), 1)
    sexes = rng.permutation(_balanced(SEXES, n_subjects, 0.5))
    diagnoses = rng.permutation(_balanced(DIAGNOSES, n_subjects, 0.5))
    sites = rng.permutation(_balanced(SITES, n_subjects, 1.0 - params.site_b_fraction))
    n_heavy = max(1, int(round(params.heavy_motion_fraction * n_subjects)))
    heavy = np.zeros(n_subjects, dtype=bool)
    heavy[rng.choice(n_subjects, size=n_heavy, replace=False)] = True
    # drawn last so the earlier phenotypes stay what they were before `score` existed
    scores = np.round(rng.standard_normal(n_subjects), 2)
    state_orders = rng.permutation(_balanced(ORDERS, n_subjects, 0.5))
    return [(float(a), str(s), str(d), str(site), bool(h), float(c), str(o))
            for a, s, d, site, h, c, o in zip(ages, sexes, diagnoses, sites, heavy, scores, state_orders)]


def _balanced(levels, n, first_fraction):
    n_first = int(round(first_fraction * n))
    return np.array([levels[0]] * n_first + [levels[1]] * (n - n_first))


def _jittered_coupling(expected, rng, sd):
    n = len(expected)
    noise = np.triu(rng.normal(0.0, sd, size=(n, n)), 1)
    return nearest_correlation(expected + noise + noise.T)


def nearest_correlation(matrix, floor=0.05):
    """A valid correlation matrix close to `matrix`: eigenvalues floored, unit diagonal restored."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    fixed = (vectors * np.maximum(values, floor)) @ vectors.T
    scale = 1.0 / np.sqrt(np.diag(fixed))
    fixed = fixed * scale[:, None] * scale[None, :]
    np.fill_diagonal(fixed, 1.0)
    return fixed


def _amplitudes(sex, diagnosis, rng, params):
    amplitude = np.exp(rng.normal(0.0, params.amplitude_jitter_sd, size=len(NETWORKS)))
    if sex == "F":
        amplitude[NETWORKS.index("Vis")] *= params.female_vis_amplitude
    if diagnosis == "patient":
        amplitude[NETWORKS.index("Default")] *= params.patient_default_amplitude
    return [float(value) for value in amplitude]


def _subject_runs(label, site, heavy, rng, params):
    tr = params.tr_of_site(site)
    n_first = 2 if rng.random() < params.two_run_fraction else 1
    if site == "A":
        sessions = [(None, n_first)]
    else:
        sessions = [("1", n_first)] + ([("2", 1)] if rng.random() < params.second_session_fraction else [])
    runs = []
    for session, n_runs in sessions:
        for index in range(n_runs):
            order = len(runs)
            # a heavy mover's first run is heavy; later runs are a coin flip
            heavy_run = heavy and (order == 0 or rng.random() < 0.5)
            n_volumes = int(rng.integers(params.n_volumes[0], params.n_volumes[1] + 1))
            n_dummy = 2 if rng.random() < params.two_dummy_fraction else 1
            run = str(index + 1) if n_runs > 1 else None
            runs.append(RunPlan(label, session, TASK, run, order, tr, n_volumes, n_dummy, heavy_run))
    return runs


def _add_symmetric(matrix, i, j, value):
    matrix[i, j] += value
    matrix[j, i] += value


def _as_tuple(matrix):
    return tuple(tuple(float(v) for v in row) for row in np.asarray(matrix))
