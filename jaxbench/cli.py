"""The ``jaxbench`` command line: ``demo``, ``run``, ``plan``, ``pairs``, ``info``. Presentation only.

Bad input (a missing file, an unknown method, a size that does not fit) prints one line starting
with ``error:`` and exits with status 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tomllib
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import planning
from .data import BUNDLED, MISSING_POLICIES, load
from .data.formats import atomic_write
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


def _enable_compilation_cache() -> None:
    """Keep compiled executables on disk so repeated studies skip most compilation.

    ``JAXBENCH_CACHE_DIR`` chooses the folder (default ``~/.cache/jaxbench/xla``); an empty value
    turns the cache off.
    """
    folder = os.environ.get("JAXBENCH_CACHE_DIR", str(Path.home() / ".cache" / "jaxbench" / "xla"))
    if not folder:
        return
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only home: run without the cache
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def main() -> None:
    """Console-script entry point."""
    _enable_compilation_cache()
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
        cohort = _names(cohort)
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
def plan(
    data: str = typer.Option(..., help="Data file (.npz, .csv, .parquet) or bundled name."),
    gap: float = typer.Option(2.0, help="Ability difference (accuracy points) to detect."),
    threshold: float = typer.Option(0.8, help="Agreement the MDAD asks for."),
    rule: str = typer.Option("paper", help="MDAD rule: paper or monotone."),
    ties: str = typer.Option("fail", help="Tied estimates: fail or half."),
    models: Optional[str] = typer.Option(None, help="Comma-separated model names [all]."),
    missing: str = typer.Option("drop_items", help="drop_items, drop_models or error."),
) -> None:
    """How many random items are needed to rank models GAP points apart (exact, no simulation)."""
    matrix = load(data)
    answer = planning.plan(matrix, gap=gap, threshold=threshold, rule=rule, ties=ties,
                           models=_names(models), missing=missing)
    kind = "approximate (graded scores, normal approximation)" if answer.approximate else "exact"
    if answer.size is None:
        console.print(f"Even all {answer.num_items} items do not reach MDAD <= {gap:g} points at "
                      f"agreement >= {threshold:g} ({kind}).")
        return
    console.print(f"A uniform random subset of [bold]{answer.size}[/] of {answer.num_items} items "
                  f"ranks pairs {answer.mdad:g}+ points apart correctly at least {threshold:.0%} "
                  f"of the time ({answer.rule} MDAD = {answer.mdad:g} <= {gap:g}; {kind}).")
    table = Table(title=f"exact agreement curve at k = {answer.size}")
    for column in ("gap (points)", "pairs", "agreement"):
        table.add_column(column, justify="right")
    for row in answer.curve.head(20).itertuples():
        table.add_row(f"{row.bin:.1f}-{row.bin_upper:.1f}", str(row.pairs), f"{row.agreement:.3f}")
    console.print(table)


@app.command()
def pairs(
    data: str = typer.Option(..., help="Data file (.npz, .csv, .parquet) or bundled name."),
    size: int = typer.Option(100, help="Micro-benchmark size k."),
    models: Optional[str] = typer.Option(None, help="Comma-separated model names [all]."),
    ties: str = typer.Option("fail", help="Tied estimates: fail or half."),
    out: Optional[Path] = typer.Option(None, help="CSV file for every pair [pairs-k<size>.csv]."),
    show: int = typer.Option(15, help="Rows shown on the terminal (least reliable first)."),
    missing: str = typer.Option("drop_items", help="drop_items, drop_models or error."),
) -> None:
    """Which model pairs can a random SIZE-item subset rank? One row per pair, exact."""
    matrix = load(data)
    rows = planning.exact_agreement(matrix, [size], ties=ties, models=_names(models), missing=missing)
    rows = rows.sort_values(["agreement", "difference"], key=lambda c: c.abs() if c.name == "difference" else c)
    out = out or Path(f"pairs-k{size}.csv")
    atomic_write(out, lambda p: rows.to_csv(p, index=False))
    kind = " (approximate: graded scores)" if rows.approximate.any() else ""
    table = Table(title=f"P(a random {size}-item subset ranks the pair correctly){kind}")
    for column, justify in (("model a", "left"), ("model b", "left"), ("a - b (points)", "right"),
                            ("agreement", "right")):
        table.add_column(column, justify=justify, no_wrap=justify == "right")
    for row in rows.head(show).itertuples():
        table.add_row(row.model_a, row.model_b, f"{row.difference:+.2f}", f"{row.agreement:.3f}")
    console.print(table)
    reliable = int((rows.agreement >= 0.8).sum())
    console.print(f"{reliable} of {len(rows)} pairs reach agreement >= 0.8; all pairs in {out}")


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


def _names(text: Optional[str]) -> Optional[list[str]]:
    if text is None:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


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
    table = Table(title=f"MDAD (accuracy points) at agreement >= {result.config['threshold']}, "
                        "by micro-benchmark size k; '-' = not reached")
    table.add_column("method", no_wrap=True)
    table.add_column("half", no_wrap=True)
    frame = result.mdad
    sizes = sorted(frame["size"].unique())
    for size in sizes:
        table.add_column(str(size), justify="right", no_wrap=True)
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
