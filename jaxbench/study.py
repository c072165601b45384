"""A meta-evaluation study: validated config -> engine -> tidy tables, and saving them.

`meta_evaluate` is the main entry of the Python API. It applies the missing-data policy, builds
the device inputs once, runs the engine for every (method, size) cell, summarises the curves
with bootstrap intervals and MDADs, and returns a `StudyResult` of pandas DataFrames.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from . import __version__
from .agreement import DEFAULT_RESOLUTION, DEFAULT_TIE_TOLERANCE, BinCounts, num_bins_for
from .data import ResponseMatrix, apply_missing_policy
from .data.formats import atomic_write
from .engine import (
    REFERENCES,
    EngineConfig,
    EngineData,
    bytes_per_run,
    evaluate,
    evaluate_exact_runs,
    summarize_curves,
)
from .protocol import make_layout
from .selectors import MethodSpec, parse_method

DEFAULT_SIZES = (10, 25, 50, 100, 250, 500, 1000)
DEFAULT_METHODS = ("random", "stratified_subtask")
TIES = {"fail": 0.0, "half": 0.5}
CIS = ("runs", "pairs", "none")
TABLES = ("agreement", "mdad", "estimation")
EXACT_LABEL = "random/exact"

# progress(event, amount, description): "total" announces the number of run-cells, "advance"
# reports finished ones.
Progress = Callable[[str, int, str], None]


@dataclasses.dataclass
class StudyResult:
    """The outcome of `meta_evaluate`.

    Attributes:
        agreement: one row per (method, size, reference, bin) with pairs, agreement and its
            bootstrap interval; ``bin`` is the lower edge of the |Δ| bin in accuracy points.
        mdad: one row per (method, size, reference): ``mdad`` (null if not reached), its
            interval ``mdad_ci_lower``/``mdad_ci_upper``, ``reached``, ``mdad_monotone``.
        estimation: one row per (method, size, run, reference): ``estimation_error`` (mean
            |ŝ − s| over targets, points) and ``kendall_tau`` (τ-b of estimates vs reference).
        config: the settings used (JSON-able).
        notes: what was skipped, dropped or approximated, in words.
        timings: seconds per method and in total.
    """

    agreement: pd.DataFrame
    mdad: pd.DataFrame
    estimation: pd.DataFrame
    config: dict[str, Any]
    notes: list[str]
    timings: dict[str, float]

    def save(self, directory: str | Path) -> Path:
        """Write ``agreement``, ``mdad``, ``estimation`` (CSV and Parquet) and ``run.json``.

        Every file is written atomically (temporary file, then rename).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            table = getattr(self, name)
            atomic_write(directory / f"{name}.csv", lambda p, t=table: t.to_csv(p, index=False))
            atomic_write(
                directory / f"{name}.parquet", lambda p, t=table: t.to_parquet(p, index=False)
            )
        atomic_write(directory / "run.json", lambda p: p.write_text(json.dumps(self.run_record(), indent=2)))
        return directory

    def run_record(self) -> dict[str, Any]:
        """What ``run.json`` holds: config, notes, timings, versions and devices."""
        return {
            "jaxbench": __version__,
            "config": self.config,
            "notes": self.notes,
            "timings_seconds": self.timings,
            "versions": {
                "python": platform.python_version(),
                "jax": jax.__version__,
                "numpy": np.__version__,
                "pandas": pd.__version__,
            },
            "devices": [str(d) for d in jax.devices()],
        }


def meta_evaluate(
    matrix: ResponseMatrix,
    *,
    methods: Sequence[str | MethodSpec] = DEFAULT_METHODS,
    sizes: Sequence[int] = DEFAULT_SIZES,
    num_runs: int = 50,
    num_targets: int = 50,
    num_sources: int | None = None,
    targets: Sequence[str] | None = None,
    seed: int = 0,
    threshold: float = 0.8,
    ties: str = "fail",
    ci: str = "runs",
    num_bootstrap: int = 1000,
    resolution: float = DEFAULT_RESOLUTION,
    missing: str = "drop_items",
    memory_limit_gb: float = 4.0,
    chunk_size: int | None = None,
    exact: bool | None = None,
    progress: Progress | None = None,
) -> StudyResult:
    """Meta-evaluate micro-benchmark selection methods on a response matrix (SPEC §2, §5).

    Args:
        matrix: the `ResponseMatrix`.
        methods: method names, e.g. ``"random"``, ``"stratified_subtask(allocation=proportional)"``.
        sizes: micro-benchmark sizes k; sizes larger than the seen half are skipped with a note.
        num_runs: resampled runs (each with its own split and selections).
        num_targets: target models per run (ignored when ``targets`` is given).
        num_sources: cap on source models per run (default: all models that are not targets).
        targets: a fixed cohort of target model names (sources are still drawn per run).
        seed: the single seed every random draw derives from.
        threshold: agreement τ that defines the MDAD.
        ties: ``"fail"`` (paper: a tied estimate is wrong) or ``"half"`` (it scores ½).
        ci: bootstrap over ``"runs"`` (default; pairs in a run are correlated), ``"pairs"``
            (paper) or ``"none"``.
        num_bootstrap: bootstrap replicates.
        resolution: |Δ| bin width in accuracy points.
        missing: missing-data policy (``drop_items``, ``drop_models``, ``mask``, ``error``).
        memory_limit_gb: device memory budget that sets how many runs go in one chunk.
        chunk_size: runs per engine call (overrides the memory budget).
        exact: add ``random/exact`` rows: the closed-form agreement of uniform sampling
            (SPEC §6) averaged over the same runs' splits, beside the Monte Carlo ``random``
            rows. Default (None): when ``random`` is studied on binary data without missing
            cells. True insists (error if impossible); False never.
        progress: optional callback ``progress(event, amount, description)``.

    Returns:
        A `StudyResult`.

    >>> import jaxbench
    >>> matrix, _ = jaxbench.generate_synthetic(30, 400, seed=0)
    >>> result = jaxbench.meta_evaluate(matrix, sizes=[10, 50], num_runs=4, num_targets=10,
    ...                                 num_bootstrap=100)
    >>> sorted(result.mdad.columns)[:3]
    ['ci', 'method', 'mdad']
    """
    if not isinstance(matrix, ResponseMatrix):
        raise TypeError(f"matrix must be a ResponseMatrix (see jaxbench.load); got {type(matrix).__name__}")
    specs = _parse_methods(methods)
    _check_choice("ties", ties, tuple(TIES))
    _check_choice("ci", ci, CIS)
    num_runs = _check_int("num_runs", num_runs, 1)
    num_bootstrap = _check_int("num_bootstrap", num_bootstrap, 1)
    seed = _check_int("seed", seed, 0)
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in (0, 1]; got {threshold}")
    if not 0.0 < float(resolution) <= 100.0:
        raise ValueError(f"resolution must be in (0, 100] points; got {resolution}")
    notes: list[str] = []
    matrix, report = apply_missing_policy(matrix, missing)
    if report.dropped_items or report.dropped_models:
        notes.append(
            f"missing={missing}: dropped {report.dropped_items} item(s) and "
            f"{len(report.dropped_models)} model(s) {list(report.dropped_models)}"
        )
    if report.masked_cells:
        notes.append(f"missing=mask: {report.masked_cells} missing cell(s) masked")
    if not matrix.is_binary:
        notes.append("scores are graded (not 0/1): estimates are weighted means of the scores")
    for spec in specs:
        if spec.info.uses_confidences and matrix.confidences is None:
            notes.append(f"{spec.label}: no confidences in the data; used correctness")
        if spec.info.binary_only and not matrix.is_binary:
            notes.append(f"{spec.label}: graded scores thresholded at 0.5 for IRT")
    cohort, others, num_targets = _targets(matrix, targets, num_targets)
    available = matrix.num_models - num_targets
    num_sources = available if num_sources is None else _check_int("num_sources", num_sources, 0)
    num_sources = min(num_sources, available)
    layout = make_layout(matrix.subtask_codes)
    num_seen = int(layout.seen_positions.shape[0])
    sizes = _check_sizes(sizes, num_seen, notes)
    scores = np.nan_to_num(matrix.scores, nan=0.0)
    if matrix.confidences is None:
        confidences = scores
    else:
        confidences = np.where(np.isnan(matrix.confidences), scores, matrix.confidences)
    data = EngineData(
        jnp.asarray(scores), jnp.asarray(matrix.observed), jnp.asarray(confidences), layout,
        None if cohort is None else jnp.asarray(cohort), None if others is None else jnp.asarray(others),
    )
    root = jax.random.key(seed)
    run_root, bootstrap_root = jax.random.split(root)
    keys = jax.random.split(run_root, num_runs)
    num_bins = num_bins_for(resolution)
    use_exact = _exact_applicable(exact, specs, matrix, report)
    if progress is not None:
        progress("total", (len(specs) + use_exact) * num_runs, "")
    tables: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for spec in specs:
        config = EngineConfig(
            spec, max(sizes), num_targets, num_sources, int(matrix.subtask_codes.max()) + 1,
            num_bins, float(resolution), DEFAULT_TIE_TOLERANCE,
        )
        chunk = chunk_size or max(1, int(memory_limit_gb * 2**30 // bytes_per_run(*matrix.shape, config)))
        method_started = time.perf_counter()
        summary = evaluate(
            keys, data, np.asarray(sizes, np.int32), config, chunk_size=chunk,
            on_chunk=lambda done, label=spec.label: progress and progress("advance", done, label),
        )
        for index, size in enumerate(sizes):
            boot_key = jax.random.fold_in(bootstrap_root, zlib.crc32(spec.label.encode()) & 0x7FFFFFFF)
            boot_key = jax.random.fold_in(boot_key, size)
            per_size = jax.tree.map(lambda x, i=index: x[:, i], summary)
            for name, frame in _tables(spec, size, per_size, boot_key, threshold, ties, ci,
                                       num_bootstrap, resolution).items():
                tables[name].append(frame)
        timings[spec.label] = time.perf_counter() - method_started
    if use_exact:
        exact_started = time.perf_counter()
        config = EngineConfig(parse_method("random"), max(sizes), num_targets, num_sources,
                              int(matrix.subtask_codes.max()) + 1, num_bins, float(resolution),
                              DEFAULT_TIE_TOLERANCE)
        counts = evaluate(
            keys, data, np.asarray(sizes, np.int32), config, chunk_size=chunk_size or 64,
            entry=evaluate_exact_runs,
            on_chunk=lambda done: progress and progress("advance", done, EXACT_LABEL),
        )
        boot_root = jax.random.fold_in(bootstrap_root, zlib.crc32(EXACT_LABEL.encode()) & 0x7FFFFFFF)
        for index, size in enumerate(sizes):
            per_size = BinCounts(*(c[:, index] for c in counts))
            for name, frame in _curve_tables([EXACT_LABEL], size, per_size,
                                             jax.random.fold_in(boot_root, size), threshold, ties,
                                             ci, num_bootstrap, resolution).items():
                tables[name].append(frame)
        notes.append(f"{EXACT_LABEL}: exact agreement of uniform sampling (no Monte Carlo), "
                     "averaged over the same runs' splits and targets")
        timings[EXACT_LABEL] = time.perf_counter() - exact_started
    timings["total"] = time.perf_counter() - started
    config_record = {
        "data": {**matrix.describe(), "meta": matrix.meta},
        "methods": [spec.label for spec in specs],
        "sizes": list(sizes),
        "num_runs": num_runs,
        "num_targets": num_targets,
        "targets": None if cohort is None else [str(m) for m in matrix.models[cohort]],
        "num_sources": num_sources,
        "seed": seed,
        "threshold": float(threshold),
        "ties": ties,
        "ci": ci,
        "num_bootstrap": num_bootstrap,
        "resolution": float(resolution),
        "missing": report.as_dict(),
        "exact": use_exact,
        "seen_items": num_seen,
        "unseen_items": matrix.num_items - num_seen,
    }
    return StudyResult(
        **{name: pd.concat(frames, ignore_index=True) for name, frames in tables.items()},
        config=config_record, notes=notes, timings=timings,
    )


def _curve_tables(labels, size, counts, key, threshold, ties, ci, num_bootstrap, resolution):
    """Agreement and MDAD rows for curves given as counts[runs, labels x references, bins]."""
    keys = jax.random.split(key, counts.pairs.shape[1])
    curves = summarize_curves(keys, counts, jnp.float32(threshold), tie_value=TIES[ties],
                              num_bootstrap=num_bootstrap, ci=ci)
    curves = jax.tree.map(np.asarray, curves)
    pairs = counts.pairs.sum(0)
    agreement_rows, mdad_rows = [], []
    for curve_index in range(pairs.shape[0]):
        label, reference = labels[curve_index // 2], REFERENCES[curve_index % 2]
        present = np.flatnonzero(pairs[curve_index] > 0)
        agreement_rows.append(pd.DataFrame({
            "method": label, "size": size, "reference": reference,
            "bin": present * resolution, "bin_upper": (present + 1) * resolution,
            "pairs": pairs[curve_index, present],
            "agreement": curves.agreement[curve_index, present],
            "ci_lower": curves.interval.lower[curve_index, present],
            "ci_upper": curves.interval.upper[curve_index, present],
        }))
        mdad = jax.tree.map(lambda x, i=curve_index: int(x[i]), curves.mdad)

        def edge(index):
            return None if index < 0 else index * resolution

        mdad_rows.append({
            "method": label, "size": size, "reference": reference, "threshold": float(threshold),
            "mdad": edge(mdad.index), "mdad_ci_lower": edge(mdad.low),
            "mdad_ci_upper": edge(mdad.high), "reached": mdad.index >= 0,
            "mdad_monotone": edge(mdad.monotone), "ties": ties, "ci": ci,
        })
    mdad_frame = pd.DataFrame(mdad_rows).astype({"mdad": float, "mdad_ci_lower": float,
                                                 "mdad_ci_upper": float, "mdad_monotone": float})
    return {"agreement": pd.concat(agreement_rows, ignore_index=True), "mdad": mdad_frame}


def _tables(spec, size, summary, key, threshold, ties, ci, num_bootstrap, resolution):
    labels = spec.row_labels()
    num_estimators = len(labels)
    counts = BinCounts(*(c.reshape(c.shape[0], num_estimators * 2, -1) for c in summary.counts))
    tables = _curve_tables(labels, size, counts, key, threshold, ties, ci, num_bootstrap, resolution)
    runs = summary.error.shape[0]
    tables["estimation"] = pd.DataFrame({
        "method": np.repeat(labels, runs * 2),
        "size": size,
        "run": np.tile(np.repeat(np.arange(runs), 2), num_estimators),
        "reference": np.tile(REFERENCES, runs * num_estimators),
        "estimation_error": summary.error.transpose(1, 0, 2).reshape(-1),
        "kendall_tau": summary.kendall.transpose(1, 0, 2).reshape(-1),
    })
    return tables


def _exact_applicable(exact, specs, matrix, report) -> bool:
    reasons = []
    if "random" not in [spec.label for spec in specs]:
        reasons.append("'random' is not among the methods")
    if not matrix.is_binary:
        reasons.append("scores are not 0/1")
    if report.masked_cells:
        reasons.append("cells are masked (missing='mask')")
    if exact and reasons:
        raise ValueError(f"exact=True is impossible: {'; '.join(reasons)}")
    return not reasons if exact is None else bool(exact)


def _parse_methods(methods: Sequence[str | MethodSpec]) -> list[MethodSpec]:
    if isinstance(methods, (str, MethodSpec)):
        methods = [methods]
    specs = [parse_method(m) for m in methods]
    if not specs:
        raise ValueError("methods must name at least one method")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"methods are repeated: {labels}")
    return specs


def _targets(matrix: ResponseMatrix, targets, num_targets):
    if targets is not None:
        cohort = matrix.model_indices(targets)
        if len(set(cohort.tolist())) != len(cohort):
            raise ValueError("targets must not repeat a model")
        if len(cohort) < 2:
            raise ValueError(f"targets must name at least 2 models; got {len(cohort)}")
        others = np.setdiff1d(np.arange(matrix.num_models), cohort).astype(np.int32)
        return cohort.astype(np.int32), others, len(cohort)
    num_targets = _check_int("num_targets", num_targets, 2)
    if num_targets > matrix.num_models:
        raise ValueError(
            f"num_targets={num_targets} exceeds the {matrix.num_models} models in the data"
        )
    return None, None, num_targets


def _check_sizes(sizes: Sequence[int], num_seen: int, notes: list[str]) -> tuple[int, ...]:
    if isinstance(sizes, (int, np.integer)):
        sizes = [sizes]
    checked = sorted({_check_int("size", s, 1) for s in sizes})
    skipped = [s for s in checked if s > num_seen]
    if skipped:
        notes.append(f"sizes {skipped} skipped: larger than the seen half ({num_seen} items)")
    kept = tuple(s for s in checked if s <= num_seen)
    if not kept:
        raise ValueError(f"every size exceeds the seen half ({num_seen} items); choose smaller sizes")
    return kept


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}")
    return int(value)


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
