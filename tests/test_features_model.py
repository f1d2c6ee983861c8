"""The numpy run path equals its definitions: librosa's features and scikit-learn's MLP."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_stream import features as F
from ser_stream.errors import ModelError
from ser_stream.bundle import read_bundle, write_bundle
from ser_stream.model import DEFAULT_MODEL_PATH, LABELS, load_model

# Stated tolerance of the parity with librosa (float32 arithmetic on both sides).
RTOL, ATOL = 1e-4, 2e-3


@pytest.fixture(scope="module")
def fdef():
    return F.build_feature_matrices()


def test_frame_features_equal_librosa(fdef, clip: Path):
    import librosa

    y, sr = sf.read(clip, dtype="float32")
    y = y[: 3 * sr]
    kw = dict(n_fft=512, hop_length=160, center=False)
    ours = F.frame_features(F.frame_signal(y, n_fft=512, hop=160), fdef=fdef)
    power = np.abs(librosa.stft(y, **kw)) ** 2
    logmel = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr, n_mels=64, fmin=0, fmax=8000), top_db=None)
    ref = np.concatenate(
        [
            logmel.T,
            librosa.feature.mfcc(S=logmel, n_mfcc=20).T,
            librosa.feature.chroma_stft(S=power, sr=sr, tuning=0.0).T,
            np.stack(
                [
                    librosa.feature.spectral_centroid(y=y, sr=sr, **kw)[0],
                    librosa.feature.spectral_rolloff(y=y, sr=sr, roll_percent=0.85, **kw)[0],
                    librosa.feature.spectral_flatness(y=y, **kw)[0],
                    librosa.feature.zero_crossing_rate(y, frame_length=512, hop_length=160, center=False)[0],
                    20 * np.log10(np.maximum(librosa.feature.rms(y=y, frame_length=512, hop_length=160, center=False)[0], 1e-5)),
                ],
                axis=1,
            ),
        ],
        axis=1,
    )
    assert ours.shape == (297, fdef.n_frame_columns) and ref.shape == (297, fdef.n_frame_columns - 2)
    rolloff = fdef.mel.shape[0] + fdef.dct.shape[0] + fdef.chroma.shape[0] + 1
    others = [c for c in range(ref.shape[1]) if c != rolloff]
    np.testing.assert_allclose(ours[:, others], ref[:, others], rtol=RTOL, atol=ATOL)
    # rolloff: the same bin, but for at most 1 % of frames one bin (31.25 Hz) away (rounding at the threshold)
    off = np.abs(ours[:, rolloff] - ref[:, rolloff])
    assert off.max() <= 31.25 + 1e-3 and np.count_nonzero(off > 1e-3) <= 0.01 * len(off)


def test_rolloff_matches_librosa_over_many_clips(fdef, ravdess: Path):
    import librosa

    frames = differ = 0
    for path in sorted((ravdess / "Actor_03").glob("*.flac"))[:20]:
        y, sr = sf.read(path, dtype="float32")
        ours = F.frame_features(F.frame_signal(y, n_fft=512, hop=160), fdef=fdef)[:, fdef.mel.shape[0] + 33]
        ref = librosa.feature.spectral_rolloff(y=y, sr=sr, n_fft=512, hop_length=160, center=False)[0]
        off = np.abs(ours - ref)
        assert off.max() <= 31.25 + 1e-3
        frames += len(off)
        differ += int(np.count_nonzero(off > 1e-3))
    assert differ <= 0.001 * frames


@pytest.mark.parametrize("f0", [90.0, 130.0, 210.0, 320.0, 450.0])
def test_pitch_of_harmonic_tones(fdef, f0: float):
    t = np.arange(48000) / 16000
    y = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t + k) for k in range(1, 6)).astype(np.float32)
    feats = F.frame_features(F.frame_signal(y, n_fft=512, hop=160), fdef=fdef)
    voicing, f0_est = feats[:, -2], 2 ** feats[:, -1]
    assert np.median(voicing) > 0.8
    assert abs(np.median(f0_est) / f0 - 1) < 0.03


def test_noise_is_unvoiced(fdef):
    y = np.random.default_rng(3).normal(scale=0.1, size=48000).astype(np.float32)
    feats = F.frame_features(F.frame_signal(y, n_fft=512, hop=160), fdef=fdef)
    assert np.median(feats[:, -2]) < fdef.spec.voicing_threshold


def test_pitch_agrees_with_librosa_yin_on_speech(fdef, clip: Path):
    import librosa

    y, sr = sf.read(clip, dtype="float32")
    feats = F.frame_features(F.frame_signal(y, n_fft=512, hop=160), fdef=fdef)
    yin = librosa.yin(y, fmin=70, fmax=500, sr=sr, frame_length=512, hop_length=160, center=False)
    n = min(len(yin), feats.shape[0])
    voiced = (feats[:n, -2] > 0.8) & (feats[:n, -4] > -40)  # clearly voiced, loud frames
    assert voiced.sum() > 50
    semitones = 12 * np.abs(feats[:n, -1][voiced] - np.log2(yin[:n][voiced]))
    assert np.median(semitones) < 0.5  # same pitch track, within half a semitone


# Random labels never converge; 50 epochs give trained, non-trivial weights, which is all the parity needs.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_numpy_forward_pass_equals_predict_proba(fdef):
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    from ser_stream.model import Heads
    from ser_stream.training.fit import classifier_of, to_model

    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, fdef.vector_size)) * rng.uniform(0.1, 50, fdef.vector_size) + 7
    y = rng.integers(0, 8, 400)
    for hidden in [(32,), (16, 8)]:
        scaler = StandardScaler().fit(X)
        clf = MLPClassifier(hidden_layer_sizes=hidden, max_iter=50, random_state=0).fit(scaler.transform(X), y)
        model = to_model(Heads(classifier_of(scaler, clf)), fdef=fdef, meta={})
        np.testing.assert_allclose(model.predict_proba(X), clf.predict_proba(scaler.transform(X)), rtol=1e-10, atol=1e-12)
        # a binary head (arousal, valence): one logistic output, published as 2 P(high) - 1
        binary = MLPClassifier(hidden_layer_sizes=hidden, max_iter=50, random_state=0).fit(scaler.transform(X), y > 3)
        head = classifier_of(scaler, binary)
        p_high = binary.predict_proba(scaler.transform(X))[:, 1]
        np.testing.assert_allclose(head.predict_proba(X)[:, 1], p_high, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(head.signed(X), 2 * p_high - 1, rtol=1e-10, atol=1e-12)
        # the run path's one-pass answer (first layers fused, standardisers folded in) gives the same,
        # with a temperature, with the heads of another width, and without a valence head
        emotion = classifier_of(scaler, clf).with_temperature(2.5)
        other = classifier_of(scaler, MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0)
                              .fit(scaler.transform(X), y % 2 == 0))
        for heads in (Heads(emotion, arousal=head, valence=other), Heads(emotion, arousal=other)):
            for x in X[:20]:
                probs, arousal, valence = heads.answer(x)
                np.testing.assert_allclose(probs, emotion.predict_proba(x)[0], rtol=1e-9, atol=1e-12)
                assert arousal == pytest.approx(heads.dimension("arousal", x)[0], rel=1e-9, abs=1e-12)
                assert valence == (None if heads.valence is None
                                   else pytest.approx(heads.dimension("valence", x)[0], rel=1e-9, abs=1e-12))
        # a temperature divides the logits: the argmax stays, the confidence drops
        hot = head.with_temperature(2.0)
        assert np.array_equal(hot.signed(X) > 0, head.signed(X) > 0) and np.all(np.abs(hot.signed(X)) <= np.abs(head.signed(X)))


def test_default_model_loads_without_sklearn_or_librosa():
    import subprocess
    import sys

    code = (
        "import sys; from ser_stream.model import load_model; m = load_model(None); "
        "bad = [k for k in ('sklearn', 'librosa', 'numba') if k in sys.modules]; "
        "print(len(m.labels), m.sample_rate_hz, bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "8 16000 []"


def test_bundle_round_trip(tmp_path: Path):
    m = load_model(None)
    assert m.labels == LABELS
    digest = m.save(tmp_path / "copy.npz")
    m2 = load_model(tmp_path / "copy.npz")
    assert digest == m.sha256 == m2.sha256  # the same arrays give the same checksum
    v = np.random.default_rng(0).normal(size=(3, m.features.vector_size))
    np.testing.assert_array_equal(m.predict_proba(v), m2.predict_proba(v))
    for heads in (m2.heads, m2.adaptive.heads):  # the shipped model has calibrated emotion heads and both dimensions
        assert heads.emotion.temperature > 1.0 and heads.arousal is not None and heads.valence is not None


def test_missing_and_corrupt_bundles_are_model_errors(tmp_path: Path):
    with pytest.raises(ModelError, match="nope.npz: model file not found"):
        load_model(tmp_path / "nope.npz")
    bad = tmp_path / "garbage.npz"
    bad.write_bytes(b"\x00not a bundle at all")
    with pytest.raises(ModelError, match="garbage.npz: cannot read model bundle"):
        load_model(bad)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(DEFAULT_MODEL_PATH.read_bytes()[:5000])
    with pytest.raises(ModelError, match="truncated.npz: cannot read model bundle"):
        load_model(truncated)
    bundle, _ = read_bundle(DEFAULT_MODEL_PATH)
    bundle["scaler"]["mean"] = bundle["scaler"]["mean"][:-1]
    write_bundle(bundle, tmp_path / "shape.npz")
    with pytest.raises(ModelError, match="scaler shapes"):
        load_model(tmp_path / "shape.npz")
    write_bundle({"hello": 1}, tmp_path / "other.npz")
    with pytest.raises(ModelError, match="not a ser-stream-model bundle"):
        load_model(tmp_path / "other.npz")


def test_dynamics_measure_change_and_trend(fdef):
    """The dynamics block: a rising tone has a positive level and centroid trend and frame-to-frame
    change; a steady tone has neither. Without the spec key the vector is the older layout."""
    t = np.arange(48000) / 16000
    steady = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sweep = (np.linspace(0.01, 0.5, t.size) * np.sin(2 * np.pi * (300 * t + 300 * t**2))).astype(np.float32)

    def dyn(y, spec_fdef):
        feats = F.frame_features(F.frame_signal(y, n_fft=512, hop=160), fdef=spec_fdef)
        return F.window_vector(feats, active=np.ones(feats.shape[0], dtype=bool), fdef=spec_fdef)

    n_mels, n_chroma, n_mfcc = fdef.mel.shape[0], fdef.chroma.shape[0], fdef.dct.shape[0]
    start = fdef.vector_size - fdef.n_dynamics
    trend = slice(start + n_mels + n_chroma + n_mfcc, fdef.vector_size)
    names = [*(f"mfcc{k}" for k in range(n_mfcc)), *F.SCALAR_COLUMNS]
    s, w = dyn(steady, fdef), dyn(sweep, fdef)
    rise = dict(zip(names, w[trend]))
    assert rise["level_db"] > 5.0 and rise["centroid_hz"] > 100.0  # dB and Hz per standard deviation of time
    assert np.all(np.abs(s[trend][-1:]) < 0.01)  # a steady tone's level does not move
    assert w[start : start + n_mels].mean() > 10 * s[start : start + n_mels].mean()  # log-mel changes frame to frame
    older = F.build_feature_matrices(dataclasses.replace(F.FeatureSpec(), dynamics=False))
    assert older.n_dynamics == 0 and older.vector_size == start
    np.testing.assert_allclose(dyn(sweep, older), w[:start], rtol=1e-6)


def test_fft_is_scipys_pocketfft_without_scipy_fft(monkeypatch):
    """ser_stream.fft loads scipy's compiled pocketfft on its own and gives scipy.fft's results bit for bit;
    without that module (another scipy layout) it falls back to scipy.fft itself."""
    import scipy.fft

    from ser_stream import fft

    assert fft.BACKEND == "pypocketfft"  # with the scipy this project installs: a change of layout shows here
    x = np.random.default_rng(3).standard_normal((40, 512)).astype(np.float32)
    spectrum = fft.rfft(x, axis=1)
    assert spectrum.dtype == np.complex64 and np.array_equal(spectrum, scipy.fft.rfft(x, axis=1))
    power = (np.abs(spectrum) ** 2).astype(np.float32)
    acf = fft.irfft(power, n=512, axis=1)
    assert acf.dtype == np.float32 and np.array_equal(acf, scipy.fft.irfft(power, n=512, axis=1))
    assert np.array_equal(fft.irfft(x[:, :257].astype(np.float64), n=512, axis=1),
                          scipy.fft.irfft(x[:, :257].astype(np.float64), n=512, axis=1))
    with pytest.raises(ValueError, match="257"):
        fft.irfft(power[:, :200], n=512, axis=1)
    monkeypatch.setattr(fft, "_POCKETFFT", None)
    assert np.array_equal(fft.rfft(x, axis=1), spectrum) and np.array_equal(fft.irfft(power, n=512, axis=1), acf)


def test_the_feature_spec_is_typed_and_its_defaults_are_the_shipped_features():
    spec = F.FeatureSpec()
    assert load_model(None).features.spec == spec  # the shipped model uses the defaults
    stored = spec.to_dict()
    assert F.FeatureSpec.from_dict(stored) == spec
    older = {k: v for k, v in stored.items() if k not in ("dynamics", "pitch_min_level_dbfs")}
    legacy = F.FeatureSpec.from_dict(older)  # an older bundle: what the absent keys meant then
    assert legacy.dynamics is False and legacy.pitch_min_level_dbfs is None and legacy.pitch is True
    with pytest.raises(ValueError, match="unknown key"):
        F.FeatureSpec.from_dict({**stored, "n_bark": 24})
    with pytest.raises(ValueError, match="lacks 'n_fft'"):
        F.FeatureSpec.from_dict({k: v for k, v in stored.items() if k != "n_fft"})
    with pytest.raises(ValueError, match="'pitch' is 'yes', expected true or false"):
        F.FeatureSpec.from_dict({**stored, "pitch": "yes"})
