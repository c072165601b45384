"""Shared pieces of the benchmark scripts: the paper-shaped study arguments."""

from __future__ import annotations

import argparse
import time

SIZES = (10, 25, 50, 100, 250, 500, 1000)


def add_paper_shape_arguments(parser: argparse.ArgumentParser) -> None:
    """The paper's meta-evaluation shape (447 x 12,032, 14 subtasks, 50 targets, 300 sources,
    50 runs, 7 sizes, B = 1000), each overridable, plus ``--quick``."""
    parser.add_argument("--models", type=int, default=447)
    parser.add_argument("--items", type=int, default=12032)
    parser.add_argument("--subtasks", type=int, default=14)
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--sources", type=int, default=300)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--quick", action="store_true", help="small shape for a smoke test")


def time_cold_and_warm(study, matrix, settings: dict):
    """Run ``study(matrix, **settings)`` twice: (cold seconds incl. compile, warm seconds, result)."""
    start = time.perf_counter()
    study(matrix, **settings)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    result = study(matrix, **settings)
    return cold, time.perf_counter() - start, result
