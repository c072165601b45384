"""A plain NumPy implementation of SPEC §2/§5, written independently of the JAX kernels.

Given per-run target/item indices and selections (drawn by the engine, which the tests check
separately for validity), it recomputes estimates, references, pair agreement, curves, MDAD,
estimation error and Kendall τ in float64 with explicit loops.
"""

from __future__ import annotations

import math

import numpy as np


def weighted_estimates(scores, observed, targets, seen, items, weights):
    """Estimates of each target: Σ w·y / Σ w over observed selected items (float64)."""
    out = np.empty(len(targets))
    for t, model in enumerate(targets):
        columns = seen[items]
        w = weights.astype(np.float64) * observed[model, columns]
        out[t] = np.sum(w * scores[model, columns]) / np.sum(w)
    return out


def reference_means(scores, observed, targets, columns):
    return np.array([scores[m, columns][observed[m, columns]].mean() for m in targets], dtype=np.float64)


def pair_rows(estimates, reference, resolution=0.5, num_bins=201, tie_tolerance=1e-6):
    """(bin, agree, tied) for every pair a < b, with the paper's conventions."""
    rows = []
    n = len(estimates)
    for a in range(n):
        for b in range(a + 1, n):
            delta = reference[a] - reference[b]
            delta_hat = estimates[a] - estimates[b]
            tied = abs(delta_hat) <= tie_tolerance
            positive = delta >= 0  # Δ = 0 counts as Δ > 0
            agree = (not tied) and ((delta_hat > 0) == positive)
            bin_index = min(int(math.floor(abs(delta) * 100 / resolution + 1e-9)), num_bins - 1)
            rows.append((bin_index, agree, tied))
    return rows


def curve(rows_by_run, tie_value=0.0, num_bins=201):
    """Pooled agreement per bin: (pairs[bins], agreement[bins] with NaN for empty)."""
    pairs = np.zeros(num_bins)
    score = np.zeros(num_bins)
    for rows in rows_by_run:
        for bin_index, agree, tied in rows:
            pairs[bin_index] += 1
            score[bin_index] += 1.0 if agree else (tie_value if tied else 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        agreement = np.where(pairs > 0, score / pairs, np.nan)
    return pairs, agreement


def mdad_rules(agreement, lower, upper, threshold):
    """SPEC §5 MDAD rules by explicit scanning; bin indices, None where not reached."""
    present = [i for i in range(len(agreement)) if not np.isnan(agreement[i])]

    def first(values):
        for i in present:
            if values[i] >= threshold:
                return i
        return None

    monotone = None
    for i in present:
        if all(agreement[j] >= threshold for j in present if j >= i):
            monotone = i
            break
    return first(agreement), first(upper), first(lower), monotone


def estimation_error(estimates, reference):
    return float(np.mean(np.abs(estimates - reference)) * 100)
