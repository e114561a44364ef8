"""Pretraining data: per-scan preprocessing, two-view crops, in-memory and streaming batch sources.

Every batch is a pure function of (seed, global step, rank), so a resumed run sees exactly the
batches an uninterrupted run would have seen: resuming is skipping to the step.
"""

import logging
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch
from scipy import signal

from semantoks.errors import SemantoksError

log = logging.getLogger(__name__)

# TR ratios are exact for TRs given to the millisecond (0.735 s -> 2 s is 147/400) and stay fast
_MAX_RESAMPLE_DENOMINATOR = 1000


@dataclass
class PreparedScan:
    """A preprocessed scan: values [n_frames, n_parcels] at the model TR, NaN-free."""

    values: np.ndarray
    parcel_valid: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def n_frames(self):
        return self.values.shape[0]


def resample_to_tr(data, tr, model_tr):
    """Resample [n_frames, n_parcels] from `tr` to `model_tr` seconds; anti-aliased polyphase FIR."""
    ratio = Fraction(float(tr) / float(model_tr)).limit_denominator(_MAX_RESAMPLE_DENOMINATOR)
    if ratio == 1:
        return np.asarray(data, dtype=np.float64)
    # resample_poly low-passes at the lower of the two Nyquist rates before decimating
    return signal.resample_poly(np.asarray(data, dtype=np.float64), ratio.numerator, ratio.denominator,
                                axis=0, padtype="line")


def band_pass(data, model_tr, low, high, order=2):
    """Zero-phase Butterworth band-pass along time; short scans get a shorter edge padding."""
    high = min(high, 0.99 * 0.5 / model_tr)
    if not 0 < low < high:
        raise SemantoksError(f"pretrain config: band_pass [{low}, {high}] Hz is empty at model_tr {model_tr} s; "
                             "choose 0 < low < high below the Nyquist frequency, or band_pass null.")
    sos = signal.butter(order, [low, high], btype="bandpass", fs=1.0 / model_tr, output="sos")
    padlen = min(3 * (2 * len(sos) + 1), data.shape[0] - 1)
    return signal.sosfiltfilt(sos, data, axis=0, padlen=padlen)


class TooLittleData(SemantoksError):
    """A scan with fewer than MIN_VALID_PARCEL_FRACTION of its parcels measured: its features would be made up."""


def preprocess_scan(data, tr, prep, meta=None, dtype=np.float32):
    """Clip spikes, resample, band-pass and z-score one scan; a parcel with any NaN or inf, or no variance, is
    zero + invalid. Raises TooLittleData when fewer than MIN_VALID_PARCEL_FRACTION of the parcels stay valid."""
    from semantoks.run_record import MIN_VALID_PARCEL_FRACTION

    data = np.asarray(data, dtype=np.float64)
    # inf is missing like NaN: one inf cell must not turn every parcel's z-score into NaN
    parcel_valid = np.isfinite(data).all(axis=0)
    data = np.where(parcel_valid[None, :], data, 0.0)
    if prep.clip_mad is not None:
        data = clip_spikes(data, prep.clip_mad)
    data = resample_to_tr(data, tr, prep.model_tr)
    if prep.band_pass is not None and data.shape[0] > 1:
        data = band_pass(data, prep.model_tr, *prep.band_pass, order=prep.filter_order)
    std = data.std(axis=0)
    # per parcel: one parcel's large scale must not make the others look flat
    parcel_valid &= std > 1e-8 * np.maximum(1.0, np.abs(data).max(axis=0, initial=0.0))
    if not parcel_valid.size or parcel_valid.mean() < MIN_VALID_PARCEL_FRACTION:
        scan = (meta or {}).get("scan_id") or "the scan"
        raise TooLittleData(
            f"{scan}: only {int(parcel_valid.sum())} of {parcel_valid.size} parcels hold finite, varying values "
            f"(at least {MIN_VALID_PARCEL_FRACTION:.0%} are needed); NaN and inf count as missing, so check the "
            "file's missing values or leave this scan out.")
    if prep.zscore:
        data = (data - data.mean(axis=0)) / np.where(parcel_valid, std, 1.0)
    data[:, ~parcel_valid] = 0.0
    return PreparedScan(values=data.astype(dtype), parcel_valid=parcel_valid, meta=dict(meta or {}))


def clip_spikes(data, n_mad):
    """Clip each parcel to its median +- n_mad robust SDs (1.4826 x the median absolute deviation)."""
    median = np.median(data, axis=0)
    spread = 1.4826 * np.median(np.abs(data - median), axis=0)
    # a parcel whose MAD is 0 (mostly constant) keeps its values: clipping would flatten it
    spread = np.where(spread > 0, spread, np.inf)
    return np.clip(data, median - n_mad * spread, median + n_mad * spread)


def resampled_length(n_frames, tr, model_tr):
    ratio = Fraction(float(tr) / float(model_tr)).limit_denominator(_MAX_RESAMPLE_DENOMINATOR)
    return -(-int(n_frames) * ratio.numerator // ratio.denominator)


def is_usable(n_frames, tr, prep):
    """A scan is used if it holds at least one full patch at the model TR."""
    return resampled_length(n_frames, tr, prep.model_tr) >= prep.patch_len


def crop(values, start, prep):
    """[n_frames, P] -> (x [P, window] zero-padded, patch_valid [K]); a patch is valid only if fully inside."""
    window, patch = prep.window, prep.patch_len
    piece = values[start:start + window]
    x = np.zeros((values.shape[1], window), dtype=np.float32)
    x[:, :piece.shape[0]] = piece.T
    patch_valid = (np.arange(prep.n_patches) + 1) * patch <= piece.shape[0]
    return x, patch_valid


def view_starts(n_frames, prep, rng):
    """Starts of two crops of one scan, at most `max_view_offset` TRs apart (both 0 if the scan is short)."""
    last = max(0, n_frames - prep.window)
    first = int(rng.integers(0, last + 1))
    low, high = max(0, first - prep.max_view_offset), min(last, first + prep.max_view_offset)
    return first, int(rng.integers(low, high + 1))


def embedding_crop_starts(n_frames, prep, n_crops):
    """Evenly spaced, deterministic crop starts covering the scan; one crop if it fits in a window."""
    last = max(0, n_frames - prep.window)
    if last == 0:
        return [0]
    return sorted({int(round(s)) for s in np.linspace(0, last, n_crops)})


def views_batch(scans, starts, prep):
    """Two views per scan at the given starts: {"views" [2,B,P,T], "parcel_valid" [2,B,P], "patch_valid" [2,B,K]}."""
    views, patch_valid = [], []
    for scan, pair in zip(scans, starts):
        cropped = [crop(scan.values, start, prep) for start in pair]
        views.append([x for x, _ in cropped])
        patch_valid.append([p for _, p in cropped])
    parcel_valid = np.stack([scan.parcel_valid for scan in scans])
    return {"views": torch.from_numpy(np.asarray(views, dtype=np.float32).swapaxes(0, 1).copy()),
            "parcel_valid": torch.from_numpy(np.stack([parcel_valid, parcel_valid])),
            "patch_valid": torch.from_numpy(np.asarray(patch_valid).swapaxes(0, 1).copy())}


def prepare_scans(records, prep, dtype=np.float32):
    """[(data, tr, meta)] -> usable PreparedScans; scans shorter than one patch or with too few valid parcels are
    logged and dropped."""
    prepared = []
    for data, tr, meta in records:
        if not is_usable(data.shape[0], tr, prep):
            log.warning("skipping scan %s: %d frames at TR %.3g s is shorter than one %d-TR patch",
                        (meta or {}).get("scan_id"), data.shape[0], tr, prep.patch_len)
            continue
        try:
            prepared.append(preprocess_scan(data, tr, prep, meta, dtype))
        except TooLittleData as error:
            log.warning("skipping %s", error)
    return prepared


def scan_records(scans):
    """Adapt semantoks.dataset Scan objects to (data, tr, meta) records."""
    for scan in scans:
        meta = {"cohort": scan.cohort, "scan_id": scan.scan_id, "subject": scan.subject, "session": scan.session}
        yield scan.data, scan.tr, meta


def step_seed(seed, step, rank=0, stream=0):
    """One 63-bit seed per (seed, step, rank, stream): views, augmentations and masks never depend on history."""
    state = np.random.SeedSequence([int(seed), int(step), int(rank), int(stream)]).generate_state(1, np.uint64)
    return int(state[0] >> 1)


def _loader_generator(seed):
    # a DataLoader otherwise draws its worker seed from the global RNG, shifting it on every resume
    return torch.Generator().manual_seed(int(seed))


class InMemoryBatches(torch.utils.data.Dataset):
    """Preprocessed scans held in memory; item `step` is this rank's share of that step's global batch."""

    def __init__(self, scans, prep, batch_size, seed, rank=0, world_size=1):
        self.scans, self.prep, self.batch_size, self.seed = scans, prep, batch_size, seed
        self.rank, self.world_size = rank, world_size
        global_batch = batch_size * world_size
        if len(scans) < global_batch:
            raise SemantoksError(f"pretraining cohorts hold {len(scans)} usable scans, fewer than one batch of "
                                 f"{global_batch}; lower pretrain.batch_size or add cohorts.")
        self.steps_per_epoch = len(scans) // global_batch

    def __getitem__(self, step):
        epoch, index = divmod(int(step), self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.scans))
        global_batch = self.batch_size * self.world_size
        chosen = order[index * global_batch:(index + 1) * global_batch]
        rng = np.random.default_rng(step_seed(self.seed, step))
        starts = [view_starts(self.scans[i].n_frames, self.prep, rng) for i in chosen]
        mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        return views_batch([self.scans[i] for i in chosen[mine]], starts[mine], self.prep)

    def batches(self, start_step, end_step, num_workers=0):
        """(step, batch) for start_step <= step < end_step."""
        loader = torch.utils.data.DataLoader(self, sampler=range(start_step, end_step), batch_size=None,
                                             num_workers=num_workers, pin_memory=torch.cuda.is_available(),
                                             generator=_loader_generator(self.seed))
        yield from zip(range(start_step, end_step), loader)


class StreamingBatches:
    """Scans streamed from the dataset's Parquet row groups (shards), for cohorts too large for memory.

    Per epoch the shards are shuffled and their usable scans cut into equal contiguous chunks, one per
    stream (rank x data-loader worker), so every stream reads few row groups; each stream passes its
    chunk through a seeded shuffle buffer. The plan is computed from the footer and index columns
    alone, so resuming at a step loads only the row groups still needed.
    """

    def __init__(self, root, atlas_id, cohorts, prep, batch_size, seed, rank=0, world_size=1,
                 streams_per_rank=1, shuffle_buffer=256, dtype=np.float32, exclude_subjects=()):
        from semantoks.dataset import ScanReader

        self.reader = ScanReader(root, atlas_id, cohorts)
        self.prep, self.batch_size, self.seed, self.dtype = prep, batch_size, seed, dtype
        self.rank, self.world_size, self.streams_per_rank = rank, world_size, max(1, streams_per_rank)
        self.shuffle_buffer = shuffle_buffer
        index = self.reader.index
        excluded = set(exclude_subjects)
        usable = [is_usable(n, tr, prep) and (cohort, subject) not in excluded
                  for n, tr, cohort, subject in zip(index["n_frames"], index["tr"], index["cohort"], index["subject"])]
        self.keys = list(zip(index["cohort"], index["scan_id"]))
        self.shards = [rows[np.asarray(usable)[rows]] for rows in _row_group_rows(self.reader)]
        self.shards = [rows for rows in self.shards if len(rows)]
        n_streams = world_size * self.streams_per_rank
        self.chunk = sum(map(len, self.shards)) // n_streams
        self.batches_per_stream = self.chunk // batch_size
        if self.batches_per_stream == 0:
            raise SemantoksError(f"{root}: {sum(usable)} usable scans cannot fill one batch of {batch_size} for "
                                 f"each of {n_streams} data streams; lower batch_size or use data_source memory.")
        self.steps_per_epoch = self.batches_per_stream * self.streams_per_rank

    def plan(self, epoch, stream):
        """Row indices (into the scan index) that `stream` emits in `epoch`, in order."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.shards))
        rows = np.concatenate([self.shards[i] for i in order])[stream * self.chunk:(stream + 1) * self.chunk]
        rng = np.random.default_rng([self.seed, epoch, stream, 1])
        emitted, buffer = [], []
        for row in rows:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(row)
                continue
            slot = int(rng.integers(len(buffer)))
            emitted.append(buffer[slot])
            buffer[slot] = row
        emitted.extend(rng.permutation(np.asarray(buffer, dtype=np.int64)).tolist())
        return np.asarray(emitted[:self.batches_per_stream * self.batch_size], dtype=np.int64)

    def batches(self, start_step, end_step, num_workers=0):
        """(step, batch) for start_step <= step < end_step; one DataLoader per epoch."""
        step = start_step
        while step < end_step:
            epoch, first = divmod(step, self.steps_per_epoch)
            last = min(self.steps_per_epoch, end_step - epoch * self.steps_per_epoch)
            loader = torch.utils.data.DataLoader(_StreamEpoch(self, epoch, first, last), batch_size=None,
                                                 num_workers=num_workers, pin_memory=torch.cuda.is_available(),
                                                 generator=_loader_generator(self.seed))
            for index, batch in loader:
                yield epoch * self.steps_per_epoch + index, batch
            step = epoch * self.steps_per_epoch + last


class _StreamEpoch(torch.utils.data.IterableDataset):
    """Batches `first`..`last`-1 of one epoch; worker w of W takes every W-th, so DataLoader order is step order."""

    def __init__(self, source, epoch, first, last):
        self.source, self.epoch, self.first, self.last = source, epoch, first, last

    def __iter__(self):
        source, size = self.source, self.source.batch_size
        info = torch.utils.data.get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        mine = list(range(self.first + worker, self.last, n_workers))
        streams = {index: source.rank * source.streams_per_rank + index % source.streams_per_rank for index in mine}
        plans = {stream: source.plan(self.epoch, stream) for stream in set(streams.values())}
        wanted = {index: plans[streams[index]][(index // source.streams_per_rank) * size:][:size] for index in mine}
        cache = _ShardCache(source, np.concatenate(list(wanted.values())) if wanted else np.zeros(0, np.int64))
        for index in mine:
            scans = [cache.take(row) for row in wanted[index]]
            step = self.epoch * source.steps_per_epoch + index
            rng = np.random.default_rng(step_seed(source.seed, step, source.rank))
            starts = [view_starts(scan.n_frames, source.prep, rng) for scan in scans]
            yield index, views_batch(scans, starts, source.prep)


class _ShardCache:
    """Decodes a row group when its first needed scan is asked for; frees each scan once taken."""

    def __init__(self, source, rows):
        self.source = source
        self.shard_of = {int(row): i for i, shard in enumerate(source.shards) for row in shard}
        self.pending = {}
        for row in rows:
            self.pending.setdefault(self.shard_of[int(row)], []).append(int(row))
        self.loaded = {}

    def take(self, row):
        row = int(row)
        if row not in self.loaded:
            shard_rows = self.pending.pop(self.shard_of[row])
            keys = [self.source.keys[r] for r in shard_rows]
            records = scan_records(self.source.reader.read(keys))
            for r, (data, tr, meta) in zip(shard_rows, records):
                self.loaded[r] = preprocess_scan(data, tr, self.source.prep, meta, self.source.dtype)
        return self.loaded.pop(row)


def _row_group_rows(reader):
    """Index rows of each row group of each cohort file, in reader.index order."""
    import pyarrow.parquet as pq

    shards, offset = [], 0
    for cohort, path in reader.files.items():
        footer = pq.read_metadata(path)
        for group in range(footer.num_row_groups):
            n_rows = footer.row_group(group).num_rows
            shards.append(np.arange(offset, offset + n_rows))
            offset += n_rows
    if offset != len(reader.index):
        raise SemantoksError(f"{reader.root}: the time series footers and scan index disagree; rebuild the dataset.")
    return shards


def open_pretraining_data(root, atlas_id, cohorts, prep, batch_size, seed, rank=0, world_size=1, source="auto",
                          streams_per_rank=1, shuffle_buffer=256, memory_limit_gb=4.0, cache_dtype="float32",
                          exclude_subjects=()):
    """InMemoryBatches for cohorts that fit in `memory_limit_gb` (source auto), else StreamingBatches.

    exclude_subjects: (cohort, subject) pairs held out of training (online evaluation).
    """
    from semantoks.dataset import iter_scans, read_atlas_metadata, scan_index

    dtype = np.dtype(cache_dtype)
    if source == "auto":
        index = scan_index(root, atlas_id, cohorts)
        n_parcels = len(read_atlas_metadata(root, atlas_id)["labels"])
        frames = sum(resampled_length(n, tr, prep.model_tr) for n, tr in zip(index["n_frames"], index["tr"]))
        source = "memory" if frames * n_parcels * dtype.itemsize <= memory_limit_gb * 2**30 else "stream"
    if source == "stream":
        return StreamingBatches(root, atlas_id, cohorts, prep, batch_size, seed, rank, world_size,
                                streams_per_rank, shuffle_buffer, dtype, exclude_subjects)
    if source != "memory":
        raise SemantoksError(f"pretrain config: data_source {source!r} is unknown; use auto, memory or stream.")
    excluded = set(exclude_subjects)
    records = (record for record in scan_records(iter_scans(root, atlas_id, cohorts))
               if (record[2]["cohort"], record[2]["subject"]) not in excluded)
    scans = prepare_scans(records, prep, dtype)
    return InMemoryBatches(scans, prep, batch_size, seed, rank, world_size)
