"""jaxbench: how reliable is a language-model micro-benchmark? A JAX statistics engine.

Public API (see README.md): `load`, `meta_evaluate`, `exact_agreement`, `plan`,
`ResponseMatrix`, `generate_synthetic`, `read_matrix`, `write_matrix`, `parse_method`. Kernels for JAX codebases live in
`jaxbench.agreement`, `jaxbench.protocol`, `jaxbench.selectors` and `jaxbench.engine`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jaxbench")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

from .data import ResponseMatrix, generate_synthetic, load, read_matrix, write_matrix  # noqa: E402
from .planning import PlanResult, exact_agreement, exact_agreement_matrix, plan  # noqa: E402
from .selectors import METHODS, parse_method  # noqa: E402
from .study import StudyResult, meta_evaluate  # noqa: E402

__all__ = [
    "METHODS",
    "PlanResult",
    "ResponseMatrix",
    "StudyResult",
    "__version__",
    "exact_agreement",
    "exact_agreement_matrix",
    "generate_synthetic",
    "load",
    "meta_evaluate",
    "parse_method",
    "plan",
    "read_matrix",
    "write_matrix",
]
