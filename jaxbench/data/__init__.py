"""Response matrices: the container, file formats, the bundled dataset and a synthetic generator."""

from .bundled import BUNDLED, bundled_path, load
from .formats import matrix_from_table, matrix_to_long_table, read_matrix, write_matrix
from .matrix import MISSING_POLICIES, MissingReport, ResponseMatrix, apply_missing_policy
from .synthetic import SyntheticTruth, generate_synthetic

__all__ = [
    "BUNDLED",
    "MISSING_POLICIES",
    "MissingReport",
    "ResponseMatrix",
    "SyntheticTruth",
    "apply_missing_policy",
    "bundled_path",
    "generate_synthetic",
    "load",
    "matrix_from_table",
    "matrix_to_long_table",
    "read_matrix",
    "write_matrix",
]
