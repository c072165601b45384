"""The command line: outputs on disk, TOML configs, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest

from jaxbench.cli import main
from jaxbench.data import write_matrix

OUTPUTS = {"agreement.csv", "agreement.parquet", "mdad.csv", "mdad.parquet", "estimation.csv",
           "estimation.parquet", "run.json"}


def _run(monkeypatch, capsys, *argv):
    monkeypatch.setattr(sys, "argv", ["jaxbench", *argv])
    with pytest.raises(SystemExit) as stop:
        main()
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def _run_ok(monkeypatch, capsys, *argv):
    monkeypatch.setattr(sys, "argv", ["jaxbench", *argv])
    main()  # returns normally on success
    captured = capsys.readouterr()
    return captured.out, captured.err


@pytest.fixture(scope="module")
def data_file(tmp_path_factory, small_matrix):
    return write_matrix(small_matrix, tmp_path_factory.mktemp("data") / "small.npz")


def test_demo_writes_outputs(monkeypatch, capsys, tmp_path):
    out, _ = _run_ok(monkeypatch, capsys, "demo", "--out", str(tmp_path), "--runs", "3")
    assert "MDAD" in out and "stratified_subtask" in out
    assert OUTPUTS <= {p.name for p in tmp_path.iterdir()}
    mdad = pd.read_csv(tmp_path / "mdad.csv")
    assert sorted(mdad["size"].unique()) == [10, 25, 50, 100, 250, 500, 1000]
    assert json.loads((tmp_path / "run.json").read_text())["config"]["num_targets"] == 10


def test_run_from_flags_and_toml(monkeypatch, capsys, tmp_path, data_file):
    common = ["--sizes", "10,25", "--runs", "4", "--targets", "8", "--bootstrap", "100"]
    _run_ok(monkeypatch, capsys, "run", "--data", str(data_file), "--methods", "random",
            "--out", str(tmp_path / "flags"), *common)
    config = tmp_path / "study.toml"
    config.write_text(f'data = "{data_file}"\nmethods = ["random"]\nsizes = [10, 25]\nruns = 4\n'
                      f'targets = 8\nbootstrap = 100\nout = "{tmp_path / "toml"}"\n')
    _run_ok(monkeypatch, capsys, "run", "--config", str(config))
    flags = pd.read_csv(tmp_path / "flags" / "estimation.csv")
    toml = pd.read_csv(tmp_path / "toml" / "estimation.csv")
    pd.testing.assert_frame_equal(flags, toml)
    # A flag overrides the file.
    _run_ok(monkeypatch, capsys, "run", "--config", str(config), "--seed", "3",
            "--out", str(tmp_path / "seed3"))
    assert json.loads((tmp_path / "seed3" / "run.json").read_text())["config"]["seed"] == 3


def test_info(monkeypatch, capsys, data_file):
    out, _ = _run_ok(monkeypatch, capsys, "info", str(data_file))
    assert "40" in out and "600" in out and "subtask-00" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--data", "absent.npz"], "no such data file"),
        (["run"], "no data"),
        (["run", "--data", "mmlu-pro", "--methods", "nope"], "unknown method"),
        (["run", "--data", "mmlu-pro", "--runs", "many"], "--runs"),
        (["run", "--data", "mmlu-pro", "--ties", "maybe"], "ties must be one of"),
        (["run", "--data", "mmlu-pro", "--sizes", "10,x"], "sizes: expected an integer"),
        (["run", "--data", "mmlu-pro", "--targets", "100"], "exceeds the 29 models"),
        (["run", "--config", "absent.toml"], "no such config file"),
        (["info", "absent.csv"], "no such data file"),
        (["run", "--bogus"], "No such option"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(monkeypatch, capsys, argv, message):
    code, out, err = _run(monkeypatch, capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err + out
    assert len([line for line in err.splitlines() if line.strip()]) <= 2  # one (maybe wrapped) line


def test_unknown_toml_key(monkeypatch, capsys, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('data = "mmlu-pro"\nrunz = 3\n')
    code, _, err = _run(monkeypatch, capsys, "run", "--config", str(config))
    assert code == 2 and "unknown key(s) runz" in err


def test_compilation_cache_is_enabled_in_a_chosen_folder(monkeypatch, tmp_path):
    import jax

    from jaxbench.cli import _enable_compilation_cache

    monkeypatch.setenv("JAXBENCH_CACHE_DIR", str(tmp_path / "xla"))
    try:
        _enable_compilation_cache()
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")
        assert (tmp_path / "xla").is_dir()
    finally:
        jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.setenv("JAXBENCH_CACHE_DIR", "")
    _enable_compilation_cache()
    assert jax.config.jax_compilation_cache_dir is None
