"""Ablation of the training recipe: what each ingredient is worth, speaker-independent.

    .venv/bin/python benchmarks/ablation.py [--data ../shared/data/ravdess] [--jobs 2]

Features are extracted once (clean training windows, the recipe's augmented copies, the
daemon's test windows clean and degraded); then each row re-runs the 6-fold
actor-grouped cross-validation of `ser-stream evaluate` with one ingredient
removed. Prints a Markdown table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ser_stream.features import build_feature_matrices  # noqa: E402
from ser_stream.training.corpora import scan_ravdess  # noqa: E402
from ser_stream.training.extract import AUGMENT_COPIES, DAEMON_VIEW, View, extract_dataset, training_views  # noqa: E402
from ser_stream.training.protocols import cross_validate  # noqa: E402


def column_groups(fdef) -> dict[str, np.ndarray]:
    """Vector columns of each feature group (mean and std blocks, and their own statistics)."""
    ns, n_mfcc, cols = fdef.n_stat_columns, fdef.dct.shape[0], fdef.frame
    position = {int(c): i for i, c in enumerate(fdef.stat_columns)}  # frame column -> place in the mean block

    def stat(cols):
        pos = [position[c] for c in cols if c in position]
        return [*pos, *(ns + p for p in pos)]

    def span(part: slice) -> range:
        return range(part.start, part.stop)

    shape = [cols.column(name) for name in ("centroid_hz", "rolloff_hz", "flatness", "zcr")]
    groups = {
        "log-mel statistics": stat(span(cols.logmel)),
        "MFCC statistics and deltas": stat(span(cols.mfcc)) + list(range(2 * ns, 2 * ns + n_mfcc)),
        "chroma": stat(span(cols.chroma)),
        "spectral centroid/rolloff/flatness/ZCR": stat(shape),
    }
    if fdef.spec.level_in_vector:
        groups["level (dBFS)"] = stat([cols.column("level_db")])
    if fdef.pitch:
        groups["pitch and voicing"] = (stat([cols.column("voicing")])
                                       + list(range(2 * ns + n_mfcc, fdef.vector_size - fdef.n_dynamics)))
    if fdef.dynamics:
        groups["dynamics (frame-to-frame change, trend)"] = list(range(fdef.vector_size - fdef.n_dynamics, fdef.vector_size))
    return {k: np.asarray(v) for k, v in groups.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ravdess")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.time()
    fdef = build_feature_matrices()
    clips = scan_ravdess(args.data)
    views = {**training_views(AUGMENT_COPIES), "test": DAEMON_VIEW, "noise10": View(3.0, 1.0, "noise10"),
             "reverb": View(3.0, 1.0, "reverb")}
    clips, vecs = extract_dataset(clips, fdef=fdef, jobs=args.jobs, views=views, seed=args.seed)
    groups = column_groups(fdef)
    all_cols = np.arange(fdef.vector_size)

    def run(train_views: list[str], drop: np.ndarray | None, tests: tuple[str, ...]) -> dict[str, dict]:
        keep = np.setdiff1d(all_cols, drop) if drop is not None else all_cols
        train = [np.concatenate([vecs[v][i][:, keep] for v in train_views]) for i in range(len(clips))]
        out = {}
        for test in tests:
            tv = [vecs[test][i][:, keep] for i in range(len(clips))]
            out[test] = cross_validate(clips=clips, train_vecs=train, test_vecs=tv, fdef=fdef,
                                       protocol="speaker-independent", seed=args.seed, jobs=args.jobs)
        return out

    full_views = list(training_views(AUGMENT_COPIES))
    all_tests = ("test", "noise10", "reverb")
    rows = [(f"shipped recipe (all features, {AUGMENT_COPIES} augmented copies)", run(full_views, None, all_tests))]
    rows.append(("2 augmented copies (the previous recipe)", run(full_views[:3], None, all_tests)))
    rows.append(("without augmentation", run(["clean"], None, all_tests)))
    for name, cols in groups.items():
        rows.append((f"without {name}", run(full_views, cols, ("test", "noise10") if name.startswith("dynamics") else ("test",))))
    if not fdef.spec.level_in_vector:
        with_level = build_feature_matrices(replace(fdef.spec, level_in_vector=True))
        _, lv = extract_dataset(clips, fdef=with_level, jobs=args.jobs,
                                views={k: views[k] for k in (*full_views, "test")}, seed=args.seed)
        train = [np.concatenate([lv[v][i] for v in full_views]) for i in range(len(clips))]
        r = cross_validate(clips=clips, train_vecs=train, test_vecs=lv["test"], fdef=with_level,
                           protocol="speaker-independent", seed=args.seed, jobs=args.jobs)
        rows.append(("with level (dBFS) statistics added", {"test": r}))

    print("| recipe | dims | accuracy | UAR | UAR, noise 10 dB | UAR, reverb |")
    print("| --- | --- | --- | --- | --- | --- |")
    result = []
    for name, r in rows:
        dims = fdef.vector_size - (len(groups[name[8:]]) if name.startswith("without ") and name[8:] in groups else 0)
        dims += 2 if name.startswith("with level") else 0
        t = r["test"]
        noise = r.get("noise10", {}).get("uar")
        reverb = r.get("reverb", {}).get("uar")
        fmt = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"| {name} | {dims} | {t['accuracy']:.3f} | {t['uar']:.3f} | {fmt(noise)} | {fmt(reverb)} |")
        result.append({"recipe": name, "dims": dims, "accuracy": t["accuracy"], "uar": t["uar"],
                       "uar_noise10": noise, "uar_reverb": reverb})
    print(json.dumps({"protocol": "speaker-independent", "clips": len(clips), "seconds": round(time.time() - t0),
                      "rows": result}))


if __name__ == "__main__":
    main()
