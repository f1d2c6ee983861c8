"""Seeded generators of bad input: mutated audio files, configs, model bundles and MQTT payloads.

Shared by tests/test_fuzz.py (a budgeted count per kind) and benchmarks/fuzz.py (the full counts).
Case ``i`` of a kind depends only on (seed, i), so any failure is reproduced by its number.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

AUDIO_KINDS = ("truncated", "bit-flipped", "random-bytes", "header-only", "absurd-size", "nan-inf", "channels-0",
               "channels-8", "rate-8k", "rate-192k", "pcm24", "pcm32", "float-extreme", "tiny", "flac-damaged")


def _rng(seed: int, i: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, i, salt])


def _wav_bytes(y: np.ndarray, sr: int, subtype: str, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, subtype=subtype, format=fmt)
    return buf.getvalue()


def _speech(clip: Path) -> np.ndarray:
    return sf.read(clip, dtype="float32")[0]


def audio_case(i: int, *, seed: int, clip: Path) -> tuple[str, bytes]:
    """(kind, file bytes) of audio case ``i``: a real clip, mutated."""
    rng = _rng(seed, i, 1)
    kind = AUDIO_KINDS[i % len(AUDIO_KINDS)]
    y = _speech(clip)
    y = y[: int(rng.integers(1, y.size))] if rng.random() < 0.3 else y
    base = _wav_bytes(y, 16000, "PCM_16")
    if kind == "truncated":
        return kind, base[: int(rng.integers(0, len(base)))]
    if kind == "bit-flipped":
        b = bytearray(base)
        for _ in range(int(rng.integers(1, 64))):
            pos = int(rng.integers(0, len(b)))
            b[pos] ^= 1 << int(rng.integers(0, 8))
        return kind, bytes(b)
    if kind == "random-bytes":
        return kind, rng.bytes(int(rng.integers(0, 200_000)))
    if kind == "header-only":
        return kind, base[:44]
    if kind == "absurd-size":
        b = bytearray(base)
        field = [4, 40][int(rng.integers(0, 2))]  # the RIFF size or the data chunk size
        b[field : field + 4] = struct.pack("<I", int(rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0, len(b) * 1000])))
        return kind, bytes(b)
    if kind == "nan-inf":
        z = np.stack([y, y], axis=1).astype(np.float32) if rng.random() < 0.5 else y.astype(np.float32)
        idx = rng.integers(0, z.shape[0], size=int(rng.integers(1, max(2, z.shape[0]))))
        z[idx] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=np.float32), size=idx.size)[:, None] \
            if z.ndim == 2 else rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=np.float32), size=idx.size)
        return kind, _wav_bytes(z, 16000, ["FLOAT", "DOUBLE"][int(rng.integers(0, 2))])
    if kind == "channels-0":
        b = bytearray(base)
        b[22:24] = struct.pack("<H", 0)
        return kind, bytes(b)
    if kind == "channels-8":
        z = np.tile(y[:, None], (1, 8)) * rng.uniform(0, 1, 8).astype(np.float32)
        return kind, _wav_bytes(z, 16000, "PCM_16")
    if kind in ("rate-8k", "rate-192k"):
        sr = 8000 if kind == "rate-8k" else 192000
        z = np.interp(np.arange(int(y.size * sr / 16000)) * 16000 / sr, np.arange(y.size), y).astype(np.float32)
        return kind, _wav_bytes(z, sr, "PCM_16")
    if kind == "pcm24":
        return kind, _wav_bytes(y, 16000, "PCM_24")
    if kind == "pcm32":
        return kind, _wav_bytes(y, 16000, "PCM_32")
    if kind == "float-extreme":
        z = (y * float(rng.choice([1e30, 1e-30, 0.0, -1e6]))).astype(np.float32)
        return kind, _wav_bytes(z, 16000, "FLOAT")
    if kind == "tiny":
        return kind, _wav_bytes(y[: int(rng.integers(1, 50))], int(rng.choice([8000, 16000, 44100])), "PCM_16")
    flac = bytearray(_wav_bytes(y, 16000, "PCM_16", fmt="FLAC"))
    for _ in range(int(rng.integers(1, 16))):
        pos = int(rng.integers(0, len(flac)))
        flac[pos] = int(rng.integers(0, 256))
    return kind, bytes(flac[: int(rng.integers(len(flac) // 2, len(flac) + 1))])


def _mutate_value(v, rng: np.random.Generator):
    choices = [None, "", "nonsense", -1, 0, 10**12, -1e300, float("nan"), float("inf"), True, [], {}, [1, 2],
               {"x": 1}, "ON", "0x10", "3.0.0", "\x00", "é" * 300]
    if isinstance(v, (int, float)) and not isinstance(v, bool) and rng.random() < 0.5:
        return v * float(rng.choice([-1, 0, 0.5, 2, 1e6, 1e-9]))
    return choices[int(rng.integers(0, len(choices)))]


def config_case(i: int, *, seed: int, base_text: str) -> tuple[str, str]:
    """(kind, YAML text) of config case ``i``: config.yaml with keys deleted, retyped, added or garbled."""
    rng = _rng(seed, i, 2)
    kind = ["value", "unknown-key", "delete", "section-type", "garbled-yaml", "huge", "deep"][i % 7]
    if kind == "garbled-yaml":
        b = bytearray(base_text.encode())
        for _ in range(int(rng.integers(1, 20))):
            b[int(rng.integers(0, len(b)))] = int(rng.choice(list(b":{}[]-\t\n'\"&*!|>%@`")))
        return kind, b.decode("utf-8", "replace")
    data = yaml.safe_load(base_text)
    sections = list(data)
    sec = sections[int(rng.integers(0, len(sections)))]
    if kind == "section-type":
        data[sec] = _mutate_value(None, rng)
    elif kind == "huge":
        return kind, "audio:\n  device: " + "x" * int(rng.integers(10_000, 3_000_000)) + "\n"
    elif kind == "deep":
        return kind, "a: " + "[" * int(rng.integers(100, 1000)) + "]" * int(rng.integers(0, 1000))
    elif isinstance(data[sec], dict) and data[sec]:
        keys = list(data[sec])
        key = keys[int(rng.integers(0, len(keys)))]
        if kind == "value":
            data[sec][key] = _mutate_value(data[sec][key], rng)
        elif kind == "unknown-key":
            data[sec][f"{key}_{int(rng.integers(0, 99))}"] = 1
        else:
            del data[sec][key]
    return kind, yaml.safe_dump(data, allow_unicode=True)


def bundle_case(i: int, *, seed: int, model: Path) -> tuple[str, bytes]:
    """(kind, file bytes) of bundle case ``i``: the default model's .npz, damaged or with a rewritten document."""
    rng = _rng(seed, i, 3)
    raw = model.read_bytes()
    kind = ["bit-flipped", "truncated", "document", "array-swapped", "random-bytes"][i % 5]
    if kind == "bit-flipped":
        b = bytearray(raw)
        for _ in range(int(rng.integers(1, 32))):
            b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
        return kind, bytes(b)
    if kind == "truncated":
        return kind, raw[: int(rng.integers(0, len(raw)))]
    if kind == "random-bytes":
        return kind, b"PK\x03\x04" + rng.bytes(int(rng.integers(0, 5000)))
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    if kind == "document":
        doc = json.loads(np.load(io.BytesIO(entries["__bundle__.npy"]), allow_pickle=False).tobytes())

        def walk(obj, depth=0):
            if isinstance(obj, dict) and obj:
                k = list(obj)[int(rng.integers(0, len(obj)))]
                if depth > 2 and rng.random() < 0.4 or not isinstance(obj[k], (dict, list)):
                    obj[k] = _mutate_value(obj[k], rng) if rng.random() < 0.8 else {"$array": "nope"}
                else:
                    walk(obj[k], depth + 1)
            elif isinstance(obj, list) and obj:
                j = int(rng.integers(0, len(obj)))
                obj[j] = _mutate_value(obj[j], rng) if not isinstance(obj[j], (dict, list)) else obj[j]
                if isinstance(obj[j], (dict, list)):
                    walk(obj[j], depth + 1)

        walk(doc["bundle"])
        if rng.random() < 0.5:  # keep the checksum consistent so the loader's own checks are reached
            doc["sha256"] = doc["sha256"]
        buf = io.BytesIO()
        np.save(buf, np.frombuffer(json.dumps(doc, allow_nan=True).encode(), dtype=np.uint8))
        entries["__bundle__.npy"] = buf.getvalue()
    else:  # one array replaced by another of another shape or dtype
        names = [n for n in entries if n != "__bundle__.npy"]
        name = names[int(rng.integers(0, len(names)))]
        buf = io.BytesIO()
        np.save(buf, rng.normal(size=tuple(int(x) for x in rng.integers(0, 5, size=int(rng.integers(0, 3))))).astype(
            rng.choice(["float64", "float32", "int8", "complex64"])))
        entries[name] = buf.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n, data in entries.items():
            z.writestr(n, data)
    return kind, out.getvalue()


def mqtt_payload(i: int, *, seed: int) -> bytes:
    """MQTT payload ``i``: empty, binary, text near the accepted words, JSON, or 1 MB."""
    rng = _rng(seed, i, 4)
    kind = i % 6
    if kind == 0:
        return b""
    if kind == 1:
        return rng.bytes(int(rng.integers(1, 4096)))
    if kind == 2:
        return [b"ON", b"OFF", b"on ", b" off\n", b"ONN", b"\xff\xfeO\x00N\x00", b"online", b"offline", b"PRESS",
                b"\x00ON"][int(rng.integers(0, 10))]
    if kind == 3:
        return json.dumps({"state": "ON", "x": [1] * int(rng.integers(0, 100))}).encode()
    if kind == 4:
        return b"A" * (1024 * 1024)
    return ("é" * int(rng.integers(1, 1000))).encode("utf-16")
