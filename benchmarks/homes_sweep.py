"""The homes of K voices under other run-time settings: the fold models of a leave-one-corpus-out run,
replayed on their held-out corpora with each combination of settings (mood rule, arousal spread,
voices), without training anything.

    ser-stream evaluate --protocol leave-one-corpus-out --data C1 C2 ... --save-models FOLDS   # once
    .venv/bin/python benchmarks/homes_sweep.py --models FOLDS --data C1 C2 ... \\
        --grid adaptation.arousal_spread=none,1 --grid mood.arousal_on=0.3,0.4 [--cache DIR] [--jobs 2]

Each held-out corpus's homes (dry, near, far; K = 1, 3, 6) are analysed once (cached in --cache as
plain arrays) and scored by its fold model (DIR/fold-CORPUS.npz) as `run` scores them, for every
combination of the --grid values (KEY=V1,V2,...; `none` = null). Prints a line per combination
(the worst calm-talk share, changes per hour and quarrel share over every corpus, K and acoustics,
and how many of the issue's targets hold: calm <= 5 % and <= 15 changes an hour, quarrel >= 70 %),
then one JSON line (the last) with every row. The same homes as `evaluate` (its seed and plans):
with the settings a fold was scored with, the rows equal that run's `households`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ser_stream.config import Config  # noqa: E402
from ser_stream.model import load_model  # noqa: E402
from ser_stream.training.corpora import scan_corpora  # noqa: E402
from ser_stream.training.homes import home_measures  # noqa: E402
from ser_stream.augment import HOME_ACOUSTICS  # noqa: E402
from ser_stream.training.streams import Stream, home_plans  # noqa: E402

CALM_SHARE_MAX, CALM_CHANGES_MAX, QUARREL_MIN = 0.05, 15.0, 0.70  # issue 29's targets
ANALYSIS_SECTIONS = ("vad", "window")  # settings that change what the streams hold: they are analysed again
STREAM_ARRAYS = ("clips", "starts", "ends", "t", "speech", "vectors", "clip_of")


def parse_grid(items: list[str]) -> list[dict[str, object]]:
    """``KEY=V1,V2`` items (JSON values, ``none`` = null; a value may be a list) -> every combination,
    as {dotted key: value}."""
    axes = []
    for item in items:
        key, _, values = item.partition("=")
        if not values or "." not in key:
            raise SystemExit(f"--grid {item!r}: expected SECTION.KEY=V1,V2,...")
        try:  # the values as a JSON list's items, so that a value may be a list itself: band_hz=[300,3400],null
            parsed = json.loads("[" + re.sub(r"\bnone\b", "null", values, flags=re.I) + "]")
        except json.JSONDecodeError as exc:
            raise SystemExit(f"--grid {item!r}: {exc}") from None
        axes.append([(key, v) for v in parsed])
    return [dict(c) for c in itertools.product(*axes)] if axes else [{}]


def configured(base: Config, settings: dict[str, object]) -> Config:
    data = base.model_dump()
    for key, value in settings.items():
        section, name = key.split(".", 1)
        data[section][name] = value
    return Config.model_validate(data)


def homes_of(corpus: Path, model, config: Config, *, jobs: int, seed: int, cache: Path | None):
    """The held-out corpus's homes, analysed (or read back from ``cache``)."""
    from ser_stream.training.homes import home_streams

    import hashlib

    clips = scan_corpora([corpus])
    what = {"features": model.features.to_dict(), **{k: config.model_dump(mode="json")[k] for k in ANALYSIS_SECTIONS}}
    key = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = None if cache is None else cache / f"homes-{corpus.name}-seed{seed}-{key}.npz"
    if path is not None and path.is_file():  # the plans are drawn again (seeded, cheap); their streams are read back
        plans = {p.name: p for a in HOME_ACOUSTICS for p in home_plans(clips, acoustics=a, seed=seed)}
        with np.load(path, allow_pickle=False) as data:
            names = [str(n) for n in data["names"]]
            return [(plans[n], Stream(name=n, hop_seconds=float(data["hop"]),
                                      **{k: data[f"{i}/{k}"] for k in STREAM_ARRAYS})) for i, n in enumerate(names)]
    homes = home_streams(clips, fdef=model.features, config=config, jobs=jobs, seed=seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"{i}/{k}": getattr(s, k) for i, (_, s) in enumerate(homes) for k in STREAM_ARRAYS}
        np.savez(path, names=np.array([s.name for _, s in homes]), hop=np.array(homes[0][1].hop_seconds), **arrays)
    return homes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, required=True, help="evaluate --save-models DIR (fold-CORPUS.npz)")
    ap.add_argument("--data", type=Path, nargs="+", required=True, help="the held-out corpora to replay")
    ap.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=V1,V2")
    ap.add_argument("--cache", type=Path, help="keep the analysed homes here (plain arrays)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    base = Config()
    combos = parse_grid(args.grid)
    rows = []
    for corpus in args.data:
        model = load_model(args.models / f"fold-{corpus.name}.npz")
        analyses: dict[str, list] = {}
        for settings in combos:
            heard = {k: v for k, v in settings.items() if k.split(".")[0] in ANALYSIS_SECTIONS}
            key = json.dumps(heard, sort_keys=True)
            if key not in analyses:
                start = time.monotonic()
                analyses[key] = homes_of(corpus, model, configured(base, heard), jobs=args.jobs, seed=args.seed,
                                         cache=args.cache)
                print(f"# {corpus.name} {key}: {len(analyses[key])} homes in {time.monotonic() - start:.0f} s",
                      file=sys.stderr)
            for row in home_measures(model, configured(base, settings), analyses[key]):
                rows.append({"corpus": corpus.name, "settings": settings, **row})
    print(f"{'settings':<60} {'calm max':>8} {'/h max':>7} {'quarrel min':>11} {'targets held':>12}")
    for settings in combos:
        mine = [r for r in rows if r["settings"] == settings]
        held = sum((r["calm_emotional_share"] <= CALM_SHARE_MAX) + (r["calm_changes_per_hour"] <= CALM_CHANGES_MAX)
                   + ((r["quarrel_agitated_share"] or 0.0) >= QUARREL_MIN) for r in mine)
        print(f"{json.dumps(settings):<60} {max(r['calm_emotional_share'] for r in mine):8.3f} "
              f"{max(r['calm_changes_per_hour'] for r in mine):7.1f} "
              f"{min(r['quarrel_agitated_share'] or 0.0 for r in mine):11.3f} {held:>6} of {3 * len(mine)}")
    print(json.dumps({"rows": rows, "grid": args.grid, "models": str(args.models)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
