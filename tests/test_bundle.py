"""The data-only model format: nothing a model file holds can run code, and tampering is caught."""

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ser_stream.bundle import read_bundle, write_bundle
from ser_stream.errors import ModelError
from ser_stream.model import DEFAULT_MODEL_PATH, load_model

from .conftest import cli


class _RunsCode:
    """Unpickling this creates a marker file: proof that loading executed code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused_without_running(tmp_path: Path, clip: Path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsCode(marker))
    for name in ("evil.joblib", "evil.npz", "evil.bin"):
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(ModelError, match="pickle|cannot read model bundle"):
            load_model(tmp_path / name)
    r = cli("classify", str(clip), "--model", str(tmp_path / "evil.joblib"))
    assert r.returncode == 78 and "ser-stream convert-model" in r.stderr.decode()
    assert not marker.exists()
    # the same payload as an object array in a real bundle, in place of an array and of the metadata
    for entry in ("scaler/mean", "__bundle__"):
        buf = io.BytesIO()
        with zipfile.ZipFile(DEFAULT_MODEL_PATH) as src, zipfile.ZipFile(buf, "w") as z:
            for info in src.infolist():
                if info.filename != f"{entry}.npy":
                    z.writestr(info, src.read(info))
            with z.open(f"{entry}.npy", "w") as f:
                np.lib.format.write_array(f, np.array([_RunsCode(marker)], dtype=object), allow_pickle=True)
        (tmp_path / "object.npz").write_bytes(buf.getvalue())
        with pytest.raises(ModelError, match="object.npz: cannot read model bundle: ValueError: Object arrays"):
            load_model(tmp_path / "object.npz")
    assert not marker.exists()


def test_changed_arrays_fail_the_checksum(tmp_path: Path):
    bundle, digest = read_bundle(DEFAULT_MODEL_PATH)
    path = tmp_path / "m.npz"
    assert write_bundle(bundle, path) == digest == load_model(None).sha256
    # rewrite one array but keep the recorded digest
    with np.load(path, allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files}
    entries["scaler/mean"] = entries["scaler/mean"] + 1e-9
    np.savez(path, **entries)
    with pytest.raises(ModelError, match="m.npz: arrays do not match the recorded SHA-256"):
        load_model(path)


def test_a_model_file_others_can_write_is_refused(tmp_path: Path):
    path = tmp_path / "m.npz"
    path.write_bytes(DEFAULT_MODEL_PATH.read_bytes())
    os.chmod(path, 0o666)
    with pytest.raises(ModelError, match=r"m.npz: other users can write this model file \(mode -rw-rw-rw-, 0o666\)"):
        load_model(path)
    os.chmod(path, 0o644)
    assert load_model(path).labels


def test_convert_model_turns_a_trusted_joblib_bundle_into_data(tmp_path: Path, clip: Path):
    import joblib

    bundle, _ = read_bundle(DEFAULT_MODEL_PATH)
    joblib.dump(bundle, tmp_path / "old.joblib")
    r = cli("convert-model", str(tmp_path / "old.joblib"), str(tmp_path / "new.npz"))
    assert r.returncode == 0, r.stderr.decode()
    assert "only convert files you trust" in r.stderr.decode()
    assert load_model(tmp_path / "new.npz").sha256 == load_model(None).sha256
    r = cli("classify", str(clip), "--model", str(tmp_path / "new.npz"))
    assert r.returncode == 0
    r = cli("convert-model", str(tmp_path / "old.joblib"), str(tmp_path / "new.joblib"))
    assert r.returncode == 2 and "must end in .npz" in r.stderr.decode()


def test_a_damaged_compressed_entry_is_a_clear_model_error(tmp_path):
    """A bundle whose deflated array data is damaged (a bad disk, a cut download) is refused with the
    file named and exit 78, never a zlib traceback (found by the bundle fuzzer on the 2026-12-04 model)."""
    import zipfile

    import numpy as np
    import pytest

    from ser_stream.bundle import read_bundle, write_bundle
    from ser_stream.errors import ModelError

    path = tmp_path / "m.npz"
    write_bundle({"x": np.arange(20000, dtype=np.float64)}, path)
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.startswith("x"))
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for k in range(start + 20, start + 60):  # inside the deflated stream
        data[k] ^= 0xA5
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="m.npz: cannot read model bundle") as err:
        read_bundle(path)
    assert err.value.exit_code == 78
