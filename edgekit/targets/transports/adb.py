"""`adb` transport (adbutils): Android phones such as the Pixel 6.

Two ways to run, chosen per artifact:
- a TFLite `benchmark_model` binary on the device (`[transport] benchmark_binary` or --benchmark-binary; the
  prebuilt android_aarch64 binary from the TensorFlow/LiteRT releases): edgekit pushes the .tflite file, runs the
  tool with quoted arguments, and parses its log (`parse_benchmark_model`). The tool prints aggregates only
  (count/avg/std/min/max and, in newer builds, p5/median/p95), so the result carries those instead of per-run samples;
- the agent, when the device has a Python with a runtime (Termux): the same path as SSH.

Energy: when the ODPM rails (/sys/bus/iio/devices/iio:device*/energy_value, Pixel 6 and later) are readable, they are
read before and after an idle window and around the benchmark, and the energy above idle is reported as measured.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import DeviceUnreachableError, EdgekitError
from edgekit.targets.profile import TransportSpec
from edgekit.targets.transports.base import (
    AGENT_PATH,
    AgentFailedError,
    CheckReport,
    DeviceDisconnectedError,
    Transport,
    agent_args,
    parse_agent_output,
)

ODPM_GLOB = "/sys/bus/iio/devices/iio:device*/energy_value"
_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_TIMINGS = re.compile(rf"Inference timings in us:\s*Init:\s*{_NUM},\s*First inference:\s*{_NUM},\s*"
                      rf"Warmup \(avg\):\s*{_NUM},\s*Inference \(avg\):\s*{_NUM}")
_MEMORY = re.compile(rf"Memory footprint delta from the start of the tool \(MB\):\s*init={_NUM}\s+overall={_NUM}")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*{_NUM}")
_SIZE = re.compile(rf"The input model file size \(MB\):\s*{_NUM}")
_RUNNING = re.compile(r"Running benchmark for at least (\d+) iterations")
_STATS = re.compile(r"count=(\d+)((?:\s+\w+=[-+\d.eE]+)*)")
_ODPM_LINE = re.compile(r"CH(?P<ch>\d+)\(T=(?P<t>\d+)\)\[(?P<rail>[^\]]+)\],\s*(?P<value>\d+)")


@dataclass
class BenchmarkModelOutput:
    """What TFLite's benchmark_model printed. Times in ms (the tool prints µs), memory in MB."""

    init_ms: float
    first_ms: float
    warmup_avg_ms: float
    inference_avg_ms: float
    count: int | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    median_ms: float | None = None
    p5_ms: float | None = None
    p95_ms: float | None = None
    warmup_count: int | None = None
    init_mb: float | None = None
    overall_mb: float | None = None
    peak_mb: float | None = None
    model_size_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stats(fields: str) -> dict[str, float]:
    out = {}
    for part in fields.split():
        key, _, value = part.partition("=")
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


def parse_benchmark_model(text: str) -> BenchmarkModelOutput:
    """Parse TFLite benchmark_model's log (stdout, or `adb logcat` lines with their `I/tflite (pid):` prefixes).

    The timed runs' statistics are the `count=...` line after the last "Running benchmark for at least N iterations"
    line (the earlier one belongs to warm-up). Raises EdgekitError when the summary line is absent (the tool
    failed; its last error line is quoted)."""
    m = _TIMINGS.search(text)
    if m is None:
        lines = [ln.strip() for ln in text.splitlines()]
        errors = [ln for ln in lines if "ERROR" in ln] or [ln for ln in lines if "failed" in ln.lower()]
        detail = errors[-1][:200] if errors else (text.strip().splitlines()[-1][:200] if text.strip() else "no output")
        raise EdgekitError(f"benchmark_model printed no 'Inference timings' summary ({detail})",
                           "run it by hand with the same flags to see why (a delegate that failed, a bad --graph)")
    init, first, warm, avg = (float(x) / 1000.0 for x in m.groups())
    out = BenchmarkModelOutput(init_ms=init, first_ms=first, warmup_avg_ms=warm, inference_avg_ms=avg)
    starts = [r.end() for r in _RUNNING.finditer(text)]
    sections = [text[s:e] for s, e in zip(starts, starts[1:] + [m.start()], strict=False)]
    stats = [_STATS.search(sec) for sec in sections]
    if stats and stats[-1] is not None:
        last = stats[-1]
        d = _stats(last.group(2))
        out.count = int(last.group(1))
        out.std_ms = d["std"] / 1000.0 if "std" in d else None
        out.min_ms = d["min"] / 1000.0 if "min" in d else None
        out.max_ms = d["max"] / 1000.0 if "max" in d else None
        out.median_ms = d["median"] / 1000.0 if "median" in d else None
        out.p5_ms = d["p5"] / 1000.0 if "p5" in d else None
        out.p95_ms = d["p95"] / 1000.0 if "p95" in d else None
    if len(stats) >= 2 and stats[-2] is not None:
        out.warmup_count = int(stats[-2].group(1))
    if (mm := _MEMORY.search(text)) is not None:
        out.init_mb, out.overall_mb = float(mm.group(1)), float(mm.group(2))
    if (pk := _PEAK.search(text)) is not None:
        out.peak_mb = float(pk.group(1))
    if (sz := _SIZE.search(text)) is not None:
        out.model_size_mb = float(sz.group(1))
    return out


def parse_odpm(text: str) -> dict[str, int]:
    """Rails -> cumulative energy (µWs = µJ) from the concatenated energy_value files of the ODPM iio devices."""
    rails: dict[str, int] = {}
    for m in _ODPM_LINE.finditer(text):
        rails[m.group("rail")] = int(m.group("value"))
    return rails


def benchmark_model_args(binary: str, graph: str, config: Any) -> list[str]:
    """benchmark_model's command line for a BenchConfig (flags from tensorflow/lite/tools/benchmark/README.md)."""
    args = [binary, f"--graph={graph}", f"--warmup_runs={config.warmup}", f"--num_runs={config.runs}",
            f"--min_secs={config.min_time_s:g}", f"--max_secs={config.max_time_s:g}"]
    if config.threads:
        args.append(f"--num_threads={config.threads}")
    provider = (config.provider or "").lower()
    if provider in ("gpu", "nnapi", "xnnpack"):
        args.append(f"--use_{provider}=true")
    return args


def latency_summary_from(out: BenchmarkModelOutput) -> dict[str, Any]:
    """A LatencySummary-shaped dict from the tool's aggregates; figures it does not print are None (not 0)."""
    n = out.count or 0
    mean = out.inference_avg_ms
    std = out.std_ms
    return {"n": n, "mean": mean, "std": std, "min": out.min_ms, "max": out.max_ms, "p50": out.median_ms,
            "p90": None, "p95": out.p95_ms, "p99": None, "cv": (std / mean) if std is not None and mean else None,
            "mad": None, "ci_median": (None, None), "ci_level": 0.95, "outliers": None,
            "total_s": mean * n / 1000.0 if n else None}


class AdbTransport(Transport):
    kind = "adb"
    provenance = "measured"

    def __init__(self, target: str, spec: TransportSpec, adb_host: str = "127.0.0.1", adb_port: int = 5037) -> None:
        super().__init__(target)
        self.spec = spec
        self.adb_host, self.adb_port = adb_host, adb_port
        self._device: Any = None

    @property
    def address(self) -> str:
        return f"adb:{self.spec.serial or 'default'}@{self.adb_host}:{self.adb_port}"

    def device(self) -> Any:
        """The adbutils device, or one clear error: no adb server, no device, several devices."""
        if self._device is not None:
            return self._device
        import socket

        import adbutils

        # Probe the server ourselves: adbutils would otherwise spawn an adb daemon as a side effect.
        try:
            socket.create_connection((self.adb_host, self.adb_port), timeout=min(self.spec.connect_timeout_s, 3.0)
                                     ).close()
        except OSError as exc:
            raise DeviceUnreachableError(
                f"target {self.target}: no adb server answers at {self.adb_host}:{self.adb_port} "
                f"({exc.strerror or exc})",
                "install Android platform-tools, run `adb start-server`, plug the phone in with USB debugging on "
                "(`adb devices` must list it)") from exc
        client = adbutils.AdbClient(host=self.adb_host, port=self.adb_port, socket_timeout=self.spec.connect_timeout_s)
        try:
            devices = client.device_list()
        except (adbutils.AdbError, OSError) as exc:
            raise DeviceUnreachableError(
                f"target {self.target}: no adb server answers at {self.adb_host}:{self.adb_port} ({exc})",
                "install Android platform-tools and run `adb start-server`, then plug the phone in with USB "
                "debugging on") from exc
        serials = [d.serial for d in devices]
        if self.spec.serial:
            if self.spec.serial not in serials:
                raise DeviceUnreachableError(f"target {self.target}: device {self.spec.serial} is not attached "
                                             f"(attached: {', '.join(serials) or 'none'})",
                                             "check the cable and `adb devices`, or pass the right --serial")
            self._device = client.device(self.spec.serial)
        elif len(serials) == 1:
            self._device = client.device(serials[0])
        elif not serials:
            raise DeviceUnreachableError(f"target {self.target}: no Android device is attached to adb",
                                         "plug the phone in, enable USB debugging and accept the prompt; "
                                         "`adb devices` must list it")
        else:
            raise EdgekitError(f"target {self.target}: several Android devices are attached ({', '.join(serials)})",
                               "pass --serial to pick one")
        return self._device

    def _shell(self, argv: list[str] | str, timeout: float) -> str:
        import adbutils

        cmd = argv if isinstance(argv, str) else shlex.join(argv)
        try:
            return str(self.device().shell(cmd, timeout=timeout))
        except adbutils.AdbTimeout as exc:
            raise AgentFailedError(f"target {self.target}: {cmd.split()[0]} did not finish within {timeout:g} s",
                                   "raise [transport] timeout_s or lower --runs") from exc
        except (adbutils.AdbError, ConnectionError, OSError) as exc:
            raise DeviceDisconnectedError(f"target {self.target}: the adb connection dropped ({exc})",
                                          "reconnect the phone and re-run; completed results are kept") from exc

    def read_odpm(self) -> dict[str, int] | None:
        text = self._shell(f"cat {ODPM_GLOB} 2>/dev/null", 10)
        rails = parse_odpm(text)
        return rails or None

    def check(self) -> CheckReport:
        dev = self.device()
        props = {k: self._shell(["getprop", k], 10).strip() for k in
                 ("ro.product.model", "ro.build.version.release", "ro.soc.model", "ro.product.cpu.abi")}
        runtimes: dict[str, str | None] = {}
        notes = []
        if self.spec.benchmark_binary:
            listing = self._shell(f"ls {shlex.quote(self.spec.benchmark_binary)} 2>&1", 10)
            runtimes["benchmark_model"] = "present" if "No such file" not in listing else None
        python = self._shell(f"command -v {shlex.quote(self.spec.python)} 2>/dev/null", 10).strip()
        runtimes["python"] = python or None
        rails = self.read_odpm()
        notes.append(f"ODPM rails readable: {', '.join(sorted(rails))}" if rails else
                     "ODPM rails not readable (energy will be modeled)")
        return CheckReport(target=self.target, transport=self.kind, address=f"adb:{dev.serial}",
                           host={"model": props["ro.product.model"], "android": props["ro.build.version.release"],
                                 "soc": props["ro.soc.model"], "abi": props["ro.product.cpu.abi"]},
                           runtimes=runtimes, notes=notes)

    def _push(self, local: Path, remote: str) -> None:
        import adbutils

        try:
            self._shell(["mkdir", "-p", posixpath.dirname(remote)], 10)
            self.device().sync.push(str(local), remote)
        except adbutils.AdbError as exc:
            raise DeviceDisconnectedError(f"target {self.target}: pushing {local.name} failed ({exc})",
                                          "check free space in the workdir and the connection") from exc

    def run_bench(self, job: Any, config: Any, return_outputs: bool = False) -> dict[str, Any]:
        remote = posixpath.join(self.spec.workdir, (job.sha256 or "x")[:16], Path(job.path).name)
        self._push(Path(job.path), remote)
        if self.spec.benchmark_binary and job.format == "tflite":
            return self._run_benchmark_model(job, config, remote)
        agent = posixpath.join(self.spec.workdir, "edgekit_agent.py")
        self._push(AGENT_PATH, agent)
        stdout = self._shell([self.spec.python, agent, *agent_args(job, config, remote, return_outputs)],
                             self.spec.timeout_s)
        result = parse_agent_output(stdout, f"target {self.target}", None, None, stdout)
        result["provenance"] = self.provenance
        result["transport"] = {"kind": self.kind, "address": self.address}
        return result

    def _run_benchmark_model(self, job: Any, config: Any, remote: str) -> dict[str, Any]:
        idle_s = max(config.idle_s, 0.5)
        e0 = self.read_odpm()
        if e0 is not None:
            time.sleep(idle_s)
        e1 = self.read_odpm() if e0 is not None else None
        t0 = time.monotonic()
        argv = benchmark_model_args(self.spec.benchmark_binary or "benchmark_model", remote, config)
        text = self._shell(shlex.join(argv) + " 2>&1", self.spec.timeout_s)
        wall = time.monotonic() - t0
        e2 = self.read_odpm() if e0 is not None else None
        out = parse_benchmark_model(text)
        payload: dict[str, Any] = {
            "latency_summary": latency_summary_from(out), "load_ms": out.init_ms, "first_ms": out.first_ms,
            "warmup_ms": [], "samples_ms": [], "benchmark_model": out.to_dict(),
            "describe": {"runtime": "tflite benchmark_model", "version": None, "threads": config.threads,
                         "provider": config.provider or "default"},
            "host": {}, "provenance": self.provenance,
            "transport": {"kind": self.kind, "address": self.address},
        }
        if out.overall_mb is not None:
            payload["memory"] = {"rss_before_load": None, "rss_after_load": None,
                                 "peak_rss_load": int(out.init_mb * 2**20) if out.init_mb is not None else None,
                                 "peak_rss_inference": int((out.peak_mb or out.overall_mb) * 2**20),
                                 "peak_rss_scope": "tool-delta", "rss_after_runs": None}
        if e0 is not None and e1 is not None and e2 is not None:
            idle_w = (sum(e1.values()) - sum(e0.values())) / 1e6 / idle_s
            active_j = (sum(e2.values()) - sum(e1.values())) / 1e6
            n = (out.count or 0) + (out.warmup_count or 0) + 1
            payload["energy"] = {
                "provenance": "measured", "j_per_inference": (active_j - idle_w * wall) / max(n, 1),
                "error_band_j": None, "source": "odpm",
                "assumption": f"ODPM rails over the whole benchmark_model run ({n} inferences incl. warm-up and model "
                              f"init), idle {idle_w:.3f} W subtracted", "inferences": n, "window_s": wall,
                "idle_w": idle_w}
        return payload
