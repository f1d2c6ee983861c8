"""The model file format: data only, nothing in it can run code when it is loaded.

A bundle is one ``.npz`` file (a zip of ``.npy`` arrays) read with
``allow_pickle=False``. Its entry ``__bundle__`` holds a UTF-8 JSON document:
the model's metadata, labels, feature definition and the layout of its heads,
where each array is a reference ``{"$array": NAME}`` to another entry, and
``sha256``, the digest of every array (name, dtype, shape and bytes, in name
order), checked on load. Object arrays cannot be read without pickle, so a file
crafted to execute code on load is refused before anything runs.

The older joblib (pickle) bundles are refused with the way to convert one:
``ser-stream convert-model OLD NEW`` unpickles OLD, which the user runs only on
a file they trust. A bundle that other users may write is refused too.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError

META_ENTRY = "__bundle__"
ARRAY_KEY = "$array"
MAX_META_BYTES = 16 * 1024 * 1024
PICKLE_SUFFIXES = {".joblib", ".pkl", ".pickle"}


def _flatten(obj: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """``obj`` as JSON, its arrays moved into ``arrays`` under their path."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise ValueError(f"{path}: object arrays cannot be stored")
        arrays[path] = obj
        return {ARRAY_KEY: path}
    if isinstance(obj, dict):
        return {str(k): _flatten(v, arrays, f"{path}/{k}" if path else str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, arrays, f"{path}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise ValueError(f"{path}: cannot store a {type(obj).__name__}")


def _unflatten(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {ARRAY_KEY}:
            name = obj[ARRAY_KEY]
            if not isinstance(name, str) or name not in arrays:
                raise ValueError(f"array {name!r} is referenced but not stored")
            return arrays[name]
        return {k: _unflatten(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, arrays) for v in obj]
    return obj


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """Digest of the arrays: name, dtype, shape and C-order bytes of each, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_bundle(bundle: dict[str, Any], path: Path) -> str:
    """Write ``bundle`` (a dict of JSON values and numpy arrays) to ``path`` atomically, mode 0644.
    Returns the arrays' SHA-256."""
    arrays: dict[str, np.ndarray] = {}
    doc = _flatten(bundle, arrays, "")
    digest = arrays_sha256(arrays)
    meta = json.dumps({"sha256": digest, "bundle": doc}, sort_keys=True).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **{META_ENTRY: np.frombuffer(meta, dtype=np.uint8)}, **arrays)
    os.chmod(tmp, 0o644)
    tmp.replace(path)
    return digest


def check_file(path: Path) -> None:
    """Refuse a missing file, a file other users can write, and a pickle; raises ModelError naming ``path``."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found (model.path)") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model file: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{path}: not a regular file (model.path)")
    if st.st_mode & stat.S_IWOTH:
        raise ModelError(f"{path}: other users can write this model file (mode {stat.filemode(st.st_mode)}, "
                         f"{oct(st.st_mode & 0o777)}); refusing to load it. Fix with: chmod o-w {path}")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK":
        if path.suffix.lower() in PICKLE_SUFFIXES or head[:1] in (b"\x80", b"\x78", b"\x1f"):
            raise ModelError(f"{path}: a joblib/pickle model bundle, which can run code when loaded; ser-stream no "
                             f"longer reads them. If you trust this file, convert it once: "
                             f"ser-stream convert-model {path} {path.with_suffix('.npz')}")
        raise ModelError(f"{path}: cannot read model bundle: not a ser-stream .npz bundle")


def read_bundle(path: Path) -> tuple[dict[str, Any], str]:
    """The bundle dict stored in ``path`` and its arrays' SHA-256 (checked against the recorded one).
    Raises ModelError naming the file on any problem; never unpickles."""
    check_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if META_ENTRY not in z.files:
                raise ValueError(f"no {META_ENTRY} entry")
            raw = z[META_ENTRY]
            if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > MAX_META_BYTES:
                raise ValueError(f"{META_ENTRY} is not a JSON document")
            meta = json.loads(raw.tobytes().decode("utf-8"))
            arrays = {name: z[name] for name in z.files if name != META_ENTRY}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError,
            io.UnsupportedOperation) as exc:
        # object arrays raise ValueError here ("Object arrays cannot be loaded when allow_pickle=False");
        # a damaged compressed entry raises zlib.error
        raise ModelError(f"{path}: cannot read model bundle: {type(exc).__name__}: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("bundle"), dict):
        raise ModelError(f"{path}: cannot read model bundle: {META_ENTRY} holds no bundle")
    digest = arrays_sha256(arrays)
    if digest != meta.get("sha256"):
        raise ModelError(f"{path}: arrays do not match the recorded SHA-256 (file changed or damaged): "
                         f"recorded {meta.get('sha256')!r}, computed {digest}")
    try:
        bundle = _unflatten(meta["bundle"], arrays)
    except ValueError as exc:
        raise ModelError(f"{path}: invalid model bundle: {exc}") from None
    return bundle, digest
