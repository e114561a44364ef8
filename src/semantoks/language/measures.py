"""The numeric measures behind the descriptor texts: gradients, graph metrics, network dynamics.

Every function takes plain arrays (one scan) so it can be checked by hand on small matrices. Network FC
and the spectral/temporal measures come from the features package (one implementation with the probes).
"""

import networkx as nx
import numpy as np
from scipy.linalg import eigh
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components

from semantoks.features.dynamics import MIN_FRAMES, falff, lag1_autocorrelation, welch_psd

GRADIENT_SPARSITY = 0.9  # keep the top 10 % of each FC row before the cosine affinity
GRADIENT_WIDENING = (0.8, 0.7, 0.6, 0.5, 0.0)  # sparsities tried in turn while the affinity graph is disconnected
GRAPH_DENSITY = 0.1  # proportional threshold of the |r| graph
N_GRADIENTS = 3
LOW_BAND = (0.01, 0.1)
HIGH_BAND = (0.1, 0.25)
MIN_DURATION_S = 100.0  # the 0.01 Hz edge of the low bands needs >= 100 s to hold a frequency bin


def gradient_affinity(fc, sparsity=GRADIENT_SPARSITY):
    """Cosine affinity of FC rows after keeping each row's top 1 - `sparsity` (negatives zeroed); [P, P] >= 0."""
    fc = np.array(fc, dtype=np.float64)
    np.fill_diagonal(fc, 0.0)
    k = int(np.floor(sparsity * (fc.shape[1] - 1)))
    cut = np.partition(fc, k, axis=1)[:, k]  # the per-row 90th percentile ("lower" interpolation)
    sparse = np.where((fc >= cut[:, None]) & (fc > 0), fc, 0.0)
    norm = np.linalg.norm(sparse, axis=1)
    unit = np.divide(sparse, norm[:, None], out=np.zeros_like(sparse), where=norm[:, None] > 0)
    return np.clip(unit @ unit.T, 0.0, None)


def connected_gradient_affinity(fc):
    """`gradient_affinity` at the first sparsity (10 %, then 20 %, ... all) whose graph is connected, and that sparsity.

    Strongly modular FC keeps every row's top decile inside its own network, the graph falls apart into
    components, and a diffusion map of a disconnected graph has repeated eigenvalues of 1 (no finite
    gradient). Widening the rows until the graph connects keeps the map defined; connected FC is unchanged.
    """
    for sparsity in (GRADIENT_SPARSITY, *GRADIENT_WIDENING):
        affinity = gradient_affinity(fc, sparsity)
        linked = affinity.sum(axis=1) > 0
        n_parts = connected_components(csr_array(affinity[np.ix_(linked, linked)]), directed=False)[0]
        if n_parts <= 1:
            return affinity, sparsity
    return affinity, sparsity


def diffusion_map(affinity, n_components=N_GRADIENTS, alpha=0.5):
    """Diffusion-map gradients [P, n_components] (NaN rows for parcels without affinity) and eigenvalues.

    Coifman-Lafon normalisation with `alpha`, eigenvalues scaled lambda/(1-lambda) (diffusion time 0);
    each component's sign makes its largest-magnitude entry positive, so the map is deterministic.
    """
    affinity = np.asarray(affinity, dtype=np.float64)
    degree = affinity.sum(axis=1)
    keep = degree > 0
    gradients = np.full((affinity.shape[0], n_components), np.nan)
    if keep.sum() <= n_components + 1:
        return gradients, np.full(n_components, np.nan)
    a = affinity[np.ix_(keep, keep)]
    d = degree[keep] ** -alpha
    kernel = a * d[:, None] * d[None, :]
    row = kernel.sum(axis=1)
    symmetric = kernel / np.sqrt(np.outer(row, row))
    n = len(symmetric)
    values, vectors = eigh(symmetric, subset_by_index=[n - n_components - 1, n - 1])
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    with np.errstate(divide="ignore", invalid="ignore"):  # a disconnected graph's first vector has zeros
        psi = vectors[:, 1:] / vectors[:, [0]]
    lam = values[1:]
    # an eigenvalue of 1 means a disconnected affinity graph: that component has no finite scale
    scale = np.divide(lam, 1.0 - lam, out=np.full_like(lam, np.nan), where=lam < 1.0 - 1e-12)
    psi = psi * scale[None, :]
    signs = np.sign(psi[np.nan_to_num(np.abs(psi)).argmax(axis=0), np.arange(n_components)])
    gradients[keep] = psi * np.where(signs == 0, 1.0, signs)[None, :]
    return gradients, lam


def procrustes_align(gradients, reference):
    """`gradients` rotated (orthogonally) onto `reference`, using the rows finite in both; NaN rows stay NaN."""
    both = np.isfinite(gradients).all(axis=1) & np.isfinite(reference).all(axis=1)
    aligned = np.full_like(gradients, np.nan)
    if both.sum() < gradients.shape[1]:
        return aligned
    u, _, vt = np.linalg.svd(gradients[both].T @ reference[both])
    finite = np.isfinite(gradients).all(axis=1)
    aligned[finite] = gradients[finite] @ (u @ vt)
    return aligned


def proportional_threshold(weights, density=GRAPH_DENSITY):
    """Symmetric matrix keeping the strongest `density` share of the off-diagonal edges (deterministic for equal inputs)."""
    weights = np.asarray(weights, dtype=np.float64)
    n = weights.shape[0]
    upper = np.triu_indices(n, k=1)
    values = weights[upper]
    n_keep = int(np.ceil(density * values.size))
    kept = np.zeros(n * n).reshape(n, n)
    if n_keep == 0:
        return kept
    order = np.argpartition(-values, n_keep - 1)[:n_keep]
    rows, cols = upper[0][order], upper[1][order]
    kept[rows, cols] = values[order]
    kept[cols, rows] = values[order]
    return np.where(kept > 0, kept, 0.0)


def global_efficiency(weights):
    """Mean inverse shortest-path length of the binary graph of `weights` > 0 (0 for unreachable pairs)."""
    n = weights.shape[0]
    if n < 2:
        return np.nan
    adjacency = (weights > 0).astype(np.float32)
    np.fill_diagonal(adjacency, 0.0)
    # breadth-first search from every node at once: one matrix product per path length
    visited = np.eye(n, dtype=bool)
    frontier = visited.astype(np.float32)
    total, length = 0.0, 0
    while frontier.any():
        length += 1
        reached = ((frontier @ adjacency) > 0) & ~visited
        total += reached.sum() / length
        visited |= reached
        frontier = reached.astype(np.float32)
    return float(total / (n * (n - 1)))


def weighted_clustering(weights):
    """Onnela's weighted clustering (weights / max, geometric mean of triangle weights), averaged over nodes."""
    top = weights.max()
    if not top > 0:
        return 0.0
    cube = np.cbrt(weights / top)
    triangles = ((cube @ cube) * cube.T).sum(axis=1)
    degree = (weights > 0).sum(axis=1)
    pairs = degree * (degree - 1)
    return float(np.divide(triangles, pairs, out=np.zeros_like(triangles), where=pairs > 0).mean())


def louvain_modularity(weights, seed):
    """Modularity Q of a seeded Louvain partition of the weighted graph (networkx, deterministic per seed)."""
    graph = nx.from_scipy_sparse_array(csr_array(np.triu(weights, k=1)))
    if graph.number_of_edges() == 0:
        return 0.0
    communities = nx.community.louvain_communities(graph, weight="weight", seed=seed)
    return float(nx.community.modularity(graph, communities, weight="weight"))


def spectral_problem(n_frames, tr):
    """Why a scan cannot carry the spectral measures (None if it can)."""
    if tr * 2 > 1 / HIGH_BAND[0]:
        return f"TR {tr:g} s leaves no frequencies above {HIGH_BAND[0]:g} Hz for the spectral ratio"
    if n_frames < MIN_FRAMES or n_frames * tr < MIN_DURATION_S:
        return (f"{n_frames} frames x TR {tr:g} s is shorter than the {MIN_DURATION_S:g} s (and {MIN_FRAMES} frames) "
                "the spectral measures need")
    return None


def dynamics(series, tr):
    """Measures of one network-mean series: amplitude, sd, log10 spectral ratio, lag-1 autocorr, outliers, fALFF."""
    x = np.asarray(series, dtype=np.float64)
    centred = x - x.mean()
    sd = x.std(ddof=1)
    frequencies, power = welch_psd(x, tr)
    high = (frequencies >= HIGH_BAND[0]) & (frequencies <= min(HIGH_BAND[1], 0.5 / tr))
    low = (frequencies >= LOW_BAND[0]) & (frequencies < LOW_BAND[1])
    ratio = power[low].sum() / power[high].sum() if power[high].sum() > 0 else np.nan
    return {
        "amplitude": float(np.abs(x).mean()),
        "sd": float(sd),
        "spectral_ratio": float(np.log10(ratio)) if ratio > 0 else np.nan,
        "autocorr": lag1_autocorrelation(x),
        "outliers": float((np.abs(centred / sd) > 3).mean()) if sd > 0 else np.nan,
        "falff": falff(x, tr),
    }
