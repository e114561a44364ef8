"""Denoise and parcellate one fMRIPrep run: a per-run Parquet time series and a QC JSON (docs/design.md).

The BOLD image is decompressed volume by volume and only the atlas voxels inside the brain mask are
kept, so the 4D image is never held in memory; parcel means are then cleaned with nilearn.
"""

import json
import math
import warnings
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn import signal

from semantoks.atlas import check_space, read_label_image, resample_to_grid
from semantoks.atomic import write_table_tsv
from semantoks.bids_names import parse_entities, xcpd_paths
from semantoks.confounds import load_confounds, select_confounds
from semantoks.errors import SemantoksError, SkipRun
from semantoks.run_record import run_record, write_run_outputs

_READ_CHUNK = 1 << 20
_MAX_PIECE = 1 << 22
_SUM_BLOCK = 16
_TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6, "unknown": 1.0}


def parcellate_run(bold_path, mask_path, confounds_path, atlas_img, labels, strategy, out_parquet, out_qc,
                   atlas_id, atlas_space, cohort, sidecar_path=None, tr=None, raw_sidecar_paths=(),
                   min_coverage=0.0, max_uncovered_fraction=1.0, tsv_outputs=False):
    """Write the run's time series Parquet and QC JSON; return the QC record (unusable runs: zero rows).

    `tr` overrides the sidecar; `raw_sidecar_paths` (raw BIDS sidecars, most specific first) are read when the
    derivative sidecar has no RepetitionTime. Parcels covered below `min_coverage` are NaN; a run with more than `max_uncovered_fraction`
    of its parcels uncovered is skipped. `tsv_outputs` also writes XCP-D's TSVs (`xcpd_paths`).
    """
    bold_path = Path(bold_path)
    entities = parse_entities(bold_path)
    check_space(entities["space"], atlas_space, bold_path)
    bold = _open_bold(bold_path)
    n_volumes = bold.shape[3]
    tr = _repetition_time(bold_path, bold.header, sidecar_path, tr, raw_sidecar_paths)
    confounds, metadata = load_confounds(confounds_path)
    if len(confounds) != n_volumes:
        raise SemantoksError(
            f"{confounds_path}: has {len(confounds)} rows but {bold_path} has {n_volumes} volumes; "
            "use the confounds table fMRIPrep wrote for this run.")
    regressors, sample_mask, motion = select_confounds(confounds, strategy, metadata, source=confounds_path)
    names = _parcel_names(labels)
    voxels, parcels, atlas_counts = _parcel_voxels(bold, atlas_img, mask_path, labels)
    series = _read_voxel_series(bold_path, bold, voxels)
    means, coverage = parcel_means(series, parcels, atlas_counts)
    del series
    uncovered = coverage < min_coverage
    # XCP-D's min_coverage: a parcel mostly outside the brain mask is not measured, only reported
    means[:, uncovered] = np.nan

    record = run_record(
        cohort, entities, space=atlas_space, atlas=atlas_id, strategy=strategy["name"], n_parcels=len(names), tr=tr,
        n_volumes=n_volumes, n_dummy=motion["n_dummy"], mean_fd=motion["mean_fd"], max_fd=motion["max_fd"],
        pct_censored=motion["pct_censored"], parcel_coverage=coverage, source=bold_path,
        min_coverage=min_coverage, n_uncovered_parcels=uncovered.sum())
    try:
        _check_coverage(uncovered, min_coverage, max_uncovered_fraction)
        cleaned = _denoised(means, regressors, sample_mask, strategy, tr, motion)
        frames = sample_mask.astype(np.int32)
        record.update(included=True, n_frames=int(len(frames)))
    except SkipRun as skip:
        cleaned, frames = np.empty((0, len(names)), np.float32), np.empty(0, np.int32)
        record["reason"] = str(skip)
    _write_outputs(out_parquet, out_qc, frames, cleaned, names, record, strategy)
    if tsv_outputs:
        write_xcpd_outputs(out_parquet, cleaned, coverage, names)
    return record


def _check_coverage(uncovered, min_coverage, max_uncovered_fraction):
    if uncovered.mean() > max_uncovered_fraction:
        raise SkipRun(
            f"{int(uncovered.sum())} of {len(uncovered)} parcels have less than {min_coverage:g} of their voxels inside "
            f"the brain mask, more than the {max_uncovered_fraction:g} allowed by denoise.max_uncovered_fraction.")


def write_xcpd_outputs(out_parquet, cleaned, coverage, names):
    """XCP-D's per-run TSVs: parcel time series (`n/a` for unmeasured parcels), coverage, Pearson correlations."""
    paths = xcpd_paths(out_parquet)
    write_table_tsv(paths["mean"], pd.DataFrame(cleaned, columns=names))
    write_table_tsv(paths["coverage"], pd.DataFrame({"Node": names, "coverage": np.asarray(coverage, dtype=float)}))
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        matrix = pd.DataFrame(cleaned, columns=names).corr() if len(cleaned) > 1 else \
            pd.DataFrame(np.nan, index=names, columns=names)
    write_table_tsv(paths["correlation"], matrix.rename_axis("Node").reset_index())
    return paths


def _open_bold(path):
    try:
        bold = nib.load(path)
    except FileNotFoundError:
        raise SemantoksError(f"{path}: BOLD run not found; check the fMRIPrep derivatives folder.") from None
    except Exception as error:
        raise SemantoksError(f"{path}: cannot be read as NIfTI ({error}); re-run fMRIPrep for this run or remove it.") from None
    if len(bold.shape) != 4 or bold.shape[3] < 1:
        raise SemantoksError(f"{path}: has shape {bold.shape}, not a 4D BOLD series; give fMRIPrep's desc-preproc_bold.")
    return bold


def _repetition_time(bold_path, header, sidecar_path, tr, raw_sidecar_paths=()):
    if tr is None:
        sidecar = Path(sidecar_path) if sidecar_path else bold_path.with_name(_stem(bold_path) + ".json")
        tr, source = _sidecar_tr(sidecar, required=not raw_sidecar_paths), sidecar
        # fMRIPrep copies RepetitionTime from the raw sidecar, which BIDS inheritance may hold above the run
        for raw in raw_sidecar_paths if tr is None else ():
            tr, source = _sidecar_tr(Path(raw), required=False), raw
            if tr is not None:
                break
        if tr is None:
            raise SemantoksError(
                f"{sidecar}: has no RepetitionTime and neither has a raw BIDS sidecar ({', '.join(map(str, raw_sidecar_paths))}); "
                "add RepetitionTime in seconds or set the cohort's tr.")
    else:
        source = "the tr argument"
    if isinstance(tr, bool) or not isinstance(tr, (int, float)) or not math.isfinite(tr) or tr <= 0:
        raise SemantoksError(f"{source}: RepetitionTime {tr!r} is not a positive number of seconds; fix RepetitionTime.")
    zooms = header.get_zooms()
    header_tr = float(zooms[3]) * _TIME_UNITS.get(header.get_xyzt_units()[1], 1.0) if len(zooms) > 3 else 0.0
    # the NIfTI pixdim is often left at 1 or 0 by converters; the sidecar is BIDS's source of truth
    if header_tr > 0 and not math.isclose(header_tr, tr, rel_tol=0.01):
        warnings.warn(f"{bold_path}: header TR {header_tr:g} s differs from RepetitionTime {tr:g} s; using {tr:g} s.",
                      stacklevel=3)
    return float(tr)


def _sidecar_tr(sidecar, required):
    try:
        tr = json.loads(sidecar.read_text()).get("RepetitionTime")
    except FileNotFoundError:
        if not required:
            return None
        raise SemantoksError(f"{sidecar}: BOLD sidecar not found; add it with RepetitionTime in seconds.") from None
    except (json.JSONDecodeError, AttributeError):
        raise SemantoksError(f"{sidecar}: not a JSON object; fix it and add RepetitionTime in seconds.") from None
    if tr is None and required:
        raise SemantoksError(f"{sidecar}: has no RepetitionTime; add RepetitionTime in seconds or set the cohort's tr.")
    return tr


def _stem(path):
    name = path.name
    for extension in (".nii.gz", ".nii"):
        if name.endswith(extension):
            return name[: -len(extension)]
    return path.stem


def _parcel_names(labels):
    names = [str(name) for name in labels["name"]]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated or "frame" in names:
        raise SemantoksError(
            f"atlas labels.tsv: parcel names must be unique and not 'frame' ({', '.join(duplicated) or 'frame'}); rename them.")
    return names


def _parcel_voxels(bold, atlas_img, mask_path, labels):
    """Flat (Fortran-order) indices of atlas voxels inside the mask sorted by parcel, their parcel, atlas counts."""
    reference = nib.Nifti1Image(np.zeros(bold.shape[:3], np.uint8), bold.affine)
    atlas = read_label_image(atlas_img) if isinstance(atlas_img, (str, Path)) else atlas_img
    atlas_flat = np.asarray(resample_to_grid(atlas, reference).dataobj).ravel(order="F")
    label_values = np.asarray(labels["index"], dtype=np.int64)
    lookup = np.full(max(int(atlas_flat.max()), int(label_values.max())) + 1, -1, dtype=np.int64)
    lookup[label_values] = np.arange(len(label_values))
    parcel_of_voxel = lookup[atlas_flat]
    atlas_counts = np.bincount(parcel_of_voxel[parcel_of_voxel >= 0], minlength=len(label_values))
    inside = parcel_of_voxel >= 0
    if mask_path is not None:
        inside &= _brain_mask(mask_path, reference)
    selected = np.flatnonzero(inside)
    selected = selected[np.argsort(parcel_of_voxel[selected], kind="stable")]
    return selected, parcel_of_voxel[selected], atlas_counts


def _brain_mask(mask_path, reference):
    try:
        mask = nib.load(mask_path)
        inside = np.asarray(mask.dataobj) > 0
    except FileNotFoundError:
        raise SemantoksError(f"{mask_path}: brain mask not found; keep fMRIPrep's desc-brain_mask beside the BOLD run.") from None
    except Exception as error:
        raise SemantoksError(f"{mask_path}: cannot be read as a NIfTI mask ({error}); re-run fMRIPrep for this run.") from None
    if inside.ndim != 3:
        raise SemantoksError(f"{mask_path}: a brain mask must be one 3D volume, not shape {inside.shape}; give fMRIPrep's desc-brain_mask.")
    # nearest-neighbour onto the BOLD grid, as for the atlas, in case fMRIPrep's mask grid differs slightly
    labelled = nib.Nifti1Image(inside.astype(np.int32), mask.affine)
    return np.asarray(resample_to_grid(labelled, reference).dataobj).ravel(order="F") > 0


def _read_voxel_series(path, bold, voxels):
    """(volumes x voxels) float32 for the given flat voxel indices, one decompressed volume at a time."""
    proxy = bold.dataobj
    n_volumes = bold.shape[3]
    series = np.empty((n_volumes, len(voxels)), dtype=np.float32)
    streamable = isinstance(proxy, nib.arrayproxy.ArrayProxy) and isinstance(proxy.file_like, (str, Path)) \
        and proxy.order == "F"
    try:
        if streamable:
            _stream_voxels(proxy, series, voxels)
        else:
            for t in range(n_volumes):
                series[t] = np.asarray(proxy[..., t], dtype=np.float32).ravel(order="F")[voxels]
    except (zlib.error, EOFError, OSError, ValueError) as error:
        raise SemantoksError(f"{path}: corrupt or truncated image data ({error}); re-run fMRIPrep for this run or remove it.") from None
    return series


def _stream_voxels(proxy, series, voxels):
    dtype = np.dtype(proxy.dtype)
    volume_bytes = dtype.itemsize * int(np.prod(proxy.shape[:3]))
    direct = dtype == np.float32 and dtype.isnative
    for t, raw in enumerate(_raw_volumes(proxy.file_like, int(proxy.offset), volume_bytes, series.shape[0])):
        volume = np.frombuffer(raw, dtype=dtype)
        if direct:
            np.take(volume, voxels, out=series[t])
        else:
            series[t] = volume[voxels]
    slope, inter = proxy.slope, proxy.inter
    if slope != 1.0 or inter != 0.0:
        series *= np.float32(slope)
        series += np.float32(inter)


def _raw_volumes(path, offset, volume_bytes, n_volumes):
    """Yield each volume's bytes in order (the same buffer, refilled), reading the file to its end."""
    buffer = bytearray(volume_bytes)
    view = memoryview(buffer)
    filled, done = -offset, 0
    for piece in _file_pieces(path):
        piece = memoryview(piece)
        while len(piece) and done < n_volumes:
            if filled < 0:
                skip = min(-filled, len(piece))
                piece, filled = piece[skip:], filled + skip
                continue
            take = min(volume_bytes - filled, len(piece))
            view[filled:filled + take] = piece[:take]
            piece, filled = piece[take:], filled + take
            if filled == volume_bytes:
                yield buffer
                filled, done = 0, done + 1
    if done < n_volumes:
        raise EOFError(f"the file ends after {done} of {n_volumes} volumes")


def _file_pieces(path):
    """The file's bytes, gunzipped on the fly when gzip-compressed (every member, CRC checked)."""
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
        handle.seek(0)
        if not gzipped:
            while chunk := handle.read(_READ_CHUNK):
                yield chunk
            return
        decompressor, fed = zlib.decompressobj(31), False
        while chunk := handle.read(_READ_CHUNK):
            while True:
                fed = fed or bool(chunk)
                piece = decompressor.decompress(chunk, _MAX_PIECE)
                if piece:
                    yield piece
                if decompressor.eof:
                    # a further gzip member may follow (concatenated .gz files are valid)
                    chunk, decompressor, fed = decompressor.unused_data, zlib.decompressobj(31), False
                    if not chunk:
                        break
                    continue
                chunk = decompressor.unconsumed_tail
                # a full piece may leave output pending inside zlib, so ask again even without new input
                if not chunk and len(piece) < _MAX_PIECE:
                    break
        if fed and not decompressor.eof:
            raise EOFError("the gzip stream is cut short")


def parcel_means(series, parcels, atlas_counts):
    """(volumes x parcels) float64 means over usable voxels, and each parcel's coverage of its atlas voxels.

    Voxels with any non-finite value or only zeros are left out; a parcel without usable voxels is NaN.
    """
    n_parcels = len(atlas_counts)
    usable = np.isfinite(series).all(axis=0) & (series != 0).any(axis=0)
    if not usable.all():
        series[:, ~usable] = 0.0
    counts = np.bincount(parcels[usable], minlength=n_parcels)
    means = np.full((series.shape[0], n_parcels), np.nan)
    if len(parcels):
        starts = np.flatnonzero(np.r_[True, parcels[1:] != parcels[:-1]])
        present = parcels[starts]
        # float64 sums (BOLD is a large baseline plus small fluctuations), a block of volumes at a time so
        # numpy's float64 copy of the input stays small
        for first in range(0, series.shape[0], _SUM_BLOCK):
            block = slice(first, first + _SUM_BLOCK)
            sums = np.add.reduceat(series[block], starts, axis=1, dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                means[block, present] = sums / counts[present]
        means[:, counts == 0] = np.nan
    coverage = np.divide(counts, atlas_counts, out=np.zeros(n_parcels), where=atlas_counts > 0)
    return means, coverage


def _denoised(means, regressors, sample_mask, strategy, tr, motion):
    """Cleaned (kept volumes x parcels) float32; raises SkipRun when too little usable data remains."""
    measured = np.isfinite(means).all(axis=0)
    if not measured.any():
        raise SkipRun("The BOLD image has no finite nonzero voxel inside the brain mask and atlas, so no parcel can be measured.")
    seconds = len(sample_mask) * tr
    if seconds < strategy["min_remaining_seconds"] or len(sample_mask) < 2:
        raise SkipRun(
            f"Only {len(sample_mask)} volumes ({seconds:.0f} s) remain after removing {motion['n_dummy']} dummy scans "
            f"and censoring {motion['n_censored']}, below the {strategy['min_remaining_seconds']:g} s the strategy requires.")
    cleaned = np.full((len(sample_mask), means.shape[1]), np.nan, dtype=np.float32)
    filtered = strategy["high_pass"] is not None or strategy["low_pass"] is not None
    with warnings.catch_warnings():
        # nilearn warns that it will standardise confounds with the sample std; regression is scale-invariant
        warnings.filterwarnings("ignore", message=".*confounds will be standardized.*", category=DeprecationWarning)
        # regression, detrending and filtering are linear, so cleaning parcel means equals averaging cleaned voxels
        cleaned[:, measured] = signal.clean(
            means[:, measured], confounds=regressors.to_numpy() if regressors.shape[1] else None,
            sample_mask=sample_mask, detrend=strategy["detrend"], standardize=strategy["standardize"] or None,
            filter="butterworth" if filtered else False, low_pass=strategy["low_pass"],
            high_pass=strategy["high_pass"], t_r=tr)
    return cleaned


def _write_outputs(out_parquet, out_qc, frames, cleaned, names, record, strategy):
    write_run_outputs(out_parquet, out_qc, frames, cleaned, names, record, {"strategy_params": strategy})


def write_unusable_run(out_parquet, out_qc, labels, strategy, atlas_id, atlas_space, cohort, entities, reason,
                       source_bold="", tsv_outputs=False):
    """A run the workflow found unusable before reading it (e.g. no confounds): zero rows, every column, the reason."""
    names = _parcel_names(labels)
    record = run_record(cohort, entities, space=atlas_space, atlas=atlas_id, strategy=strategy["name"],
                        n_parcels=len(names), reason=reason, source=source_bold)
    empty = np.empty((0, len(names)), np.float32)
    _write_outputs(out_parquet, out_qc, np.empty(0, np.int32), empty, names, record, strategy)
    if tsv_outputs:
        write_xcpd_outputs(out_parquet, empty, np.zeros(len(names)), names)
    return record
