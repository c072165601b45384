"""The ``jaxbench`` command line: ``demo``, ``run`` and ``info``. Presentation only; no maths.

Bad input (a missing file, an unknown method, a size that does not fit) prints one line starting
with ``error:`` and exits with status 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import sys
import tomllib
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .data import BUNDLED, MISSING_POLICIES, load
from .selectors import METHODS, split_method_list
from .study import CIS, DEFAULT_SIZES, TIES, StudyResult, meta_evaluate

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="How reliable is a micro-benchmark? Agreement curves and MDAD for LLM benchmark subsets.",
)
console = Console()
errors = Console(stderr=True)

# run options: TOML key -> (default, parser from CLI/TOML value)
RUN_KEYS: dict[str, Any] = {
    "data": None,
    "methods": "random,stratified_subtask",
    "sizes": ",".join(map(str, DEFAULT_SIZES)),
    "runs": 50,
    "targets": 50,
    "target_models": None,
    "sources": None,
    "seed": 0,
    "threshold": 0.8,
    "ties": "fail",
    "ci": "runs",
    "bootstrap": 1000,
    "missing": "drop_items",
    "out": "jaxbench-out",
}


class UserError(Exception):
    """Bad input from the command line; printed as one line."""


def main() -> None:
    """Console-script entry point."""
    try:
        app(standalone_mode=False)
    except (UserError, ValueError, TypeError, FileNotFoundError, tomllib.TOMLDecodeError) as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        errors.print("aborted")
        sys.exit(130)
    except typer.Exit as stop:
        sys.exit(stop.exit_code)
    except Exception as error:
        # Usage errors of typer's click (bad option values, unknown options) carry their message.
        if hasattr(error, "format_message") and hasattr(error, "exit_code"):
            errors.print(f"[bold red]error:[/] {error.format_message()}", highlight=False)
            sys.exit(2)
        raise


@app.command()
def demo(
    out: Path = typer.Option(Path("jaxbench-demo"), help="Folder for the outputs."),
    runs: int = typer.Option(50, help="Resampled runs."),
    seed: int = typer.Option(0, help="Seed of every random draw."),
) -> None:
    """Meta-evaluate every method on the bundled MMLU-Pro matrix (10 target models)."""
    matrix = load("mmlu-pro")
    console.print(f"MMLU-Pro (bundled): {matrix.num_models} models x {matrix.num_items} items")
    result = _study(matrix, methods=list(METHODS), sizes=DEFAULT_SIZES, num_runs=runs,
                    num_targets=10, seed=seed)
    _finish(result, out)


@app.command()
def run(
    data: Optional[str] = typer.Option(None, help="Data file (.npz, .csv, .parquet) or bundled name."),
    config: Optional[Path] = typer.Option(None, help="TOML file with the same keys as these flags."),
    methods: Optional[str] = typer.Option(None, help="Comma-separated methods, e.g. random,stratified_subtask."),
    sizes: Optional[str] = typer.Option(None, help="Comma-separated sizes k."),
    runs: Optional[int] = typer.Option(None, help="Resampled runs [50]."),
    targets: Optional[int] = typer.Option(None, help="Target models per run [50]."),
    target_models: Optional[str] = typer.Option(None, help="Fixed target cohort: comma-separated names."),
    sources: Optional[int] = typer.Option(None, help="Cap on source models [all others]."),
    seed: Optional[int] = typer.Option(None, help="Seed [0]."),
    threshold: Optional[float] = typer.Option(None, help="Agreement threshold of the MDAD [0.8]."),
    ties: Optional[str] = typer.Option(None, help="Tied estimates: fail or half [fail]."),
    ci: Optional[str] = typer.Option(None, help="Bootstrap over runs, pairs or none [runs]."),
    bootstrap: Optional[int] = typer.Option(None, help="Bootstrap replicates [1000]."),
    missing: Optional[str] = typer.Option(None, help=f"Missing data: {', '.join(MISSING_POLICIES)}."),
    out: Optional[Path] = typer.Option(None, help="Output folder [jaxbench-out]."),
) -> None:
    """Run a study from flags or a TOML file (flags override the file)."""
    flags = {k: v for k, v in locals().items() if k in RUN_KEYS and v is not None}
    settings = dict(RUN_KEYS)
    if config is not None:
        settings.update(_read_toml(config))
    settings.update(flags)
    if settings["data"] is None:
        raise UserError("no data: give --data PATH (or a 'data' key in the TOML file)")
    matrix = load(str(settings["data"]))
    cohort = settings["target_models"]
    if isinstance(cohort, str):
        cohort = [name.strip() for name in cohort.split(",") if name.strip()]
    result = _study(
        matrix,
        methods=_as_list(settings["methods"], split_method_list),
        sizes=[_as_int(s, "sizes") for s in _as_list(settings["sizes"], lambda t: t.split(","))],
        num_runs=_as_int(settings["runs"], "runs"),
        num_targets=_as_int(settings["targets"], "targets"),
        targets=cohort,
        num_sources=None if settings["sources"] is None else _as_int(settings["sources"], "sources"),
        seed=_as_int(settings["seed"], "seed"),
        threshold=float(settings["threshold"]),
        ties=_choice(settings["ties"], "ties", tuple(TIES)),
        ci=_choice(settings["ci"], "ci", CIS),
        num_bootstrap=_as_int(settings["bootstrap"], "bootstrap"),
        missing=_choice(settings["missing"], "missing", MISSING_POLICIES),
    )
    _finish(result, Path(settings["out"]))


@app.command()
def info(path: str = typer.Argument(..., help="Data file or bundled dataset name.")) -> None:
    """Describe a response-matrix file: shape, values, subtasks, missing cells."""
    matrix = load(path)
    summary = matrix.describe()
    table = Table(title=f"{path}", show_header=False)
    for key in ("models", "items", "values", "confidences", "missing_cells",
                "models_with_missing", "items_with_missing"):
        table.add_row(key, str(summary[key]))
    accuracy = summary["accuracy_points"]
    table.add_row("accuracy (points)", f"min {accuracy['min']:.1f}, median "
                  f"{accuracy['median']:.1f}, max {accuracy['max']:.1f}")
    table.add_row("subtasks", ", ".join(f"{k} ({v})" for k, v in summary["subtasks"].items()))
    for key in ("source", "license"):
        if key in matrix.meta:
            table.add_row(key, str(matrix.meta[key]))
    console.print(table)
    if path in BUNDLED:
        console.print(BUNDLED[path][1])


def _study(matrix, **kwargs) -> StudyResult:
    with contextlib.ExitStack() as stack:
        state: dict[str, Any] = {}

        def progress(event: str, amount: int, description: str) -> None:
            # The bar starts once the study has validated its inputs and knows its size.
            if event == "total":
                bar = stack.enter_context(Progress(
                    TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("runs"), TimeElapsedColumn(), console=errors,
                ))
                state["bar"], state["task"] = bar, bar.add_task("compiling", total=amount)
            else:
                state["bar"].update(state["task"], advance=amount, description=description)

        return meta_evaluate(matrix, progress=progress, **kwargs)


def _finish(result: StudyResult, out: Path) -> None:
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    table = Table(title=f"MDAD (accuracy points) at agreement >= {result.config['threshold']}; "
                        "'-' = not reached")
    table.add_column("method", no_wrap=True)
    table.add_column("half", no_wrap=True)
    frame = result.mdad
    sizes = sorted(frame["size"].unique())
    for size in sizes:
        table.add_column(f"k={size}", justify="right")
    for method in dict.fromkeys(frame["method"]):
        for reference in ("seen", "unseen"):
            rows = frame[(frame["method"] == method) & (frame["reference"] == reference)]
            values = rows.set_index("size")["mdad"]
            table.add_row(method if reference == "seen" else "", reference,
                          *(_points(values.get(size, float("nan"))) for size in sizes))
    console.print(table)
    result.save(out)
    console.print(f"wrote agreement, mdad, estimation (.csv, .parquet) and run.json to {out}/ "
                  f"in {result.timings['total']:.1f} s")


def _points(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"no such config file: {path}")
    with open(path, "rb") as handle:
        settings = tomllib.load(handle)
    unknown = set(settings) - set(RUN_KEYS)
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(RUN_KEYS)}")
    return settings


def _as_list(value: Any, split: Callable[[str], list[str]]) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in split(value) if part.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise UserError(f"expected a list or a comma-separated string; got {value!r}")


def _as_int(value: Any, name: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise UserError(f"{name}: expected an integer; got {value!r}") from None
    return number


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise UserError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


if __name__ == "__main__":
    main()
