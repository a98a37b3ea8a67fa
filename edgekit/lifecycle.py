"""One path for SIGINT (Ctrl-C) and SIGTERM: the run being measured is marked `interrupted` in the store and the
command ends with one line and exit 130 (SIGINT) or 143 (SIGTERM, 128 + 15, as a shell reports it).

The CLI calls `install_signal_handlers()` once; both signals then raise `Interrupted` (a KeyboardInterrupt, so
every `except KeyboardInterrupt` / `finally` cleanup still runs: the benchmark child is killed). Whoever has runs
open in a store marks them on the way out — `ResultsStore.__exit__` does it for `with ResultsStore(...)` blocks and
`interruptible(store)` for a store held open across calls — and records their ids here, so `exit_interrupted()` can
name them. Library users who install nothing keep Python's own Ctrl-C behaviour; the marking works the same.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(KeyboardInterrupt):
    """Raised by edgekit's handler for SIGINT and SIGTERM; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class _State:
    signum: int | None = None
    marked: list[tuple[str, int]] = field(default_factory=list)  # (store path, run id)


_STATE = _State()


def _handler(signum: int, frame: FrameType | None) -> None:
    _STATE.signum = signum
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM raise `Interrupted` in the main thread (the CLI's entry point calls this); forgets any
    earlier interruption of this process."""
    _STATE.signum, _STATE.marked = None, []
    for sig in EXIT_CODES:
        try:
            signal.signal(sig, _handler)
        except ValueError:  # not the main thread: Python's own behaviour stays
            return


def signal_name(exc: BaseException | None = None) -> str:
    """`SIGTERM`, `SIGINT` — the signal that ended the command (SIGINT for a plain KeyboardInterrupt)."""
    signum = getattr(exc, "signum", None) or _STATE.signum or signal.SIGINT
    return signal.Signals(signum).name


def reason(exc: BaseException | None = None) -> str:
    """The error text stored on an interrupted run."""
    name = signal_name(exc)
    how = " (Ctrl-C)" if name == "SIGINT" else ""
    return f"interrupted by {name}{how} before this run finished"


def note_marked(store_path: Any, run_ids: list[int]) -> None:
    """Remember runs marked `interrupted`, for the closing line."""
    _STATE.marked += [(str(store_path), rid) for rid in run_ids]


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while the store is told about an interruption (a second Ctrl-C then arrives
    after the mark is committed, not in the middle of it)."""
    sigs = set(EXIT_CODES)
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, OSError, ValueError):  # not the main thread / no pthread_sigmask
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def interruptible(store: Any) -> Iterator[None]:
    """Mark the store's open (`running`) runs `interrupted` when a KeyboardInterrupt / Interrupted passes."""
    try:
        yield
    except KeyboardInterrupt as exc:
        if store is not None:
            store.mark_interrupted(reason(exc))
        raise


def interrupted_signal() -> int | None:
    """The signal number edgekit's handler caught in this process, or None."""
    return _STATE.signum


def exit_interrupted(exc: BaseException | None = None) -> None:
    """Print the one closing line of an interrupted command and exit 130 (SIGINT) or 143 (SIGTERM)."""
    name = signal_name(exc)
    how = " (Ctrl-C)" if name == "SIGINT" else ""
    if _STATE.marked:
        stores = sorted({path for path, _ in _STATE.marked})
        ids = ", ".join(str(rid) for _, rid in _STATE.marked)
        noun = "run" if len(_STATE.marked) == 1 else "runs"
        what = f"{noun} {ids} marked interrupted in {', '.join(stores)}; runs finished before it are kept"
    else:
        what = "results completed so far are kept in the store"
    print(f"error: interrupted by {name}{how} — {what}", file=sys.stderr, flush=True)
    sys.exit(EXIT_CODES.get(signal.Signals[name], 130))
