"""The command line's own contract (issue 11 items 7, 9, 17): usage errors and bad option values end in one line on
stderr with exit 2, through the real entry point in a subprocess; `--help` shows flags as flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from edgekit import cli as edgekit_cli
from edgekit.store import RUN_STATUSES

MISSING_MODEL = "/nonexistent/edgekit-test/model.onnx"


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    """The single `error: ...` line on stderr of a process that must have exited with `code`."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stderr, proc.stdout)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# -- item 7: usage errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "needle"), [
    (["bench"], "MODEL_OR_ARTIFACT"),                                            # a missing argument
    (["bench", MISSING_MODEL, "--runs", "0"], "--runs"),
    (["bench", MISSING_MODEL, "--threads", "abc"], "--threads"),
    (["bench", MISSING_MODEL, "--warmup", "-1"], "--warmup"),
    (["bench", MISSING_MODEL, "--min-time", "-1"], "--min-time"),
    (["compare", "1", "2", "--fail-abve", "5%"], "--fail-above"),    # a typo names the option meant
    (["no-such-command"], "no-such-command"),
    (["runs", "no-such-subcommand"], "no-such-subcommand"),
    (["runs", "list", "--limit"], "--limit"),                        # an option without its value
])
def test_usage_error_is_one_line_with_exit_2(argv, needle):
    line = one_error_line(cli(*argv))
    assert needle.lower() in line.lower(), line
    assert "--help" in line  # the fix: where the usage is described


def test_no_arguments_shows_the_help_without_a_traceback():
    proc = cli()
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode == 2, proc.stderr
    assert "Usage" in proc.stdout + proc.stderr and "bench" in proc.stdout + proc.stderr


@pytest.fixture
def probe_command():
    """Register a throw-away command on the real app that raises what the test sets, and remove it afterwards."""
    box: dict[str, BaseException] = {}

    def _probe() -> None:
        raise box["exc"]

    edgekit_cli.app.command("zz-probe")(_probe)
    yield box
    edgekit_cli.app.registered_commands.pop()


@pytest.mark.parametrize("exc", [typer.Abort(), EOFError(), KeyboardInterrupt()])
def test_abort_and_interrupt_exit_130(probe_command, exc, monkeypatch, capsys):
    probe_command["exc"] = exc
    monkeypatch.setattr(sys, "argv", ["edgekit", "zz-probe"])
    with pytest.raises(SystemExit) as info:
        edgekit_cli.main()
    assert info.value.code == 130
    assert "Traceback" not in capsys.readouterr().err


def test_boolean_flags_render_as_plain_flags():
    for argv in (["--help"], ["runs", "list", "--help"], ["bench", "--help"]):
        proc = cli(*argv)
        assert proc.returncode == 0, proc.stderr
        assert "--json" in proc.stdout or argv == ["--help"]
        assert "<bool>" not in proc.stdout, proc.stdout


# -- item 9: thread counts and time budgets ----------------------------------------------------------------------


THREADS_COMMANDS = [
    ["bench", MISSING_MODEL],
    ["eval", MISSING_MODEL],
    ["study", "fragility", "--targets", "no-such-domain"],
]


@pytest.mark.parametrize("argv", THREADS_COMMANDS, ids=lambda a: a[0])
@pytest.mark.parametrize("threads", ["-1", "0", "100000"])
def test_threads_out_of_range_is_refused(argv, threads):
    line = one_error_line(cli(*argv, "--threads", threads))
    assert "--threads" in line and str(4 * (os.cpu_count() or 1)) in line, line


def test_threads_within_range_is_accepted():
    proc = cli("bench", MISSING_MODEL, "--threads", "1")
    assert "does not exist" in one_error_line(proc)  # got past the option check to the model


@pytest.mark.parametrize(("extra", "needles"), [
    (["--min-time", "5", "--max-time", "2"], ["--min-time", "--max-time"]),
    (["--min-time", "nan"], ["--min-time"]),
    (["--max-time", "nan"], ["--max-time"]),
    (["--min-time", "1e309"], ["--min-time"]),
    (["--idle", "nan"], ["--idle"]),
])
def test_bench_time_budget_is_checked(extra, needles):
    line = one_error_line(cli("bench", MISSING_MODEL, *extra))
    for n in needles:
        assert n in line, line


# -- item 17: runs list --status, predict on a non-ONNX artifact -------------------------------------------------


def test_runs_list_refuses_an_unknown_status():
    line = one_error_line(cli("runs", "list", "--status", "bogus"))
    assert "bogus" in line and all(s in line for s in RUN_STATUSES), line


@pytest.fixture
def empty_store() -> Path:
    """An empty results store at $EDGEKIT_DB (read-only commands do not create one)."""
    from edgekit.store import ResultsStore

    store = ResultsStore()
    store.close()
    return store.path


def test_runs_list_accepts_a_known_status(empty_store):
    proc = cli("runs", "list", "--status", "ok", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_predict_on_a_non_onnx_artifact_names_the_real_problem(tmp_path: Path):
    art = tmp_path / "x.tflite"
    art.write_bytes(b"TFL3")
    line = one_error_line(cli("predict", str(art), "--target", "rpi4"))
    assert "was given" not in line, line
    # predict reads a .tflite's own graph now (tests/test_predictor.py): the problem named is the file itself
    assert "x.tflite" in line and "not a readable .tflite" in line, line


# -- found by tests/test_cli_fuzz.py -----------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "needle"), [
    (["bench", MISSING_MODEL, "--energy-command", '"'], "--energy-command"),   # shlex: no closing quotation
    (["export", MISSING_MODEL, "--seed", "99999999999999999999"], "--seed"),
    (["bench", MISSING_MODEL, "--seed", "-1"], "--seed"),
    (["runs", "show", "99999999999999999999"], "ID"),
    (["report", "99999999999999999999"], "99999999999999999999"),
    (["report", "1-999999999999"], "1-999999999999"),                          # was a MemoryError
    (["compare", "1-999999999999", "2"], "1-999999999999"),
    (["models", "show", "x" * 4096], "too long"),                              # ENAMETOOLONG from Path.exists
    (["runs", "export", "--out", "y" * 4096], "too long"),
    (["targets", "check", "rpi4", "--host", "127.0.0.1", "--port", "70000"], "--port"),  # was an OverflowError
    (["targets", "check", "rpi4", "--host", "127.0.0.1", "--port", "-1"], "--port"),
    (["bench", MISSING_MODEL, "--target", "rpi4", "--host", "127.0.0.1", "--port", "0"], "--port"),
    (["targets", "check", "rpi4", "--host", "127.0.0.1", "--timeout", "-1"], "--timeout"),  # was ignored
    (["targets", "check", "rpi4", "--host", "127.0.0.1", "--timeout", "1e309"], "--timeout"),
    (["runs", "list", "--limit", "99999999999999999999"], "--limit"),  # was "a bug in the caller"
    (["report", "--last", "99999999999999999999"], "--last"),
])
def test_hostile_values_end_in_one_line(argv, needle, empty_store):
    line = one_error_line(cli(*argv, timeout=60))
    assert needle in line, line
    assert len(line) < 400, line  # a 4 KB file name is shortened, not repeated
