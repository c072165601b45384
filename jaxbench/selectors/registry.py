"""Method names, their options and how to call them: the one place that knows every method.

A method is written ``name`` or ``name(option=value, ...)``, e.g.
``stratified_subtask(allocation=proportional, weighting=design)``. `parse_method` turns that into
a hashable `MethodSpec` (a static jit argument); `MethodSpec.label` is the canonical name used in
output tables (options equal to their defaults are left out).
"""

from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple

import jax

from .base import MethodInfo, Selection, SourceView, TargetView, estimate_weighted_mean
from .random import select_random
from .stratified_subtask import ALLOCATIONS, WEIGHTINGS, select_stratified_subtask


def _plain(select: Callable[..., Selection]) -> Callable[..., tuple[Selection, Any]]:
    def wrapped(key, sources, size, prepared, *, max_size, num_subtasks, **options):
        return select(key, sources, size, max_size=max_size, **options), None

    return wrapped


def _mean_estimate(selection: Selection, aux: Any, targets: TargetView, prepared: Any = None,
                   **_: Any) -> jax.Array:
    return estimate_weighted_mean(selection, targets)[None, :]


def _stratified(key, sources, size, prepared, *, max_size, num_subtasks, allocation, weighting):
    selection = select_stratified_subtask(
        key, sources, size, max_size=max_size, num_subtasks=num_subtasks,
        allocation=allocation, weighting=weighting,
    )
    return selection, None


METHODS: dict[str, MethodInfo] = {
    "random": MethodInfo(
        select=_plain(select_random),
        estimators=("mean",),
        estimate=_mean_estimate,
        options={},
        summary="k distinct seen items uniformly at random; estimate = mean",
    ),
    "stratified_subtask": MethodInfo(
        select=_stratified,
        estimators=("mean",),
        estimate=_mean_estimate,
        options={"allocation": (ALLOCATIONS, "equal"), "weighting": (WEIGHTINGS, "unweighted")},
        summary="uniform within subtasks; equal (paper) or proportional allocation",
    ),
}


class MethodSpec(NamedTuple):
    """A method name with its options, hashable so it can be a static jit argument."""

    name: str
    options: tuple[tuple[str, str], ...] = ()

    @property
    def info(self) -> MethodInfo:
        return METHODS[self.name]

    @property
    def label(self) -> str:
        """Canonical name: options that differ from their defaults, in sorted order."""
        defaults = {k: default for k, (_, default) in self.info.options.items()}
        shown = [f"{k}={v}" for k, v in self.options if defaults.get(k) != v]
        return f"{self.name}({', '.join(shown)})" if shown else self.name

    def row_labels(self) -> list[str]:
        """One label per estimator: the method label, with ``/estimator`` when there are several."""
        estimators = self.info.estimators
        if len(estimators) == 1:
            return [self.label]
        return [f"{self.label}/{e}" for e in estimators]

    def prepare(self, key, sources: SourceView, *, max_size: int, num_subtasks: int):
        return self.info.prepare(key, sources, max_size=max_size, num_subtasks=num_subtasks,
                                 **dict(self.options))

    def select(self, key, sources: SourceView, size, prepared, *, max_size: int, num_subtasks: int):
        return self.info.select(key, sources, size, prepared, max_size=max_size,
                                num_subtasks=num_subtasks, **dict(self.options))

    def estimate(self, selection: Selection, aux: Any, targets: TargetView, prepared: Any) -> jax.Array:
        return self.info.estimate(selection, aux, targets, prepared, **dict(self.options))


_SPEC = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(?:\((.*)\))?\s*$")


def parse_method(text: str | MethodSpec) -> MethodSpec:
    """Parse ``name`` or ``name(option=value, ...)`` into a `MethodSpec`, filling in defaults.

    >>> parse_method("stratified_subtask(allocation=proportional)").label
    'stratified_subtask(allocation=proportional)'
    """
    if isinstance(text, MethodSpec):
        return text
    if not isinstance(text, str):
        raise TypeError(f"a method must be a string such as 'random'; got {type(text).__name__}")
    match = _SPEC.match(text)
    if not match or match.group(1) not in METHODS:
        raise ValueError(f"unknown method {text!r}; available: {', '.join(METHODS)}")
    name, body = match.group(1), match.group(2)
    allowed = METHODS[name].options
    options = {k: default for k, (_, default) in allowed.items()}
    for part in filter(None, (p.strip() for p in (body or "").split(","))):
        key, _, value = (s.strip() for s in part.partition("="))
        if key not in allowed:
            raise ValueError(
                f"method {name} has no option {key!r}; options: {', '.join(allowed) or 'none'}"
            )
        if value not in allowed[key][0]:
            raise ValueError(
                f"{name}: {key} must be one of {', '.join(allowed[key][0])}; got {value!r}"
            )
        options[key] = value
    return MethodSpec(name, tuple(sorted(options.items())))


def split_method_list(text: str) -> list[str]:
    """Split a comma-separated method list, keeping commas inside parentheses.

    >>> split_method_list("random,stratified_subtask(allocation=equal, weighting=design)")
    ['random', 'stratified_subtask(allocation=equal, weighting=design)']
    """
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


# Methods defined in their own files register here, one line each.
from .tinybenchmarks import TINYBENCHMARKS  # noqa: E402

METHODS["tinybenchmarks"] = TINYBENCHMARKS
from .anchor_points import ANCHOR_POINTS  # noqa: E402
from .diversity import DIVERSITY  # noqa: E402
from .stratified_confidence import STRATIFIED_CONFIDENCE  # noqa: E402

METHODS["stratified_confidence"] = STRATIFIED_CONFIDENCE
METHODS["anchor_points"] = ANCHOR_POINTS
METHODS["diversity"] = DIVERSITY

__all__ = ["METHODS", "MethodInfo", "MethodSpec", "parse_method", "split_method_list"]
