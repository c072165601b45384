"""Benchmark: the full meta-evaluation grid on a paper-shaped synthetic matrix vs a NumPy loop.

Paper shape (issue 2): 447 models x 12,032 items, 14 subtasks; 50 targets, 300 sources, 50 runs,
sizes 10..1000, methods random + stratified_subtask, bootstrap intervals over runs (B = 1000).

The JAX study (without the closed-form ``random/exact`` rows, timed separately) runs four times
in this process: the first (cold) run includes compilation, the second
(warm) does not; compile time is their difference. The baseline is a plain NumPy implementation
of the same protocol and metrics (a Python loop over methods, sizes and runs, vectorised within a
run), timed in the same process on the same matrix.

    python benchmarks/bench_engine.py --out bench_engine.json
    python benchmarks/bench_engine.py --quick
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings

import jax
import numpy as np

import jaxbench
from _common import add_paper_shape_arguments, time_cold_and_warm  # benchmarks/ is on sys.path for scripts



def numpy_protocol(matrix, methods, sizes, runs, targets, sources, bootstrap, seed, log):
    """The same study in plain NumPy: splits, selection, estimates, binned agreement, bootstrap, MDAD."""
    rng = np.random.default_rng(seed)
    scores = matrix.scores.astype(np.float64)
    codes = matrix.subtask_codes
    num_models, num_items = scores.shape
    groups = [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]
    upper = np.triu_indices(targets, 1)
    mdads = {}
    for method in methods:
        for size in sizes:
            counts = np.zeros((runs, 2, 201, 2))  # (pairs, agree)
            for run in range(runs):
                order = rng.permutation(num_models)
                tgt, src = order[:targets], order[targets : targets + sources]  # noqa: F841
                seen_parts, unseen_parts = [], []
                for group in groups:
                    shuffled = rng.permutation(group)
                    seen_parts.append(shuffled[: len(group) // 2])
                    unseen_parts.append(shuffled[len(group) // 2 :])
                seen, unseen = np.concatenate(seen_parts), np.concatenate(unseen_parts)
                if method == "random":
                    chosen = rng.choice(seen, size, replace=False)
                else:
                    caps = np.array([len(p) for p in seen_parts])
                    alloc = np.minimum(caps, size // len(caps))
                    while alloc.sum() < size:  # spread the rest one by one over open subtasks
                        open_ = np.flatnonzero(alloc < caps)
                        extra = rng.choice(open_, min(size - alloc.sum(), len(open_)), replace=False)
                        alloc[extra] += 1
                    chosen = np.concatenate([rng.choice(p, a, replace=False)
                                             for p, a in zip(seen_parts, alloc) if a])
                y = scores[tgt]
                estimate = y[:, chosen].mean(1)
                for r, columns in enumerate((seen, unseen)):
                    truth = y[:, columns].mean(1)
                    gap = truth[upper[0]] - truth[upper[1]]
                    gap_hat = estimate[upper[0]] - estimate[upper[1]]
                    agree = (gap_hat != 0) & ((gap >= 0) == (gap_hat > 0))
                    bins = np.minimum(np.floor(np.abs(gap) * 200 + 1e-9), 200).astype(int)
                    np.add.at(counts[run, r, :, 0], bins, 1)
                    np.add.at(counts[run, r, :, 1], bins, agree)
            for r in range(2):
                draws = rng.integers(0, runs, (bootstrap, runs))
                weights = np.stack([np.bincount(d, minlength=runs) for d in draws])
                with np.errstate(invalid="ignore", divide="ignore"):
                    curve = counts[:, r, :, 1].sum(0) / counts[:, r, :, 0].sum(0)
                    boot = (weights @ counts[:, r, :, 1]) / (weights @ counts[:, r, :, 0])
                with warnings.catch_warnings():  # empty bins give all-NaN columns
                    warnings.simplefilter("ignore", RuntimeWarning)
                    np.nanpercentile(boot, [2.5, 97.5], axis=0)
                hits = np.flatnonzero(curve >= 0.8)
                mdads[(method, size, r)] = hits[0] * 0.5 if len(hits) else None
            log(f"  numpy {method} k={size} done")
    return mdads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_paper_shape_arguments(parser)
    parser.add_argument("--out", default="bench_engine.json")
    args = parser.parse_args()
    if args.quick:
        args.models, args.items, args.sources, args.runs = 120, 2000, 60, 10

    def log(message: str) -> None:
        print(message, flush=True)

    sizes = [int(s) for s in args.sizes.split(",")]
    methods = ["random", "stratified_subtask"]
    log(f"synthetic matrix {args.models} x {args.items}, {args.subtasks} subtasks")
    matrix, _ = jaxbench.generate_synthetic(args.models, args.items, num_subtasks=args.subtasks, seed=0)
    study = dict(methods=methods, sizes=sizes, num_runs=args.runs, num_targets=args.targets,
                 num_sources=args.sources, num_bootstrap=args.bootstrap, seed=0, exact=False)

    def progress(event, amount, description):
        if event == "advance" and description:
            log(f"  jax {description}: +{amount} runs")

    log("jax: cold run (compiles)")
    start = time.perf_counter()
    jaxbench.meta_evaluate(matrix, progress=progress, **study)
    cold = time.perf_counter() - start
    warm_times = []
    for repeat in range(3):
        log(f"jax: warm run {repeat + 1}/3")
        start = time.perf_counter()
        result = jaxbench.meta_evaluate(matrix, **study)
        warm_times.append(time.perf_counter() - start)
    warm = float(np.median(warm_times))
    log("numpy: same protocol")
    start = time.perf_counter()
    sizes = result.config["sizes"]  # sizes that fit the seen half
    numpy_protocol(matrix, methods, sizes, args.runs, args.targets, args.sources, args.bootstrap, 0, log)
    numpy_seconds = time.perf_counter() - start
    log("jax: random/exact rows (closed form on the same splits), cold then warm")
    exact_study = {**study, "methods": ["random"], "exact": True}
    exact_cold, exact_warm, exact_result = time_cold_and_warm(jaxbench.meta_evaluate, matrix, exact_study)
    record = {
        "benchmark": "engine",
        "shape": {"models": args.models, "items": args.items, "subtasks": args.subtasks,
                  "targets": args.targets, "sources": args.sources, "runs": args.runs,
                  "sizes": sizes, "methods": methods, "bootstrap": args.bootstrap},
        "device": str(jax.devices()[0]),
        "devices": jax.device_count(),
        "versions": {"python": platform.python_version(), "jax": jax.__version__,
                     "numpy": np.__version__, "jaxbench": jaxbench.__version__},
        "jax_cold_seconds": cold,
        "jax_warm_median_seconds": warm,
        "jax_compile_seconds": cold - warm,
        "numpy_seconds": numpy_seconds,
        "speedup_warm_vs_numpy": numpy_seconds / warm,
        "speedup_cold_vs_numpy": numpy_seconds / cold,
        "exact_included_seconds": {"cold": exact_cold, "warm": exact_warm,
                                   "random_plus_exact_rows": exact_result.timings},
        "mdad_random_seen": result.mdad.query("method == 'random' and reference == 'seen'")
        .set_index("size")["mdad"].to_dict(),
    }
    with open(args.out, "w") as handle:
        json.dump(record, handle, indent=2, default=str)
    log(json.dumps(record, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
