"""Feature extraction in numpy: one STFT per 10 ms frame, statistics per window.

librosa *defines* the features: :func:`build_feature_matrices` (training time
only) asks librosa for the analysis window, mel, chroma and DCT matrices, and
the model bundle stores them. At run time only numpy is needed; a test proves
that :func:`frame_features` equals librosa's own ``stft`` / ``melspectrogram`` /
``mfcc`` / ``chroma_stft`` / ``spectral_*`` / ``zero_crossing_rate`` / ``rms``
(all with ``center=False``, ``tuning=0``, ``top_db=None``) within 1e-4 relative.

Frames are not centred: frame ``j`` of a stream covers samples
``[j*hop, j*hop + n_fft)``. A window starting at a multiple of the hop
therefore consists of exactly the stream's frames, which is what lets the
streaming path compute each frame once (see :class:`ser_stream.pipeline.Analyzer`).

Every function here is pure: no I/O, no state, keyword-only parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from . import fft
from .vad import percentiles

FEATURE_NAME = "ser-stats-v2"

@dataclass(frozen=True)
class FeatureSpec:
    """What the features are, as stored in a model bundle. The defaults are the shipped features."""

    name: str = FEATURE_NAME
    sample_rate_hz: int = 16000
    n_fft: int = 512  # 32 ms
    hop_samples: int = 160  # 10 ms
    n_mels: int = 64
    fmin_hz: float = 0.0
    fmax_hz: float = 8000.0
    n_mfcc: int = 20
    n_chroma: int = 12
    rolloff_percent: float = 0.85
    amin: float = 1e-10
    min_active_frames: int = 20
    pitch: bool = True  # autocorrelation pitch and voicing (Boersma 1993) from the same frames
    level_in_vector: bool = False  # the absolute level depends on the microphone's gain: used by the gate only
    f0_min_hz: float = 70.0
    f0_max_hz: float = 500.0
    voicing_threshold: float = 0.5
    # Frames quieter than this are unvoiced without a pitch search: the speech gate's default
    # threshold (config.VAD_THRESHOLD_DBFS), so every frame the gate can count as speech has its pitch.
    pitch_min_level_dbfs: float | None = -60.0
    # How the window's frames move: frame-to-frame change of log-mel and chroma, the MFCC's second
    # difference, and the linear trend of MFCC, spectral shape and level across the window.
    dynamics: bool = True

    # Keys an older bundle may lack, and what their absence meant when it was written (v1 features:
    # no pitch, the level in the vector, no dynamics, a pitch search in every frame).
    LEGACY: ClassVar[dict[str, Any]] = {"pitch": False, "level_in_vector": True, "dynamics": False,
                                        "pitch_min_level_dbfs": None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FeatureSpec":
        """A stored spec; raises ValueError naming an unknown, missing or mistyped key."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"feature spec has unknown key(s) {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, f in known.items():
            if name not in data:
                if name not in cls.LEGACY:
                    raise ValueError(f"feature spec lacks {name!r}")
                values[name] = cls.LEGACY[name]
                continue
            v = data[name]
            default = f.default
            if isinstance(default, bool):
                if not isinstance(v, bool):
                    raise ValueError(f"feature spec {name!r} is {v!r}, expected true or false")
            elif v is None and name in cls.LEGACY:
                pass
            elif isinstance(default, (int, float)) and not isinstance(default, bool):
                v = type(default)(v)
            else:
                v = str(v)
            values[name] = v
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



# Column layout of the per-frame feature matrix (after the variable-size blocks).
SCALAR_COLUMNS = ("centroid_hz", "rolloff_hz", "flatness", "zcr", "level_db")
PITCH_COLUMNS = ("voicing", "log2_f0")
PITCH_STATS = ("log2_f0_mean", "log2_f0_std", "log2_f0_p10", "log2_f0_p90", "voiced_fraction")
LEVEL_FLOOR_DB = -100.0


@dataclass(frozen=True)
class FrameLayout:
    """The columns of the per-frame feature matrix (:func:`frame_features`) by name: one place that
    knows the order log-mel | MFCC | chroma | SCALAR_COLUMNS [| PITCH_COLUMNS]."""

    logmel: slice
    mfcc: slice
    chroma: slice
    scalars: slice  # SCALAR_COLUMNS, in their order
    pitch: slice | None  # PITCH_COLUMNS, when the spec has pitch
    width: int

    @classmethod
    def of(cls, *, n_mels: int, n_mfcc: int, n_chroma: int, pitch: bool) -> "FrameLayout":
        edges = np.cumsum([0, n_mels, n_mfcc, n_chroma, len(SCALAR_COLUMNS), len(PITCH_COLUMNS) if pitch else 0])
        logmel, mfcc, chroma, scalars, pitch_cols = (slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]))
        return cls(logmel, mfcc, chroma, scalars, pitch_cols if pitch else None, int(edges[-1]))

    def column(self, name: str) -> int:
        """The index of a named scalar or pitch column (SCALAR_COLUMNS, PITCH_COLUMNS)."""
        if name in SCALAR_COLUMNS:
            return self.scalars.start + SCALAR_COLUMNS.index(name)
        if name in PITCH_COLUMNS and self.pitch is not None:
            return self.pitch.start + PITCH_COLUMNS.index(name)
        raise KeyError(f"no frame column {name!r} in this layout")

    @staticmethod
    def within(part: slice, block: slice) -> slice:
        """``part``'s columns counted from the start of ``block`` (a matrix of block's columns only)."""
        return slice(part.start - block.start, part.stop - block.start)


@dataclass(frozen=True)
class FeatureDefinition:
    """Everything the numpy extractor needs: the spec and its matrices.

    Shapes: ``window`` (n_fft,), ``mel`` (n_mels, n_fft//2+1),
    ``dct`` (n_mfcc, n_mels), ``chroma`` (n_chroma, n_fft//2+1),
    ``freqs_hz`` (n_fft//2+1,). All float32.
    """

    spec: FeatureSpec
    window: np.ndarray
    mel: np.ndarray
    dct: np.ndarray
    chroma: np.ndarray
    freqs_hz: np.ndarray
    window_acf: np.ndarray | None = None  # (n_fft,) autocorrelation of the window, when spec.pitch

    # Derived sizes are cached: they sit on the per-hop path (a frozen dataclass still has a __dict__).
    @cached_property
    def pitch(self) -> bool:
        return self.spec.pitch

    @cached_property
    def sample_rate_hz(self) -> int:
        return self.spec.sample_rate_hz

    @cached_property
    def n_fft(self) -> int:
        return self.spec.n_fft

    @cached_property
    def hop_samples(self) -> int:
        return self.spec.hop_samples

    @cached_property
    def frame(self) -> FrameLayout:
        """The per-frame columns by name."""
        return FrameLayout.of(n_mels=self.mel.shape[0], n_mfcc=self.dct.shape[0], n_chroma=self.chroma.shape[0],
                              pitch=self.pitch)

    @cached_property
    def n_frame_columns(self) -> int:
        return self.frame.width

    @cached_property
    def stat_columns(self) -> np.ndarray:
        """Frame columns summarised by mean and std: all but log2 f0 (it has its own
        statistics) and, unless ``level_in_vector``, the level."""
        drop = set()
        if self.pitch:
            drop.add(self.frame.column("log2_f0"))
        if not self.spec.level_in_vector:
            drop.add(self.frame.column("level_db"))
        return np.array([c for c in range(self.n_frame_columns) if c not in drop])

    def mel_bands_within(self, low_hz: float, high_hz: float) -> slice:
        """The log-mel frame columns (a slice of :attr:`frame`'s ``logmel``) of the bands whose filter
        peaks between ``low_hz`` and ``high_hz`` (the peaks rise with the band: they are contiguous)."""
        peaks = self.freqs_hz[np.argmax(self.mel, axis=1)]
        inside = np.flatnonzero((peaks >= low_hz) & (peaks <= high_hz))
        if inside.size == 0:
            raise ValueError(f"no mel band peaks between {low_hz} and {high_hz} Hz")
        start = self.frame.logmel.start
        return slice(start + int(inside[0]), start + int(inside[-1]) + 1)

    @cached_property
    def pitch_lags(self) -> tuple[int, int, np.ndarray]:
        """(lowest lag, highest lag, float32 window-autocorrelation correction over lags lo-1 .. hi+1)."""
        sr, n = self.sample_rate_hz, self.n_fft
        lo = int(sr / self.spec.f0_max_hz)
        hi = min(int(sr / self.spec.f0_min_hz) + 1, n // 2 - 1)
        return lo, hi, (self.window_acf[0] / self.window_acf[lo - 1 : hi + 2]).astype(np.float32)

    @cached_property
    def ones(self) -> np.ndarray:
        """float32 ones of n_fft//2+1 (bins) and n_fft-1 (sample pairs) entries: row sums as
        matrix-vector products, which are cheaper than ``sum(axis=1)`` on the per-hop path."""
        return np.ones(self.n_fft // 2 + 1, dtype=np.float32), np.ones(self.n_fft - 1, dtype=np.float32)

    @cached_property
    def mel_blocks(self) -> tuple[tuple[slice, slice, np.ndarray], ...]:
        """The mel filterbank cut into MEL_BLOCKS groups of bands, each with only the bins its
        filters cover: (bands, bins, float32 weights (bins, bands)). A filter spans a few bins, so
        these products do a quarter of the dense product's work, with the same nonzero terms."""
        n_mels = self.mel.shape[0]
        covered = self.mel != 0
        blocks = []
        for start in range(0, n_mels, -(-n_mels // MEL_BLOCKS)):
            bands = slice(start, min(start + -(-n_mels // MEL_BLOCKS), n_mels))
            used = np.flatnonzero(covered[bands].any(axis=0))
            bins = slice(int(used[0]), int(used[-1]) + 1) if used.size else slice(0, 1)
            blocks.append((bands, bins, np.ascontiguousarray(self.mel[bands, bins].T, dtype=np.float32)))
        return tuple(blocks)

    @cached_property
    def rolloff_blocks(self) -> np.ndarray:
        """(n_bins, n_blocks) float32 0/1: bin j belongs to block j // ROLLOFF_BLOCK."""
        n_bins = self.n_fft // 2 + 1
        n_blocks = -(-n_bins // ROLLOFF_BLOCK)
        return (np.arange(n_bins)[:, None] // ROLLOFF_BLOCK == np.arange(n_blocks)[None, :]).astype(np.float32)

    @cached_property
    def n_stat_columns(self) -> int:
        return len(self.stat_columns)

    @cached_property
    def dynamics(self) -> bool:
        return self.spec.dynamics

    @cached_property
    def slope_columns(self) -> np.ndarray:
        """Frame columns whose trend across the window is in the vector (with dynamics): MFCC,
        centroid, rolloff, flatness, zero-crossing rate and level (a trend in dB is gain-free)."""
        return np.r_[self.frame.mfcc, self.frame.scalars]

    @cached_property
    def n_dynamics(self) -> int:
        if not self.dynamics:
            return 0
        return self.mel.shape[0] + self.chroma.shape[0] + self.dct.shape[0] + len(self.slope_columns)

    @cached_property
    def vector_size(self) -> int:
        return (2 * self.n_stat_columns + self.dct.shape[0] + (len(PITCH_STATS) if self.pitch else 0)
                + self.n_dynamics)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "matrices": {
                "window": self.window,
                "mel": self.mel,
                "dct": self.dct,
                "chroma": self.chroma,
                "freqs_hz": self.freqs_hz,
                **({"window_acf": self.window_acf} if self.window_acf is not None else {}),
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FeatureDefinition":
        spec = data["spec"] if isinstance(data["spec"], FeatureSpec) else FeatureSpec.from_dict(dict(data["spec"]))
        m = data["matrices"]
        n_bins = spec.n_fft // 2 + 1
        fdef = cls(
            spec=spec,
            window=np.asarray(m["window"], dtype=np.float32),
            mel=np.asarray(m["mel"], dtype=np.float32),
            dct=np.asarray(m["dct"], dtype=np.float32),
            chroma=np.asarray(m["chroma"], dtype=np.float32),
            freqs_hz=np.asarray(m["freqs_hz"], dtype=np.float32),
            window_acf=np.asarray(m["window_acf"], dtype=np.float64) if "window_acf" in m else None,
        )
        if fdef.pitch and (fdef.window_acf is None or fdef.window_acf.shape != (spec.n_fft,)):
            raise ValueError("the feature spec asks for pitch but the bundle has no valid 'window_acf'")
        expected = {
            "window": (spec.n_fft,),
            "mel": (spec.n_mels, n_bins),
            "dct": (spec.n_mfcc, spec.n_mels),
            "chroma": (spec.n_chroma, n_bins),
            "freqs_hz": (n_bins,),
        }
        for name, shape in expected.items():
            got = getattr(fdef, name).shape
            if got != shape:
                raise ValueError(f"feature matrix {name!r} has shape {got}, expected {shape}")
        return fdef


def build_feature_matrices(spec: FeatureSpec | None = None) -> FeatureDefinition:
    """Ask librosa for the matrices that define the features (training time only); ``spec`` None:
    the shipped features (:class:`FeatureSpec`'s defaults)."""
    import librosa  # heavy: never imported on the run path
    import scipy.fft

    spec = FeatureSpec() if spec is None else spec
    sr, n_fft = spec.sample_rate_hz, spec.n_fft
    window = librosa.filters.get_window("hann", n_fft, fftbins=True)
    mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=spec.n_mels, fmin=spec.fmin_hz, fmax=spec.fmax_hz)
    # librosa.feature.mfcc applies an orthonormal type-II DCT along the mel axis.
    dct = scipy.fft.dct(np.eye(spec.n_mels), type=2, norm="ortho", axis=0)[: spec.n_mfcc]
    chroma = librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=0.0, n_chroma=spec.n_chroma)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    matrices = {"window": window, "mel": mel, "dct": dct, "chroma": chroma, "freqs_hz": freqs}
    if spec.pitch:
        # circular autocorrelation of the analysis window, for Boersma's correction
        matrices["window_acf"] = np.fft.irfft(np.abs(np.fft.rfft(window)) ** 2, n_fft)
    return FeatureDefinition.from_dict({"spec": spec, "matrices": matrices})


def frame_signal(samples: np.ndarray, *, n_fft: int, hop: int) -> np.ndarray:
    """View ``samples`` (n,) as frames (n_frames, n_fft), hop ``hop``, no padding (a view, no copy)."""
    if samples.shape[0] < n_fft:
        return np.empty((0, n_fft), dtype=samples.dtype)
    samples = np.ascontiguousarray(samples)
    n_frames = 1 + (samples.shape[0] - n_fft) // hop
    step = samples.strides[0]
    # as_strided rather than sliding_window_view: the same read-only view, without its per-call checks
    return np.lib.stride_tricks.as_strided(samples, (n_frames, n_fft), (hop * step, step), writeable=False)


# Frames are processed in slices of this many, so temporaries stay in cache.
FRAME_SLICE = 300
MEL_BLOCKS = 4  # groups of mel bands multiplied separately (see FeatureDefinition.mel_blocks)
DB_PER_NEPER = np.float32(10.0 / np.log(10.0))  # 10 log10(x) = DB_PER_NEPER * ln(x)


def frame_features(frames: np.ndarray, *, fdef: FeatureDefinition) -> np.ndarray:
    """Per-frame features.

    ``frames``: (n_frames, n_fft) float32 samples in [-1, 1].
    Returns (n_frames, n_frame_columns) float32:
    log-mel in dB (n_mels) | MFCC (n_mfcc) | chroma (n_chroma, max-normalised) |
    spectral centroid Hz | rolloff Hz | flatness | zero-crossing rate | level dBFS
    [| voicing (0..1) | log2 f0 (Hz), when the spec has pitch].
    """
    out = np.empty((frames.shape[0], fdef.n_frame_columns), dtype=np.float32)
    for start in range(0, frames.shape[0], FRAME_SLICE):
        stop = min(start + FRAME_SLICE, frames.shape[0])
        _frame_slice(np.asarray(frames[start:stop], dtype=np.float32), fdef, out[start:stop])
    return out


def _frame_slice(x: np.ndarray, fdef: FeatureDefinition, out: np.ndarray) -> None:
    amin = fdef.spec.amin
    tiny = np.finfo(np.float32).tiny
    cols = fdef.frame
    xw = x * fdef.window
    mag = np.abs(fft.rfft(xw, axis=1))  # (T, F) float32
    power = mag * mag

    logmel = out[:, cols.logmel]
    for bands, bins, weights in fdef.mel_blocks:
        np.matmul(power[:, bins], weights, out=logmel[:, bands])
    # 10 log10 as a natural log times a constant: numpy's float32 log is vectorised, its log10 is not
    np.log(np.maximum(logmel, amin), out=logmel)
    logmel *= DB_PER_NEPER
    out[:, cols.mfcc] = logmel @ fdef.dct.T

    chroma = power @ fdef.chroma.T
    cmax = chroma.max(axis=1, keepdims=True)
    out[:, cols.chroma] = chroma / np.where(cmax > tiny, cmax, 1.0)

    bin_ones, pair_ones = fdef.ones
    n_bins = bin_ones.shape[0]
    mag_sum = mag @ bin_ones
    out[:, cols.column("centroid_hz")] = (mag @ fdef.freqs_hz) / np.where(mag_sum > tiny, mag_sum, 1.0)
    out[:, cols.column("rolloff_hz")] = fdef.freqs_hz[
        _rolloff_bins(mag, fdef.spec.rolloff_percent, fdef.rolloff_blocks)]
    pclip = np.maximum(power, amin)
    out[:, cols.column("flatness")] = np.exp((np.log(pclip) @ bin_ones) / n_bins) / ((pclip @ bin_ones) / n_bins)
    # librosa counts |x| <= 1e-10 as zero, and zero as positive
    negative = x < -1e-10
    out[:, cols.column("zcr")] = ((negative[:, 1:] != negative[:, :-1]).astype(np.float32) @ pair_ones) / x.shape[1]
    rms = np.sqrt(np.einsum("ij,ij->i", x, x) / x.shape[1])
    level = cols.column("level_db")
    out[:, level] = 20.0 * np.log10(np.maximum(rms, 10.0 ** (LEVEL_FLOOR_DB / 20.0)))
    if fdef.pitch:
        _pitch_columns(power, out[:, level], fdef, out[:, cols.column("voicing")], out[:, cols.column("log2_f0")])


ROLLOFF_BLOCK = 16


def _rolloff_bins(mag: np.ndarray, percent: float, blocks: np.ndarray) -> np.ndarray:
    """First bin whose cumulative magnitude reaches ``percent`` of the frame's total.

    librosa's definition (a cumulative sum along frequency), computed coarse to
    fine: block sums (one product with ``blocks``, :attr:`FeatureDefinition.rolloff_blocks`)
    find the block, then that block's cumulative sum finds the bin. Rounding can
    move a frame whose cumulative sum sits exactly at the threshold by one bin
    (31 Hz); the parity test bounds how often.
    """
    n_frames, n_bins = mag.shape
    block_sums = mag @ blocks
    block_cum = np.cumsum(block_sums, axis=1)
    threshold = percent * block_cum[:, -1]
    block = np.argmax(block_cum >= threshold[:, None], axis=1)
    rows = np.arange(n_frames)
    first = block * ROLLOFF_BLOCK
    cols = np.minimum(first[:, None] + np.arange(ROLLOFF_BLOCK), n_bins - 1)
    inner = np.cumsum(mag[rows[:, None], cols], axis=1) + (block_cum[rows, block] - block_sums[rows, block])[:, None]
    reached = inner >= threshold[:, None]
    # not reached inside the block by rounding: its last bin
    return np.where(reached.any(axis=1), cols[rows, np.argmax(reached, axis=1)], cols[:, -1])


def _pitch_columns(power: np.ndarray, level_db: np.ndarray, fdef: FeatureDefinition,
                   voicing: np.ndarray, log2_f0: np.ndarray) -> None:
    """Fill the voicing and log2 f0 columns; frames below ``pitch_min_level_dbfs`` get 0 and 0
    (a bundle without that key searches every frame)."""
    floor = fdef.spec.pitch_min_level_dbfs
    loud = np.ones(level_db.shape[0], dtype=bool) if floor is None else level_db > float(floor)
    if loud.all():
        voicing[:], log2_f0[:] = _pitch(power, fdef)
        return
    voicing[:] = 0.0
    log2_f0[:] = 0.0
    if loud.any():
        idx = np.flatnonzero(loud)
        voicing[idx], log2_f0[idx] = _pitch(power[idx], fdef)


def _pitch(power: np.ndarray, fdef: FeatureDefinition) -> tuple[np.ndarray, np.ndarray]:
    """Voicing strength (normalised autocorrelation peak, 0..1) and log2 f0 per frame.

    The frame's (circular) autocorrelation, from its power spectrum, divided by
    the window's own (Boersma 1993), is searched between the lags of
    ``f0_max_hz`` and ``f0_min_hz`` for its first peak within 90 % of the
    highest one (which avoids octave errors), refined by a parabola.
    """
    sr = fdef.sample_rate_hz
    acf = fft.irfft(power, n=fdef.n_fft, axis=1)
    lo, hi, correction = fdef.pitch_lags
    # The peak search and the parabola are invariant to a positive scale per frame, so the
    # energy normalisation is applied to the chosen peak only.
    energy = acf[:, 0]
    scale = np.where(energy > 1e-12, 1.0 / np.maximum(energy, 1e-12), 0.0).astype(np.float32)
    norm = acf[:, lo - 1 : hi + 2] * correction
    inner = norm[:, 1:-1]
    peak = inner >= norm[:, :-2]
    peak &= inner >= norm[:, 2:]
    peak &= inner >= 0.9 * inner.max(axis=1, keepdims=True)
    k = np.argmax(peak, axis=1) + 1
    rows = np.arange(norm.shape[0])
    a, b, c = norm[rows, k - 1], norm[rows, k], norm[rows, k + 1]
    denom = a - 2.0 * b + c
    safe = np.abs(denom) > 1e-12 * np.abs(b)
    shift = np.where(safe, 0.5 * (a - c) / np.where(safe, denom, 1.0), 0.0)
    lag = lo - 1 + k + np.clip(shift, -0.5, 0.5)
    b = b * scale
    return np.clip(b, 0.0, 1.0), np.log2(sr / lag)


def level_column(*, fdef: FeatureDefinition) -> int:
    """Index of the level (dBFS) column in :func:`frame_features`' output."""
    return fdef.frame.column("level_db")


NEPER_PER_DB = np.float32(np.log(10.0) / 10.0)


def band_level_db(feats: np.ndarray, bands: slice) -> np.ndarray:
    """(T,) float32: each frame's power in the log-mel columns ``bands``
    (:meth:`FeatureDefinition.mel_bands_within`), in dB on the log-mel scale (for margins between
    frames, not an absolute level). The log-mel values are floored at ``amin`` and stay far from
    float32's range, so exp needs no shift."""
    return np.log(np.exp(feats[:, bands] * NEPER_PER_DB).sum(axis=1)) * DB_PER_NEPER


def window_level_dbfs(feats: np.ndarray, *, fdef: FeatureDefinition) -> float:
    """Mean-power level of a window in dBFS from its frames (T, n_frame_columns)."""
    level = feats[:, level_column(fdef=fdef)].astype(np.float64)
    power = np.mean(10.0 ** (level / 10.0)) if level.size else 0.0
    return float(max(10.0 * np.log10(max(power, 1e-30)), LEVEL_FLOOR_DB))


def window_vector(feats: np.ndarray, *, active: np.ndarray, fdef: FeatureDefinition) -> np.ndarray:
    """Statistics of a window's frames: the model's input vector.

    ``feats``: (T, n_frame_columns) from :func:`frame_features`; ``active``: (T,)
    bool speech mask from :mod:`ser_stream.vad`. Statistics are taken over the
    active frames when there are at least ``min_active_frames`` of them, else
    over all frames. Returns (vector_size,) float64:
    mean (stat_columns) | std (stat_columns) | std of the MFCC frame-to-frame
    difference over consecutive selected frames (n_mfcc) | pitch statistics
    (PITCH_STATS, when the spec has pitch) | with ``dynamics``: std of the
    frame-to-frame difference of log-mel (n_mels) and chroma (n_chroma), std of
    the MFCC second difference over three consecutive selected frames (n_mfcc),
    and the trend of ``slope_columns`` (their covariance with standardised time
    over the selected frames, in the columns' units).
    """
    f = np.asarray(feats, dtype=np.float64)
    use = active if int(np.count_nonzero(active)) >= fdef.spec.min_active_frames else np.ones_like(active)
    mean, std = _weighted_mean_std(f, use)
    mean, std = mean[fdef.stat_columns], std[fdef.stat_columns]
    cols = fdef.frame
    # log-mel | MFCC | chroma: the frame-to-frame difference of all three (only MFCC's without dynamics)
    block = slice(cols.logmel.start, cols.chroma.stop) if fdef.dynamics else cols.mfcc
    d1 = np.diff(f[:, block], axis=0)
    dstd = _difference_std(d1, use, order=1)
    mfcc = FrameLayout.within(cols.mfcc, block)
    parts = [mean, std, dstd[mfcc]]
    if fdef.pitch:
        parts.append(_pitch_stats(f, use, fdef))
    if fdef.dynamics:
        # the MFCC second difference is the difference of their first difference, already taken
        d2 = np.diff(d1[:, mfcc], axis=0)
        parts += [dstd[FrameLayout.within(cols.logmel, block)], dstd[FrameLayout.within(cols.chroma, block)],
                  _difference_std(d2, use, order=2), _trend(f, use)[fdef.slope_columns]]
    return np.concatenate(parts)


def _difference_std(d: np.ndarray, use: np.ndarray, *, order: int) -> np.ndarray:
    """Std of the rows of ``d`` (T - order, D), an ``order``-th frame difference, over runs of
    ``order + 1`` consecutive selected frames (over all of them when fewer than 2 such runs exist)."""
    runs = use[order:].copy()
    for k in range(order):
        runs &= use[k : use.shape[0] - order + k]
    if d.shape[0] == 0:
        return np.zeros(d.shape[1])
    if np.count_nonzero(runs) < 2:
        runs = np.ones_like(runs)
    return _weighted_mean_std(d, runs)[1]


def _trend(f: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Covariance of every column of ``f`` (T, D) with standardised frame time, over the selected frames."""
    w = use.astype(np.float64) / max(int(np.count_nonzero(use)), 1)
    t = np.arange(f.shape[0], dtype=np.float64)
    dt = t - w @ t
    centred = dt * w
    spread = np.sqrt(centred @ dt)
    return (centred / spread) @ f if spread > 0 else np.zeros(f.shape[1])


def _pitch_stats(f: np.ndarray, use: np.ndarray, fdef: FeatureDefinition) -> np.ndarray:
    """log2 f0 mean, std, 10th and 90th percentile over voiced selected frames, and the voiced fraction."""
    c = fdef.frame.column("log2_f0")
    voiced = use & (f[:, fdef.frame.column("voicing")] >= fdef.spec.voicing_threshold)
    n_voiced = int(np.count_nonzero(voiced))
    fraction = n_voiced / max(int(np.count_nonzero(use)), 1)
    if n_voiced < 5:
        return np.array([0.0, 0.0, 0.0, 0.0, fraction])
    lf0 = f[voiced, c]
    p10, p90 = percentiles(lf0, (10.0, 90.0))
    return np.array([lf0.mean(), lf0.std(), p10, p90, fraction])


def _weighted_mean_std(f: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) std of the rows of ``f`` (T, D) selected by ``mask`` (T,), as two products."""
    w = mask.astype(np.float64) / max(int(np.count_nonzero(mask)), 1)
    mean = w @ f
    var = w @ (f * f) - mean * mean
    return mean, np.sqrt(np.maximum(var, 0.0))
