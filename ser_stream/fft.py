"""Real FFTs for the feature front end: scipy's pocketfft kernel without the weight of ``scipy.fft``.

The run path needs two transforms: the real FFT of each frame and the inverse
FFT of its power spectrum (the autocorrelation for pitch). Both are scipy's
compiled pocketfft module (``scipy/fft/_pocketfft/pypocketfft``). Importing it
through ``scipy.fft`` also imports ``scipy.special`` and scipy's array-API
layer, which pulls in ``numpy.f2py``, ``numpy.testing`` and more: measured on a
2-core machine, 0.31 s of start-up and 28 MB of resident memory, more than the
rest of the daemon's analysis. This module loads that one extension module from
where scipy installed it (about 2 ms and 0.6 MB), checks it once against
``numpy.fft`` on a small input, and calls it as ``scipy.fft.rfft`` / ``irfft``
do (same arguments, same results). If the module is not there or does not
answer as expected (another scipy layout), it falls back to ``scipy.fft``:
correct either way, only heavier. :data:`BACKEND` says which is in use.

Pure functions; the loaded module is read-only and shared.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_BACKWARD, _ONE_OVER_N = 0, 2  # pocketfft's normalisation codes: none (forward) and 1/n (inverse)


def _load_pocketfft() -> ModuleType | None:
    """scipy's ``pypocketfft`` extension module, loaded on its own and checked; None when unusable."""
    try:
        spec = importlib.util.find_spec("scipy")
        if spec is None or spec.origin is None:
            return None
        folder = Path(spec.origin).parent / "fft" / "_pocketfft"
        found = [p for suffix in importlib.machinery.EXTENSION_SUFFIXES for p in folder.glob("pypocketfft" + suffix)]
        if not found:
            return None
        module_spec = importlib.util.spec_from_file_location("pypocketfft", found[0])
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        x = np.cos(np.arange(2 * 16, dtype=np.float32).reshape(2, 16) * 0.7) + np.float32(0.25)
        forward = module.r2c(x, (1,), True, _BACKWARD, None, 1)
        back = module.c2r(forward, (1,), 16, False, _ONE_OVER_N, None, 1)
        if not (forward.dtype == np.complex64 and np.allclose(forward, np.fft.rfft(x, axis=1), atol=1e-4)
                and np.allclose(back, x, atol=1e-5)):
            return None
        return module
    except Exception as exc:  # noqa: BLE001 - any surprise in scipy's layout means: use its public API
        log.debug("scipy's pocketfft module could not be loaded on its own (%s); using scipy.fft", exc)
        return None


_POCKETFFT = _load_pocketfft()
BACKEND = "pypocketfft" if _POCKETFFT is not None else "scipy.fft"


def rfft(x: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """``scipy.fft.rfft(x, axis=axis)`` of a real array (float32 in, complex64 out)."""
    if _POCKETFFT is None:
        import scipy.fft

        return scipy.fft.rfft(x, axis=axis)
    return _POCKETFFT.r2c(np.asarray(x), (axis,), True, _BACKWARD, None, 1)


def irfft(x: np.ndarray, *, n: int, axis: int = -1) -> np.ndarray:
    """``scipy.fft.irfft(x, n=n, axis=axis)`` for ``x`` with ``n // 2 + 1`` entries along ``axis``
    (real ``x`` is taken as the real part of the spectrum, as scipy does)."""
    a: Any = np.asarray(x)
    if a.shape[axis] != n // 2 + 1:
        raise ValueError(f"irfft of {a.shape[axis]} bins to {n} samples: expected {n // 2 + 1} bins")
    if _POCKETFFT is None:
        import scipy.fft

        return scipy.fft.irfft(a, n=n, axis=axis)
    if not np.iscomplexobj(a):
        a = a.astype(np.complex64 if a.dtype == np.float32 else np.complex128)
    return _POCKETFFT.c2r(a, (axis,), n, False, _ONE_OVER_N, None, 1)
