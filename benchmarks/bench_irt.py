"""Benchmark: vmapped MAP fits of the multidimensional 2PL model (jaxbench.irt.fit_irt).

Fits R runs (default 50) of a models x items response matrix (default 300 x 6,016, D = 10,
the tinyBenchmarks setting on MMLU-Pro-sized data), vmapped over runs and chunked. Reports the
compile time apart from the warm median, the time per run-equivalent, steps and final loss,
and compares with one run fitted in the same process by a plain NumPy implementation of the
same objective and the same Adam/early-stopping rule (optionally SciPy L-BFGS-B as a second
reference). py-irt (what tinyBenchmarks used) is timed only when it is importable.

    python benchmarks/bench_irt.py --quick            # small, a minute on 2 CPU cores
    python benchmarks/bench_irt.py --out irt.json     # full size
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench import irt


def simulate(runs, models, items, true_dims, seed):
    """Per-run response matrices float32[runs, models, items] from one fixed item bank."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 0.8, size=(items, true_dims))
    b = rng.normal(0.0, 0.6, size=items)
    responses = np.empty((runs, models, items), np.float32)
    for run in range(runs):
        theta = rng.normal(size=(models, true_dims))
        probability = 1.0 / (1.0 + np.exp(-(theta @ a.T - true_dims * b)))
        responses[run] = rng.uniform(size=probability.shape) < probability
    return responses


def numpy_objective(params, responses, weights, prior_scale):
    """Mean negative log posterior per observed cell and gradient (same guard as jaxbench)."""
    theta, a, b = params
    dims = theta.shape[1]
    count = max(weights.sum(), 1.0)
    bound = np.max(np.abs(theta).max(0) * np.abs(a).max(0)) + np.abs(b).max()
    if bound < irt.LOGIT_CLIP:
        logits = theta @ a.T - dims * b
        inside = None
    else:
        terms = a[None] * theta[:, None] - b[None, :, None]
        inside = np.abs(terms) < irt.LOGIT_CLIP
        logits = np.clip(terms, -irt.LOGIT_CLIP, irt.LOGIT_CLIP).sum(-1)
    log_lik = -responses * np.logaddexp(0, -logits) - (1 - responses) * np.logaddexp(0, logits)
    value = -(weights * log_lik).sum() + 0.5 * (theta**2).sum()
    value += 0.5 * ((a**2).sum() + (b**2).sum()) / prior_scale**2
    residual = weights * (0.5 * (1.0 + np.tanh(0.5 * logits)) - responses)  # sigmoid, no overflow
    if inside is None:
        grads = (residual @ a, residual.T @ theta, -dims * residual.sum(0))
    else:
        masked = residual[:, :, None] * inside
        grads = ((masked * a[None]).sum(1), (masked * theta[:, None]).sum(0), -masked.sum((0, 2)))
    grads = (grads[0] + theta, grads[1] + a / prior_scale**2, grads[2] + b / prior_scale**2)
    return value / count, [g / count for g in grads]


def numpy_adam_fit(init, responses, weights, *, max_steps, learning_rate, tolerance, patience,
                   prior_scale):
    """The jaxbench loop in NumPy: Adam, stop after `patience` small relative changes."""
    params = [np.array(p) for p in init]
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    previous, calm, step = np.inf, 0, 0
    while step < max_steps and calm < patience:
        loss, grads = numpy_objective(params, responses, weights, prior_scale)
        step += 1
        for i, g in enumerate(grads):
            first[i] = 0.9 * first[i] + 0.1 * g
            second[i] = 0.999 * second[i] + 0.001 * g * g
            denominator = np.sqrt(second[i] / (1 - 0.999**step)) + 1e-8
            params[i] = params[i] - learning_rate * first[i] / (1 - 0.9**step) / denominator
        calm = calm + 1 if step > 1 and abs(loss - previous) < tolerance * abs(previous) else 0
        previous = loss
    return float(numpy_objective(params, responses, weights, prior_scale)[0]), step


def scipy_lbfgs_fit(init, responses, weights, prior_scale):
    from scipy.optimize import minimize

    shapes = [p.shape for p in init]
    splits = np.cumsum([p.size for p in init])[:-1]
    as64 = responses.astype(np.float64), weights.astype(np.float64)

    def objective(x):
        params = [p.reshape(s) for p, s in zip(np.split(x, splits), shapes)]
        value, grads = numpy_objective(params, *as64, prior_scale)
        return value, np.concatenate([g.ravel() for g in grads])

    start = np.concatenate([np.asarray(p, np.float64).ravel() for p in init])
    result = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    return float(result.fun), int(result.nit)


def py_irt_fit(responses, dims, epochs):
    """Seconds for one py-irt multidim_2pl SVI fit (tinyBenchmarks' tool), or None if absent."""
    try:
        from py_irt.config import IrtConfig
        from py_irt.dataset import Dataset
        from py_irt.training import IrtModelTrainer
    except ImportError:
        print("py-irt is not installed: skipping the optional py-irt comparison")
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "responses.jsonlines"
        with path.open("w") as handle:
            for model, row in enumerate(responses):
                answers = {f"item{j}": int(v) for j, v in enumerate(row)}
                line = {"subject_id": f"model{model}", "responses": answers}
                handle.write(json.dumps(line) + "\n")
        config = IrtConfig(model_type="multidim_2pl", epochs=epochs, lr=0.1, dims=dims)
        trainer = IrtModelTrainer(config=config, data_path=None,
                                  dataset=Dataset.from_jsonlines(path))
        start = time.perf_counter()
        trainer.train(device="cpu")
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--models", type=int, default=300)
    parser.add_argument("--items", type=int, default=6016)
    parser.add_argument("--dims", type=int, default=10)
    parser.add_argument("--true-dims", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=10, help="runs per vmapped call")
    parser.add_argument("--repeats", type=int, default=1, help="warm repetitions")
    parser.add_argument("--missing", type=float, default=0.0, help="fraction of masked cells")
    parser.add_argument("--with-scipy", action="store_true",
                        help="also time SciPy L-BFGS-B on run 0 (slow: minutes at full size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="4 runs of 150 x 1500, chunk 4")
    parser.add_argument("--out", type=Path, default=Path("bench_irt.json"))
    args = parser.parse_args()
    if args.quick:
        args.runs, args.models, args.items, args.chunk = 4, 150, 1500, 4
    chunk = min(args.chunk, args.runs)
    if args.runs % chunk:
        parser.error(f"--runs ({args.runs}) must be a multiple of --chunk ({chunk})")

    print(f"simulating {args.runs} runs of {args.models} models x {args.items} items")
    responses = simulate(args.runs, args.models, args.items, args.true_dims, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    observed = (rng.uniform(size=responses.shape) >= args.missing).astype(np.float32)
    keys = jax.random.split(jax.random.key(args.seed), args.runs)
    settings = dict(max_steps=args.max_steps, learning_rate=0.1, tolerance=1e-6, patience=5,
                    prior_scale=1.0)
    fit = jax.jit(jax.vmap(functools.partial(irt.fit_irt, dimensions=args.dims, **settings)))
    start = time.perf_counter()
    compiled = fit.lower(keys[:chunk], responses[:chunk], observed[:chunk]).compile()
    compile_s = time.perf_counter() - start
    print(f"compile: {compile_s:.2f} s")

    def fit_all():
        fits = []
        for i in range(0, args.runs, chunk):
            fits.append(jax.block_until_ready(
                compiled(keys[i:i + chunk], responses[i:i + chunk], observed[i:i + chunk])))
            print(f"  fitted runs {i + 1}-{min(i + chunk, args.runs)} of {args.runs}", flush=True)
        return jax.tree.map(lambda *x: jnp.concatenate(x), *fits)

    warm = []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        result = fit_all()
        warm.append(time.perf_counter() - start)
        print(f"warm repeat {repeat}: {warm[-1]:.2f} s ({warm[-1] / args.runs:.3f} s per run)")
    steps = np.asarray(result.steps)
    clip_reached = int(sum(
        not bool(irt._clip_inactive(jax.tree.map(lambda x, r=r: x[r], result.params)))
        for r in range(args.runs)
    ))
    per_run = statistics.median(warm) / args.runs
    print(f"steps: mean {steps.mean():.0f} (min {steps.min()}, max {steps.max()}); "
          f"loss mean {float(np.mean(result.loss)):.5f}; runs reaching the clip: {clip_reached}")

    print("baseline: NumPy Adam on run 0 (same objective, start and stopping rule)")
    init = irt.fit_irt(keys[0], responses[0], observed[0], dimensions=args.dims,
                       **{**settings, "max_steps": 0}).params
    init = [np.asarray(p, np.float32) for p in init]
    start = time.perf_counter()
    numpy_loss, numpy_steps = numpy_adam_fit(init, responses[0], observed[0], **settings)
    numpy_s = time.perf_counter() - start
    print(f"  NumPy: {numpy_s:.2f} s, {numpy_steps} steps, loss {numpy_loss:.5f} (jaxbench run 0: "
          f"{steps[0]} steps, loss {float(result.loss[0]):.5f}); jaxbench per run "
          f"{per_run:.3f} s -> speed-up x{numpy_s / per_run:.1f}")
    scipy = None
    if args.with_scipy:
        start = time.perf_counter()
        scipy_loss, scipy_iterations = scipy_lbfgs_fit(init, responses[0], observed[0], 1.0)
        scipy = {"seconds": time.perf_counter() - start, "loss": scipy_loss,
                 "iterations": scipy_iterations}
        print(f"  SciPy L-BFGS-B (float64): {scipy['seconds']:.2f} s, {scipy_iterations} "
              f"iterations, loss {scipy_loss:.5f}")
    py_irt_s = py_irt_fit(responses[0], args.dims, args.max_steps)

    report = {
        "benchmark": "irt_fit",
        "device": str(jax.devices()[0]), "platform": platform.platform(),
        "versions": {name: importlib.metadata.version(name) for name in ("jax", "optax", "numpy")},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "compile_s": compile_s, "warm_s": warm, "warm_median_s": statistics.median(warm),
        "per_run_s": per_run, "steps": steps.tolist(), "loss": np.asarray(result.loss).tolist(),
        "runs_reaching_clip": clip_reached,
        "baseline_numpy_adam": {"seconds": numpy_s, "steps": numpy_steps, "loss": numpy_loss},
        "speedup_vs_numpy_per_run": numpy_s / per_run,
        "baseline_scipy_lbfgsb": scipy,
        "py_irt_seconds": py_irt_s,
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
