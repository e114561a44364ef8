"""Every number of the simulation's generative model, in one place (docs/simulated_cohort.md lists them)."""

import dataclasses

# latent networks: the Yeo 7 (17-network atlases map onto them) and Tian's subcortex
NETWORKS = ("Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default", "Subcortex")

# between-network correlation of the latent series for a 44-year-old control before jitter; unlisted pairs 0
BASE_COUPLING = {
    ("Vis", "SomMot"): 0.30,
    ("Vis", "DorsAttn"): 0.35,
    ("SomMot", "DorsAttn"): 0.20,
    ("SomMot", "SalVentAttn"): 0.35,
    ("DorsAttn", "SalVentAttn"): 0.25,
    ("DorsAttn", "Cont"): 0.25,
    ("SalVentAttn", "Cont"): 0.30,
    ("Limbic", "Default"): 0.25,
    ("Cont", "Default"): 0.35,
    ("DorsAttn", "Default"): -0.20,
    ("SalVentAttn", "Default"): -0.15,
    ("Vis", "Default"): -0.10,
    ("Limbic", "Subcortex"): 0.20,
    ("Default", "Subcortex"): 0.10,
    ("SalVentAttn", "Subcortex"): 0.15,
}


@dataclasses.dataclass(frozen=True)
class SimulationParams:
    """Generative-model constants; percentages are of the voxel's baseline intensity."""

    # acquisition
    n_volumes: tuple = (150, 260)
    site_tr: tuple = (("A", 2.0), ("B", 1.5))
    site_b_fraction: float = 0.25
    two_run_fraction: float = 0.6
    second_session_fraction: float = 0.5
    two_dummy_fraction: float = 0.5
    heavy_motion_fraction: float = 0.10
    # neural model
    band_hz: tuple = (0.01, 0.10)
    neural_percent: float = 1.0
    loading_range: tuple = (0.6, 1.0)
    parcel_noise: float = 0.6
    voxel_gain_sd: float = 0.2
    coupling_jitter_sd: float = 0.06
    amplitude_jitter_sd: float = 0.10
    # planted phenotype effects
    patient_cont_default_delta: float = -0.20
    patient_default_amplitude: float = 0.85
    female_vis_amplitude: float = 1.35
    age_dorsattn_default_slope: float = 0.006
    age_centre: float = 44.0
    age_range: tuple = (18.0, 70.0)
    # planted dynamics effects: slope of each network latent's power spectrum inside the band
    exponent_jitter_sd: float = 0.3
    patient_salventattn_exponent: float = 1.5
    age_vis_exponent_slope: float = -0.04
    score_default_exponent: float = 1.0
    # planted state-order effect: the pair's coupling cycles through three states (deltas average 0, so
    # time-averaged FC is unchanged); `state_order` sets the direction, dwell times are the same for all
    state_networks: tuple = ("SomMot", "Limbic")
    state_coupling_deltas: tuple = (0.5, 0.0, -0.5)
    state_dwell_s: tuple = (40.0, 80.0)
    # anatomy and scanner
    baseline: tuple = (("cortex", 540.0), ("wm", 590.0), ("csf", 660.0))
    bias_field_sd: float = 0.05
    thermal_percent: float = 1.5
    site_b_thermal_factor: float = 1.2
    drift_percent: float = 1.0
    dummy_brightening: float = 0.5
    # physiological sources (percent) per tissue: cortex, wm, csf
    systemic_percent: tuple = (0.8, 0.4, 0.6)
    pulsation_percent: tuple = (0.3, 0.05, 1.5)
    systemic_band_hz: tuple = (0.01, 0.15)
    pulsation_high_pass_hz: float = 0.08
    physio_gain_sd: float = 0.3
    # motion: random-walk steps and spikes (normal runs; heavy runs use the heavy_ values)
    step_trans_mm: float = 0.025
    step_rot_rad: float = 0.0004
    spike_rate: float = 0.01
    spike_trans_mm: float = 0.4
    spike_rot_rad: float = 0.005
    heavy_step_trans_mm: float = 0.11
    heavy_step_rot_rad: float = 0.0018
    heavy_spike_rate: float = 0.08
    heavy_spike_trans_mm: float = 1.0
    heavy_spike_rot_rad: float = 0.012
    subject_motion_sd: float = 0.3
    respiration_trans_y_mm: float = 0.03
    motion_residual: float = 0.5
    spin_history_percent_per_mm: float = 2.0

    def tr_of_site(self, site):
        return dict(self.site_tr)[site]

    def as_dict(self):
        return dataclasses.asdict(self)
