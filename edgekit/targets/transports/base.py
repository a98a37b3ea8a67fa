"""The transport interface: how edgekit reaches a device, runs the agent (or a vendor tool) there and reads back one
result dict. Every transport speaks the same two calls:

- `check()` -> CheckReport: reach the device and report its host facts and runtime versions, or raise one clear
  error saying exactly why it cannot.
- `run_bench(job, config)` -> dict: the agent's result fields (load_ms, first_ms, warmup_ms, samples_ms, memory,
  describe, host, optionally energy/outputs) plus `provenance` (measured | emulated) and `transport` (where it ran).

Errors a device can cause are EdgekitError subclasses carrying the target and the address, never a secret.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import DeviceUnreachableError, EdgekitError

AGENT_PATH = Path(__file__).resolve().parent.parent / "agent.py"


class DeviceDisconnectedError(EdgekitError):
    """The connection to a device dropped while it was working; results completed before are kept."""

    exit_code = 3


class AgentFailedError(EdgekitError):
    """The agent (or device tool) crashed, timed out or printed no result."""

    exit_code = 3


class AgentProtocolError(EdgekitError):
    """The agent (or device tool) answered, but with an impossible value (a negative or non-finite latency, a
    non-numeric byte count, an unknown field): nothing of it is stored as measured."""


AGENT_FIX = ("the agent on the device printed it; edgekit copies the agent afresh on every run, so check the device's "
             "runtime (`edgekit targets check`) and re-run with --debug")


__all__ = ["AGENT_PATH", "AgentFailedError", "AgentProtocolError", "CheckReport", "DeviceDisconnectedError", "DeviceUnreachableError",
           "Transport", "agent_args", "parse_agent_output"]


@dataclass
class CheckReport:
    """What `targets check` learned: where, the device's facts, and runtime -> version (None = not installed)."""

    target: str
    transport: str
    address: str
    host: dict[str, Any] = field(default_factory=dict)
    runtimes: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Transport:
    """Base class. Subclasses set `kind` and `provenance` and implement check() and run_bench()."""

    kind = "base"
    provenance = "measured"

    def __init__(self, target: str) -> None:
        self.target = target

    @property
    def address(self) -> str:
        return self.kind

    def check(self) -> CheckReport:
        raise NotImplementedError

    def run_bench(self, job: Any, config: Any, return_outputs: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; safe to call twice."""


def agent_args(job: Any, config: Any, model_path: str, return_outputs: bool = False,
               compute_units: str | None = None) -> list[str]:
    """The agent's `bench` arguments for a BenchJob and a BenchConfig (a list; callers quote it with shlex)."""
    args = ["bench", "--model", model_path, "--format", job.format,
            "--inputs", json.dumps([s.to_dict() for s in job.inputs], separators=(",", ":")),
            "--warmup", str(config.warmup), "--runs", str(config.runs), "--min-time", str(config.min_time_s),
            "--max-time", str(config.max_time_s), "--seed", str(config.seed)]
    if config.threads:
        args += ["--threads", str(config.threads)]
    if config.provider and job.format != "coreml":
        args += ["--provider", str(config.provider)]
    if compute_units:
        args += ["--compute-units", compute_units]
    if return_outputs:
        args.append("--return-outputs")
    return args


def parse_agent_output(stdout: str, where: str, exit_status: int | None, exit_signal: str | None,
                       stderr: str, phase_hint: str = "", schemas: dict[str, Any] | None = None,
                       fix: str = AGENT_FIX) -> dict[str, Any]:
    """The agent's final event from its stdout (JSON lines; other lines are ignored). An `error` event becomes an
    EdgekitError with the agent's own problem/fix; no result at all becomes AgentFailedError with the exit status or
    signal and the last stderr line. A `result` or `check` event is checked against `schemas` (default: the agent's,
    edgekit/targets/agent.py — the very rules the agent applies before printing): an impossible value (NaN, Infinity,
    a negative latency, text where bytes belong, an unknown field) is AgentProtocolError naming the field."""
    from edgekit.targets.agent import event_problem

    final: dict[str, Any] | None = None
    phase = phase_hint
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if not isinstance(event, dict):
            continue
        if event.get("event") == "phase":
            phase = str(event.get("phase", phase))
        if event.get("event") in ("result", "error", "check"):
            final = event
    if final is not None and final.get("event") == "error":
        problem, device_fix = final.get("problem"), final.get("fix")
        raise EdgekitError(f"{where}: {problem if problem is not None else 'the agent reported an error'}",
                           " ".join(str(device_fix).split()) if device_fix is not None else "")
    if final is not None and exit_signal is None and (exit_status in (0, None)):
        problem = event_problem(final, schemas)
        if problem:
            raise AgentProtocolError(f"{where}: the {final.get('event')} it printed is not valid: {problem}", fix)
        return final
    tail = [ln for ln in (stderr or "").splitlines() if ln.strip()]
    last = tail[-1].strip()[:200] if tail else "no error output"
    if exit_signal is None and exit_status is not None and exit_status > 128:  # a shell reports a signal as 128+N
        import signal

        try:
            exit_signal = f"{signal.Signals(exit_status - 128).name} (exit code {exit_status})"
        except ValueError:
            pass
    if exit_signal and not exit_signal.startswith("SIG"):
        exit_signal = "SIG" + exit_signal
    how = f"was killed by signal {exit_signal}" if exit_signal else f"exited with code {exit_status}"
    during = f" during {phase}" if phase else ""
    raise AgentFailedError(f"{where}: the agent {how}{during} without a result ({last})",
                           "run `edgekit targets check` for the device's runtimes; re-run with --debug for more")
