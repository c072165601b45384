"""Benchmark: the confidence-based methods on a paper-shaped synthetic matrix with confidences.

Shape (issue 5): 447 models x 12,032 items, 14 subtasks, confidences; 50 targets, 300 sources,
50 runs, sizes 10..1000. Each method runs in its own subprocess, so its peak resident memory
(``resource.getrusage`` max RSS, which covers the CPU backend's buffers) is its own: a cold
``meta_evaluate`` (compiles) and a warm one; compile time is their difference. The engine chunks
runs to ``--memory-limit-gb`` with the method's ``bytes_per_run``.

Baseline, in the same worker: the paper's plain NumPy/SciPy tools for the same selection on the
same seen halves, timed on ``--baseline-runs`` runs and scaled to all runs (selection only, no
metrics): ``np.corrcoef`` + ``kmedoids.fasterpam`` (anchor_points), scikit-learn ``KMeans`` +
NumPy sampling (stratified_confidence), scikit-learn ``PCA`` + a NumPy dual k-DPP sampler with the
same capped size and features (diversity).

    python benchmarks/bench_methods.py --quick
    python benchmarks/bench_methods.py --methods anchor_points --runs 5 --out bench_methods.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from _common import add_paper_shape_arguments, time_cold_and_warm  # benchmarks/ is on sys.path for scripts

METHODS = ("stratified_confidence", "anchor_points", "diversity")


def baseline_selection(method, sources_confidences, size, rng):
    """One selection with plain NumPy/SciPy tools (what the paper's code did)."""
    import numpy as np

    values = np.asarray(sources_confidences, np.float64)  # sources x seen
    if method == "anchor_points":
        import kmedoids

        with np.errstate(invalid="ignore", divide="ignore"):
            correlation = np.nan_to_num(np.corrcoef(values, rowvar=False))
        return kmedoids.fasterpam(1.0 - correlation, size, init="random",
                                  random_state=int(rng.integers(1 << 30))).medoids
    if method == "stratified_confidence":
        from sklearn.cluster import KMeans

        strata = KMeans(10, n_init=1, random_state=int(rng.integers(1 << 30))).fit_predict(
            values.mean(0)[:, None])
        counts = np.bincount(strata, minlength=10)
        quota = size * counts / counts.sum()
        allocation = np.floor(quota).astype(int)
        allocation[np.argsort(allocation - quota)[: size - allocation.sum()]] += 1
        return np.concatenate([rng.choice(np.flatnonzero(strata == h), a, replace=False)
                               for h, a in enumerate(allocation) if a])
    from sklearn.decomposition import PCA

    from jaxbench.selectors.diversity import DPP_CAP, REFERENCE_SIZE

    points = PCA(4).fit_transform(values.T)
    low, high = np.quantile(points, 0.01, 0), np.quantile(points, 0.99, 0)
    valid = np.flatnonzero(np.all((points >= low) & (points <= high), 1))
    points = points[valid]
    points = 0.99 * (2 * (points - points.min(0)) / (points.max(0) - points.min(0)) - 1)
    dpp_size = min(size, DPP_CAP)
    pairs = rng.integers(0, len(points), (4096, 2))
    bandwidth = np.median(np.linalg.norm(points[pairs[:, 0]] - points[pairs[:, 1]], axis=1))
    bandwidth *= min(1.0, np.sqrt(REFERENCE_SIZE / dpp_size))
    frequencies = rng.standard_normal((4, DPP_CAP)) / bandwidth
    phases = points @ frequencies
    features = np.concatenate([np.cos(phases), np.sin(phases)], 1) / np.sqrt(DPP_CAP)
    eigenvalues, vectors = np.linalg.eigh(features.T @ features)
    # Choose dpp_size eigenvectors by elementary symmetric polynomials (Kulesza & Taskar Alg. 8).
    scaled = np.clip(eigenvalues / eigenvalues[-1], 0, None)
    table = np.zeros((len(scaled) + 1, dpp_size + 1))
    table[:, 0] = 1.0
    for n in range(1, len(scaled) + 1):
        table[n, 1:] = table[n - 1, 1:] + scaled[n - 1] * table[n - 1, :-1]
    chosen, remaining = [], dpp_size
    for n in range(len(scaled), 0, -1):
        keep = scaled[n - 1] * table[n - 1, remaining - 1] / table[n, remaining] if remaining else 0
        if rng.random() < keep:
            chosen.append(n - 1)
            remaining -= 1
    basis = features @ (vectors[:, chosen] / np.sqrt(eigenvalues[chosen]))
    items = []
    for _ in range(len(chosen)):  # projection DPP, chain rule (Alg. 1)
        weights = np.clip((basis**2).sum(1), 0, None)
        item = rng.choice(len(weights), p=weights / weights.sum())
        items.append(item)
        direction = basis[item] / np.linalg.norm(basis[item])
        basis = basis - np.outer(basis @ direction, direction)  # condition on the drawn item
    rest = rng.choice(np.setdiff1d(np.arange(len(points)), items), size - len(items), replace=False)
    return valid[np.concatenate([items, rest]).astype(int)]


def worker(args) -> dict:
    """Time one method in this process; returns the JSON record."""
    import jax
    import numpy as np

    import jaxbench
    from jaxbench.engine import EngineConfig, bytes_per_run
    from jaxbench.selectors import parse_method

    matrix, _ = jaxbench.generate_synthetic(args.models, args.items, num_subtasks=args.subtasks,
                                            confidences=True, seed=0)
    sizes = [int(s) for s in args.sizes.split(",")]
    study = dict(methods=[args.worker], sizes=sizes, num_runs=args.runs, num_targets=args.targets,
                 num_sources=args.sources, num_bootstrap=args.bootstrap, seed=0, exact=False,
                 memory_limit_gb=args.memory_limit_gb)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cold, warm, result = time_cold_and_warm(jaxbench.meta_evaluate, matrix, study)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seen = result.config["seen_items"]
    config = EngineConfig(parse_method(args.worker), max(result.config["sizes"]), args.targets,
                          args.sources, args.subtasks, 201, 0.5, 1e-6)
    per_run = bytes_per_run(*matrix.shape, config)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(args.baseline_runs):
        models = rng.permutation(args.models)[args.targets : args.targets + args.sources]
        items = np.sort(rng.permutation(args.items)[:seen])
        for size in result.config["sizes"]:
            baseline_selection(args.worker, matrix.confidences[np.ix_(models, items)], size, rng)
    baseline = (time.perf_counter() - start) * args.runs / max(args.baseline_runs, 1)
    mdad = result.mdad.query("reference == 'unseen'")[["size", "mdad"]]
    return {
        "method": args.worker,
        "cold_seconds": cold, "warm_seconds": warm, "compile_seconds": cold - warm,
        "peak_rss_gb": peak_kib / 2**20, "rss_before_study_gb": before / 2**20,
        "bytes_per_run_estimate_gb": per_run / 2**30,
        "runs_per_chunk": max(1, int(args.memory_limit_gb * 2**30 // per_run)),
        "seen_items": seen,
        "numpy_baseline_seconds_selection_only": baseline,
        "baseline_runs_timed": args.baseline_runs,
        "warm_speedup_vs_baseline": baseline / warm if args.baseline_runs > 0 else None,
        "mdad_unseen": dict(zip(mdad["size"].astype(int).astype(str), mdad["mdad"])),
        "device": str(jax.devices()[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    add_paper_shape_arguments(parser)
    parser.add_argument("--memory-limit-gb", type=float, default=4.0)
    parser.add_argument("--baseline-runs", type=int, default=1)
    parser.add_argument("--out", default="bench_methods.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.models, args.items, args.sources, args.runs = 120, 2000, 60, 10
        args.sizes = "10,25,50,100,250"
        args.quick = False  # the worker gets the shape explicitly
        quick = True
    else:
        quick = False
    if args.worker:
        print(json.dumps(worker(args)))
        return
    records = []
    shared = ["--models", args.models, "--items", args.items, "--subtasks", args.subtasks,
              "--targets", args.targets, "--sources", args.sources, "--runs", args.runs,
              "--bootstrap", args.bootstrap, "--sizes", args.sizes,
              "--memory-limit-gb", args.memory_limit_gb, "--baseline-runs", args.baseline_runs]
    for method in args.methods.split(","):
        print(f"{method}: running in a subprocess", flush=True)
        command = [sys.executable, __file__, *map(str, shared), "--worker", method]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"{method} failed:\n{done.stderr[-3000:]}")
        record = json.loads(done.stdout.strip().splitlines()[-1])
        records.append(record)
        print(f"  warm {record['warm_seconds']:.1f} s, compile {record['compile_seconds']:.1f} s, "
              f"peak RSS {record['peak_rss_gb']:.2f} GB, NumPy baseline "
              f"{record['numpy_baseline_seconds_selection_only']:.1f} s", flush=True)
    import jax

    output = {
        "benchmark": "methods",
        "shape": {"models": args.models, "items": args.items, "subtasks": args.subtasks,
                  "targets": args.targets, "sources": args.sources, "runs": args.runs,
                  "sizes": args.sizes, "bootstrap": args.bootstrap,
                  "memory_limit_gb": args.memory_limit_gb, "quick": quick},
        "versions": {"python": platform.python_version(), "jax": jax.__version__},
        "machine": platform.machine(),
        "methods": records,
    }
    with open(args.out, "w") as handle:
        json.dump(output, handle, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
