"""`command` transport: any device (NPU boards, vendor SDKs, external meters) driven by a program that speaks
edgekit's JSON-lines protocol (docs/targets.md, "The command protocol", version edgekit-command/1).

edgekit starts the configured argv (placeholders like {artifact} are substituted per argument; no shell), writes one
JSON request line on its stdin and closes it. The program prints JSON lines on stdout (other lines are ignored, so
vendor logs do no harm) and ends with exactly one of:
    {"event": "check", "device": {...}, "runtimes": {"name": "version"}}
    {"event": "result", "samples_ms": [...], "load_ms": .., "first_ms": .., "warmup_ms": [..],
     "runtime": {"name": .., "version": .., "provider": ..}, "device": {...}, "energy_j": .., "memory_peak_bytes": ..}
    {"event": "error", "problem": "...", "fix": "..."}

Every value is checked before anything is stored (the rules in COMMAND_SCHEMAS, with the agent's checker): latencies
are finite numbers > 0 ms (JSON's NaN/Infinity are refused), load_ms and energy_j finite and >= 0, byte counts whole
numbers >= 0, text is text, and a field the protocol does not name is refused with the nearest known one. A violation
is one line naming the field and the command; the run is recorded as failed, never as measured.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edgekit.errors import DeviceUnreachableError, EdgekitError
from edgekit.targets import agent
from edgekit.targets.profile import TransportSpec
from edgekit.targets.transports.base import AgentFailedError, CheckReport, Transport, parse_agent_output

PROTOCOL = "edgekit-command/1"
PLACEHOLDERS = ("artifact", "format", "precision", "model", "op", "target")
COMMAND_RESULT = {"event": agent.TEXT, "protocol": agent.TEXT, "samples_ms": agent.POSITIVES,
                  "load_ms": agent.NON_NEGATIVE, "first_ms": agent.POSITIVE, "warmup_ms": agent.POSITIVES,
                  "runtime": {"name": agent.TEXT, "version": agent.TEXT, "provider": agent.TEXT},
                  "device": agent.SCALARS, "energy_j": agent.NON_NEGATIVE, "memory_peak_bytes": agent.WHOLE}
COMMAND_CHECK = {"event": agent.TEXT, "protocol": agent.TEXT, "device": agent.SCALARS, "runtimes": agent.VERSIONS}
COMMAND_SCHEMAS = {"result": (COMMAND_RESULT, ("samples_ms",)), "check": (COMMAND_CHECK, ())}
COMMAND_FIX = (f"make the command print values the protocol allows ({PROTOCOL}, docs/targets.md: latencies in ms > 0, "
               "bytes as whole numbers, no NaN or Infinity)")


def substitute(template: tuple[str, ...] | list[str], values: dict[str, str]) -> list[str]:
    """Fill {name} placeholders in each argument (unknown names are an error, never passed through a shell)."""
    out = []
    for arg in template:
        try:
            out.append(arg.format(**values))
        except (KeyError, IndexError, ValueError) as exc:
            raise EdgekitError(f"command argument {arg!r} uses an unknown placeholder ({exc})",
                               f"use only {', '.join('{' + p + '}' for p in PLACEHOLDERS)} (write {{{{ for a brace)"
                               ) from exc
    return out


INTERPRETERS = ("python", "sh", "bash", "dash", "zsh", "node", "perl", "ruby", "env")


def command_label(argv: list[str]) -> str:
    """How errors name the command: its program, plus the script it runs when the program is an interpreter
    (`python3 npu_wrapper.py`, not just `python3`)."""
    label = Path(argv[0]).name
    if len(argv) > 1 and label.startswith(INTERPRETERS) and not argv[1].startswith("-"):
        label += " " + Path(argv[1]).name
    return label


class CommandTransport(Transport):
    kind = "command"
    provenance = "measured"

    def __init__(self, target: str, spec: TransportSpec) -> None:
        super().__init__(target)
        if not spec.command:
            raise EdgekitError(f"target {target!r} has no [transport] command",
                               'set command = ["my-npu-bench", "{artifact}"] in its profile (see docs/targets.md)')
        self.spec = spec

    @property
    def address(self) -> str:
        return self.spec.command[0]

    def available(self) -> tuple[bool, str]:
        prog = self.spec.command[0]
        if os.sep in prog:
            return (Path(prog).expanduser().exists(), f"{prog} does not exist")
        return (shutil.which(prog) is not None, f"{prog!r} is not on PATH")

    def _call(self, request: dict[str, Any], values: dict[str, str], what: str) -> dict[str, Any]:
        ok, why = self.available()
        if not ok:
            raise DeviceUnreachableError(f"target {self.target}: the device command {why}",
                                         f"install it, or set [transport] command in targets/{self.target}.toml")
        argv = substitute(self.spec.command, {**{p: "" for p in PLACEHOLDERS}, **values, "target": self.target})
        argv[0] = str(Path(argv[0]).expanduser()) if os.sep in argv[0] else argv[0]
        where = f"target {self.target} (command {command_label(argv)})"
        try:
            proc = subprocess.run(argv, input=json.dumps(request) + "\n", capture_output=True, text=True,
                                  timeout=self.spec.timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise AgentFailedError(f"{where}: {what} did not finish within {self.spec.timeout_s:g} s (timed out)",
                                   "raise [transport] timeout_s or lower --runs") from exc
        except OSError as exc:
            raise DeviceUnreachableError(f"{where}: cannot start the command ({exc.strerror})",
                                         "check that the program is executable") from exc
        signal_name = None
        if proc.returncode < 0:
            import signal

            signal_name = signal.Signals(-proc.returncode).name
        return parse_agent_output(proc.stdout, where, proc.returncode if proc.returncode >= 0 else None,
                                  signal_name, proc.stderr, schemas=COMMAND_SCHEMAS, fix=COMMAND_FIX)

    def check(self) -> CheckReport:
        event = self._call({"protocol": PROTOCOL, "op": "check"}, {"op": "check"}, "the check")
        if event.get("event") != "check":
            raise AgentFailedError(f"target {self.target}: the command answered a check with {event.get('event')!r}",
                                   'print {"event": "check", ...} for op "check" (docs/targets.md)')
        return CheckReport(target=self.target, transport=self.kind, address=self.address,
                           host=dict(event.get("device") or {}), runtimes=dict(event.get("runtimes") or {}))

    def run_bench(self, job: Any, config: Any, return_outputs: bool = False) -> dict[str, Any]:
        request = {"protocol": PROTOCOL, "op": "bench", "artifact": str(Path(job.path).resolve()),
                   "format": job.format, "precision": job.precision, "model": job.model,
                   "inputs": [s.to_dict() for s in job.inputs], "warmup": config.warmup, "runs": config.runs,
                   "min_time_s": config.min_time_s, "max_time_s": config.max_time_s, "threads": config.threads,
                   "seed": config.seed}
        values = {"artifact": request["artifact"], "format": job.format, "precision": job.precision,
                  "model": job.model, "op": "bench"}
        event = self._call(request, values, f"benchmarking {job.describe()}")
        if event.get("event") != "result":
            raise AgentFailedError(f"target {self.target}: the command answered a bench with {event.get('event')!r}",
                                   'print {"event": "result", "samples_ms": [..]} (docs/targets.md)')
        samples = [float(x) for x in event["samples_ms"]]  # checked: a non-empty list of finite numbers > 0
        runtime = dict(event.get("runtime") or {})
        describe = {"runtime": runtime.get("name", Path(self.spec.command[0]).name),
                    "version": runtime.get("version"), "threads": config.threads,
                    "provider": runtime.get("provider")}
        payload: dict[str, Any] = {
            "samples_ms": samples, "load_ms": event.get("load_ms"), "first_ms": event.get("first_ms"),
            "warmup_ms": event.get("warmup_ms") or [], "describe": describe, "host": dict(event.get("device") or {}),
            "provenance": self.provenance,
            "transport": {"kind": self.kind, "address": self.address},
        }
        if event.get("memory_peak_bytes") is not None:
            peak = int(event["memory_peak_bytes"])
            payload["memory"] = {"rss_before_load": None, "rss_after_load": None, "peak_rss_load": None,
                                 "peak_rss_inference": peak, "peak_rss_scope": "device", "rss_after_runs": None}
        if event.get("energy_j") is not None:
            energy = float(event["energy_j"])
            n = len(samples)
            payload["energy"] = {"provenance": "measured", "j_per_inference": energy / n, "error_band_j": None,
                                 "source": "command", "assumption": "energy_j reported by the device command over "
                                 "the timed runs (its own idle handling)", "inferences": n,
                                 "window_s": sum(samples) / 1000.0}
        return payload
