"""Training speed: one cross-validation fold of a recipe from an experiment file, cold and warm cache.

For each chosen variant of ``experiments/classic.toml`` (default: the MFCC CNN) this trains fold
0 of the experiment's k-fold protocol on ``--data`` twice with :func:`genrekit.training.loop.train_model`:

1. **cold**: with an empty feature cache (a fresh temporary folder): every clip is decoded and
   its features computed, then the network trains;
2. **warm**: again with the cache the first run filled: features are read back, nothing is
   decoded.

It prints a Markdown table: seconds spent on features (``prepare_data``: dataset listing,
split, decoding and features or cache reads), on training (the epoch loop), in all
(``train_model`` from start to the saved model, calibration and evaluation included), the
process CPU time of the run (all threads; it depends less on other jobs sharing the machine
than wall time does) and the epochs run. Wall times on a shared machine are indicative only;
the load average before and after is printed with them.

Usage, from the repository root::

    .venv/bin/python benchmarks/bench_training.py [--data ../shared/data/gtzan-mini] \\
        [--variants mfcc-cnn,musicnn-mlp] [--threads 1] [--group-by track]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gtzan-mini"
DEFAULT_EXPERIMENT = ROOT / "experiments" / "classic.toml"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset (default gtzan-mini)")
    parser.add_argument("--experiment", type=Path, default=DEFAULT_EXPERIMENT, help="experiment file")
    parser.add_argument("--variants", default="mfcc-cnn", help="comma-separated variant names")
    parser.add_argument("--group-by", default="track", choices=["track", "artist"], help="fold grouping")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    return parser.parse_args()


def timed_fold(config) -> dict:
    from genrekit.training.loop import train_model

    wall, cpu = time.perf_counter(), time.process_time()
    result = train_model(config)
    return {
        "features": result.timings["features"],
        "training": result.timings["training"],
        "total": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "epochs": len(result.history),
        "accuracy": result.metrics["test"]["track_accuracy"],
        "tracks": result.metrics["test"]["n_tracks"],
    }


def warm_up() -> None:
    """Pay one-time costs (lazy imports of the optimizer, scipy, sklearn) outside the timings."""
    import scipy.optimize  # noqa: F401  temperature fitting
    import sklearn.model_selection  # noqa: F401  group k-fold
    import torch

    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])


def main() -> None:
    args = parse_args()
    import dataclasses

    import torch

    from genrekit.experiments.experiment import load_experiment, plan_runs
    from genrekit.apps.console import set_verbosity

    torch.set_num_threads(args.threads)
    set_verbosity(quiet=True)
    experiment = load_experiment(args.experiment, data=str(args.data), group_by=[args.group_by],
                                 only=args.variants.split(","))
    warm_up()
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for run in plan_runs(experiment):
            config = dataclasses.replace(run.config(0, Path(folder)), cache_dir=str(Path(folder) / "cache"))
            for state in ("cold", "warm"):
                rows.append((run.variant, state, timed_fold(config)))
    load_after = os.getloadavg()
    print(f"{args.data.name}, fold 1 of {experiment.protocol['folds']} ({args.group_by}-grouped), "
          f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    print("| recipe | cache | features s | training s | total s | CPU s | epochs | test tracks | track accuracy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for variant, state, r in rows:
        print(f"| {variant.input}, {variant.model} | {state} | {r['features']:.1f} | {r['training']:.1f} "
              f"| {r['total']:.1f} | {r['cpu']:.1f} | {r['epochs']} | {r['tracks']} | {r['accuracy']:.3f} |")


if __name__ == "__main__":
    main()
