"""Selection methods (SPEC §3): one method per file, each a pure function of arrays."""

from .base import Selection, SourceView, TargetView, estimate_weighted_mean
from .random import select_random
from .registry import METHODS, MethodSpec, parse_method, split_method_list
from .stratified_subtask import allocate_equal, allocate_proportional, select_stratified_subtask

__all__ = [
    "METHODS",
    "MethodSpec",
    "Selection",
    "SourceView",
    "TargetView",
    "allocate_equal",
    "allocate_proportional",
    "estimate_weighted_mean",
    "parse_method",
    "select_random",
    "select_stratified_subtask",
    "split_method_list",
]
