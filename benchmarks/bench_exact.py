"""Benchmark: exact agreement of every model pair at every size (SPEC §6) vs a SciPy baseline.

Synthetic binary matrix from a 1-PL IRT model (abilities and difficulties ~ N(0, 1),
P(correct) = sigmoid(θ − b)). The JAX side computes all pairs at all sizes; the SciPy baseline
computes the same probabilities with `scipy.stats.hypergeom` for a random subset of pairs, and
its time is extrapolated linearly to all pairs (stated as such in the JSON).

    python benchmarks/bench_exact.py --out bench_exact.json           # paper shape
    python benchmarks/bench_exact.py --quick --out /tmp/bench.json    # a few seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy
from scipy import stats

from jaxbench import engine, planning


def synthetic_scores(models: int, items: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ability, difficulty = rng.normal(size=models), rng.normal(size=items)
    probability = 1.0 / (1.0 + np.exp(-(ability[:, None] - difficulty[None, :])))
    return (rng.random((models, items)) < probability).astype(np.float32)


def scipy_wins(n_plus: int, n_minus: int, pool: int, size: int) -> tuple[float, float]:
    """Σ_m Hypergeom(N, D, n).pmf(m) · P(X⁺ > m − X⁺ | m), and the same for X⁻."""
    disc = n_plus + n_minus
    m = np.arange(0, min(size, disc) + 1)
    weights = stats.hypergeom.pmf(m, pool, disc, size)
    greater = stats.hypergeom.sf(m // 2, disc, n_plus, m)
    less = stats.hypergeom.sf(m // 2, disc, n_minus, m)
    return float(weights @ greater), float(weights @ less)


def scipy_agreement(scores: np.ndarray, first, second, sizes) -> np.ndarray:
    pool = scores.shape[1]
    out = np.empty((len(first), len(sizes)))
    for row, (a, b) in enumerate(zip(first, second)):
        n_plus = int((scores[a] * (1 - scores[b])).sum())
        n_minus = int((scores[b] * (1 - scores[a])).sum())
        for column, size in enumerate(sizes):
            greater, less = scipy_wins(n_plus, n_minus, pool, size)
            out[row, column] = greater if n_plus >= n_minus else less
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=447)
    parser.add_argument("--items", type=int, default=6016)
    parser.add_argument("--sizes", default="10,25,50,100,250,500,1000")
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-pairs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench_exact.json"))
    parser.add_argument("--quick", action="store_true", help="60 models, 1000 items, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.models, args.items, args.repeats, args.baseline_pairs = 60, 1000, 2, 20
    sizes = [int(s) for s in args.sizes.split(",")]
    sizes = [s for s in sizes if s <= args.items]

    print(f"data: {args.models} models x {args.items} items, sizes {sizes}", flush=True)
    scores = synthetic_scores(args.models, args.items, args.seed)
    pairs = args.models * (args.models - 1) // 2
    device = jax.devices()[0]

    print("compiling ...", flush=True)
    static = dict(max_size=max(sizes), binary=True, ties="fail", chunk_size=args.chunk_size)
    start = time.perf_counter()
    lowered = engine.exact_pair_agreement.lower(
        jnp.asarray(scores), jnp.asarray(sizes, jnp.int32), **static
    )
    lowered.compile()
    compile_s = time.perf_counter() - start

    start = time.perf_counter()
    result = planning.exact_agreement_matrix(scores, sizes, chunk_size=args.chunk_size)
    result.agreement.block_until_ready()
    first_call_s = time.perf_counter() - start
    warm = []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        result = planning.exact_agreement_matrix(scores, sizes, chunk_size=args.chunk_size)
        result.agreement.block_until_ready()
        warm.append(time.perf_counter() - start)
        print(f"  warm run {repeat + 1}/{args.repeats}: {warm[-1]:.3f} s", flush=True)
    warm_median_s = statistics.median(warm)

    rng = np.random.default_rng(args.seed + 1)
    chosen = rng.choice(pairs, size=min(args.baseline_pairs, pairs), replace=False)
    first, second = np.asarray(result.first)[chosen], np.asarray(result.second)[chosen]
    print(f"SciPy baseline on {len(chosen)} of {pairs} pairs ...", flush=True)
    start = time.perf_counter()
    reference = scipy_agreement(scores, first, second, sizes)
    baseline_subset_s = time.perf_counter() - start
    baseline_all_s = baseline_subset_s / len(chosen) * pairs
    max_abs_diff = float(np.abs(np.asarray(result.agreement)[chosen] - reference).max())

    report = {
        "benchmark": "exact_agreement_matrix",
        "device": f"{device.platform}:{device.device_kind}",
        "device_count": jax.device_count(),
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "config": {
            "models": args.models,
            "items": args.items,
            "pairs": pairs,
            "sizes": sizes,
            "chunk_size": args.chunk_size,
            "dtype": str(result.agreement.dtype),
            "seed": args.seed,
        },
        "jax": {
            "compile_s": compile_s,
            "first_call_s": first_call_s,
            "warm_s": warm,
            "warm_median_s": warm_median_s,
            "pairs_per_s": pairs / warm_median_s,
        },
        "baseline": {
            "method": "scipy.stats.hypergeom pmf/sf per pair and size, Python loop over pairs",
            "pairs_timed": len(chosen),
            "timed_s": baseline_subset_s,
            "extrapolated_all_pairs_s": baseline_all_s,
            "extrapolated": True,
        },
        "speedup_vs_baseline": baseline_all_s / warm_median_s,
        "max_abs_diff_vs_baseline": max_abs_diff,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(
        f"JAX: compile {compile_s:.2f} s, warm median {warm_median_s:.3f} s for {pairs} pairs x "
        f"{len(sizes)} sizes; SciPy (extrapolated) {baseline_all_s:.1f} s; "
        f"speedup {report['speedup_vs_baseline']:.0f}x; max |diff| {max_abs_diff:.2e}"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
