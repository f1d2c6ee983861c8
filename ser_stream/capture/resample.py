"""Streaming resampling to the model's rate (soxr)."""

from __future__ import annotations

import numpy as np


class Resampler:
    """Streaming mono resampler from ``in_rate`` to ``out_rate``; owned by the pipeline thread.

    A pass-through when the rates match. soxr keeps the filter state between
    blocks, so a stream resampled block by block equals the whole signal
    resampled at once (up to soxr's own rounding).
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        self._stream = None
        if self.in_rate != self.out_rate:
            import soxr

            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality="HQ")

    def process(self, block: np.ndarray) -> np.ndarray:
        if self._stream is None:
            return block
        return self._stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32))

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
