"""The `edgekit` command line: parses arguments, calls the library, renders with rich. No logic here.

Each concern's commands live in edgekit/commands/<concern>.py and expose `register(app)`.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys

import typer

from edgekit import lifecycle
from edgekit.errors import EdgekitError

# Converter libraries draw their own tqdm bars; edgekit shows one rich progress display instead.
os.environ.setdefault("TQDM_DISABLE", "1")

COMMAND_MODULES: tuple[str, ...] = (
    "export",
    "models",
    "bench",
    "runs",
    "evaluate",
    "report",
    "targets",
    "study",
    "farm",
    "profile",
    "plugins",
)

app = typer.Typer(
    name="edgekit",
    help="Export PyTorch models to ONNX/TFLite/CoreML, prove parity, benchmark on edge targets, measure robustness.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("edgekit")
        except PackageNotFoundError:  # a checkout that was never installed
            text = "unknown (not installed)"
        typer.echo(f"edgekit {text}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Less output: no progress, hints or notes."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="More output: per-artifact notes and third-party warnings."),
    _show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print edgekit's version and exit."),
) -> None:
    if debug:
        os.environ["EDGEKIT_DEBUG"] = "1"
    # read by edgekit.commands.common.verbosity(); set on every call (tests invoke the app many times per process)
    os.environ["EDGEKIT_VERBOSITY"] = "1" if verbose else "-1" if quiet else "0"
    if not verbose:
        _quiet_third_party_warnings()


def _quiet_third_party_warnings() -> None:
    """Converters and runtimes (torch, coremltools, onnxruntime, ...) warn about their own internals (deprecations,
    tracing notes): not the user's business. Hidden here and in child processes; `edgekit -v` shows them."""
    import warnings

    warnings.filterwarnings("ignore", module=r"(?!edgekit)")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")


for _name in COMMAND_MODULES:
    importlib.import_module(f"edgekit.commands.{_name}").register(app)


def _click_exceptions() -> tuple[type[Exception], type[Exception], type[Exception]]:
    """(ClickException, UsageError, NoArgsIsHelpError) of the click that typer runs on: typer >= 0.20 bundles its own
    as `typer._click`, whose exceptions are not the `click` package's."""
    try:
        from typer._click import exceptions as exc_mod
    except ImportError:  # an older typer on the click package
        from click import exceptions as exc_mod  # type: ignore[no-redef]
    no_args = getattr(exc_mod, "NoArgsIsHelpError", exc_mod.UsageError)
    return exc_mod.ClickException, exc_mod.UsageError, no_args


def _usage_line(exc: Exception, usage_error: type[Exception]) -> str:
    """click's message as edgekit's one line: `error: <problem> — fix: see `edgekit CMD --help``."""
    text = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, usage_error):
        command = ctx.command_path if ctx is not None else "edgekit"
        return f"error: {text} — fix: see `{command} --help`"
    return f"error: {text}"


# Errors of the file system the user points edgekit at (a path, a folder, a disk): one line, not a traceback.
_FS_ERRNOS = frozenset(getattr(errno, n) for n in ("ENAMETOOLONG", "EACCES", "EPERM", "ENOSPC", "EROFS", "EISDIR",
                                                     "ENOTDIR", "ENOENT", "ELOOP", "EDQUOT", "EEXIST")
                       if hasattr(errno, n))


def _fs_line(exc: OSError) -> str:
    """`error: <strerror>: <path> — fix: ...` with a long path shortened."""
    name = str(exc.filename) if exc.filename is not None else ""
    if len(name) > 80:
        name = f"{name[:60]}…({len(name)} characters)"
    where = f": {name}" if name else ""
    return (f"error: {exc.strerror or exc}{where} — fix: check the path, its permissions and the free space "
            "(`--debug` shows where it failed)")


def _plain_flags_in_help() -> None:
    """typer's rich help prints `<bool>` after flags (`--json <bool>`, `--help <bool>`) as if they took a value:
    show them as the plain flags they are."""
    from typer.core import TyperOption

    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "edgekit_plain_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx: object) -> str | None:
        if self.is_flag or self.count:
            return None
        return original(self, ctx)

    display_type_rich.edgekit_plain_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_plain_flags_in_help()


def main() -> None:
    """Console entry point. Exit codes: 0 ok, 1 a failed check (parity, regression, budget), 2 a usage error or bad
    input (one line on stderr), 3 a device that cannot be reached, 130 interrupted by Ctrl-C (SIGINT), 143 by
    SIGTERM (the run being measured is then marked `interrupted`: edgekit/lifecycle.py)."""
    click_exception, usage_error, no_args_is_help = _click_exceptions()
    lifecycle.install_signal_handlers()
    try:
        rc = app(prog_name="edgekit", standalone_mode=False)
        if lifecycle.interrupted_signal() is not None:  # typer turns KeyboardInterrupt into a bare exit 130
            lifecycle.exit_interrupted()
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except EdgekitError as exc:
        if os.environ.get("EDGEKIT_DEBUG") or "--debug" in sys.argv:
            raise
        typer.echo(f"error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        lifecycle.exit_interrupted(exc)
    except (typer.Exit, SystemExit) as exc:  # noqa: B014
        code = getattr(exc, "exit_code", None) or getattr(exc, "code", 0) or 0
        sys.exit(code)
    except typer.Abort:  # typer's own, e.g. EOF at a prompt
        typer.echo("error: aborted", err=True)
        sys.exit(130)
    except click_exception as exc:
        if isinstance(exc, no_args_is_help):  # the help is the message (rich mode has printed it already)
            if exc.format_message().strip():  # type: ignore[attr-defined]
                typer.echo(exc.format_message(), err=True)  # type: ignore[attr-defined]
            sys.exit(2)
        typer.echo(_usage_line(exc, usage_error), err=True)
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    except OSError as exc:
        if exc.errno not in _FS_ERRNOS or os.environ.get("EDGEKIT_DEBUG") or "--debug" in sys.argv:
            raise
        typer.echo(_fs_line(exc), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
