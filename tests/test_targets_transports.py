"""The command, adb and emulate transports up to the point where a real device is needed, and the agent itself."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.bench.jobs import job_for_file
from edgekit.bench.runner import BenchConfig
from edgekit.errors import DeviceUnreachableError, EdgekitError
from edgekit.store import ResultsStore
from edgekit.targets.profile import TransportSpec, load_target
from edgekit.targets.remote import DeviceOptions, bench_on_target, make_transport
from edgekit.targets.transports.adb import (
    AdbTransport,
    benchmark_model_args,
    latency_summary_from,
    parse_benchmark_model,
    parse_odpm,
)
from edgekit.targets.transports.base import AGENT_PATH, AgentFailedError
from edgekit.targets.transports.command import CommandTransport, substitute

sys.path.insert(0, str(Path(__file__).parent))
from test_ssh import tiny_onnx  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
NPU = [sys.executable, str(FIXTURES / "npu_command.py"), "--model", "{artifact}"]
FAST = BenchConfig(warmup=1, runs=5, min_time_s=0.0, energy="none")


@pytest.fixture
def job(tmp_path):
    return job_for_file(tiny_onnx(tmp_path / "mlp.onnx"))


# -- command transport ----------------------------------------------------------------------------------------------

def test_command_check_and_bench(job, tmp_path):
    t = CommandTransport("npu", TransportSpec(kind="command", command=tuple(NPU)))
    report = t.check()
    assert report.host["name"] == "fake-npu" and report.runtimes["onnxruntime"]
    store = ResultsStore(tmp_path / "s.db")
    run = bench_on_target([job], "npu", dataclasses.replace(FAST, energy="auto"),
                          DeviceOptions(command=[*NPU, "--energy", "0.05"]), store=store)
    (res,) = run.results
    assert run.mode == "measured" and res.ok and res.latency.n == 5
    assert res.runtime["runtime"] == "fake-npu" and res.runtime["provider"] == "npu0"
    assert res.energy.provenance == "measured" and res.energy.j_per_inference == pytest.approx(0.01)
    assert res.memory.peak_rss_inference > 0
    assert store.get_run(res.run_id).target == "npu"


def test_command_failures_are_one_line(job):
    def run(*extra: str, timeout: float = 60.0) -> EdgekitError:
        t = CommandTransport("npu", TransportSpec(kind="command", command=(*NPU, *extra), timeout_s=timeout))
        with pytest.raises(EdgekitError) as err:
            t.run_bench(job, FAST)
        return err.value

    assert "NPU compiler rejected operator TopK" in run("--fail").one_line()
    crash = run("--crash")
    assert isinstance(crash, AgentFailedError) and "SIGSEGV" in crash.problem
    assert "timed out" in run("--sleep", "10", timeout=1.0).problem
    missing = CommandTransport("npu", TransportSpec(kind="command", command=("/nonexistent/npu-tool",)))
    with pytest.raises(DeviceUnreachableError, match="does not exist"):
        missing.check()


def test_command_placeholders_are_per_argument():
    argv = substitute(["tool", "--model={artifact}", "{format}"], {"artifact": "a b;rm -rf x", "format": "onnx"})
    assert argv == ["tool", "--model=a b;rm -rf x", "onnx"]
    with pytest.raises(EdgekitError, match="unknown placeholder"):
        substitute(["tool", "{nosuch}"], {})


def test_generic_npu_without_its_command_is_predicted_or_explained():
    transport, why = make_transport(load_target("npu"))
    assert transport is None and "edgekit-npu-bench" in why


# -- adb: the parser on benchmark_model's real output format, ODPM, and no device ------------------------------------

# The shape of TFLite benchmark_model's log (tensorflow/lite/tools/benchmark): warm-up and timed statistics lines,
# then the summary; newer builds add p5/median/p95 and the periodic peak-memory line.
BENCHMARK_MODEL_LOG = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Graph: [/data/local/tmp/edgekit/mobilenet_v2.tflite]
INFO: Num threads: [4]
INFO: Loaded model /data/local/tmp/edgekit/mobilenet_v2.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: The input model file size (MB): 13.9786
INFO: Initialized session in 6.395ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=153 first=2761 curr=2703 min=2630 max=18080 avg=3243.58 std=2165 p5=2630 median=2761 p95=5331

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=337 first=2881 curr=2703 min=2605 max=20356 avg=2942.27 std=1190 p5=2647 median=2781 p95=3169

INFO: Inference timings in us: Init: 6395, First inference: 2761, Warmup (avg): 3243.58, Inference (avg): 2942.27
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=39.4531 overall=40.8281
INFO: Overall peak memory footprint (MB) via periodic monitoring: 44.125
"""

# The same tool's summary as the Android benchmark app writes it to logcat (older build: no percentiles,
# scientific notation for large values).
LOGCAT = """\
07-08 15:34:23.010 I/tflite  ( 5395): Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
07-08 15:34:23.010 I/tflite  ( 5395): count=1 curr=2732148
07-08 15:34:23.011 I/tflite  ( 5395): Running benchmark for at least 10 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
07-08 15:34:26.201 I/tflite  ( 5395): count=10 first=2653894 curr=2709263 min=2640862 max=3025403 avg=2.71985e+06 std=105101
07-08 15:34:26.202 I/tflite  ( 5395): Inference timings in us: Init: 458883, First inference: 2732148, Warmup (avg): 2.73215e+06, Inference (avg): 2.71985e+06
07-08 15:34:26.202 I/tflite  ( 5395): Memory footprint delta from the start of the tool (MB): init=286.73 overall=337
"""


def test_parse_benchmark_model_output():
    out = parse_benchmark_model(BENCHMARK_MODEL_LOG)
    assert out.init_ms == pytest.approx(6.395) and out.first_ms == pytest.approx(2.761)
    assert out.warmup_avg_ms == pytest.approx(3.24358) and out.inference_avg_ms == pytest.approx(2.94227)
    assert out.count == 337 and out.warmup_count == 153  # the timed section, not the warm-up one
    assert out.median_ms == pytest.approx(2.781) and out.p95_ms == pytest.approx(3.169)
    assert out.min_ms == pytest.approx(2.605) and out.max_ms == pytest.approx(20.356)
    assert out.std_ms == pytest.approx(1.190)
    assert (out.init_mb, out.overall_mb, out.peak_mb) == (39.4531, 40.8281, 44.125)
    assert out.model_size_mb == pytest.approx(13.9786)
    summary = latency_summary_from(out)
    assert summary["p50"] == pytest.approx(2.781) and summary["p90"] is None and summary["n"] == 337


def test_parse_benchmark_model_logcat_and_scientific_notation():
    out = parse_benchmark_model(LOGCAT)
    assert out.inference_avg_ms == pytest.approx(2719.85) and out.warmup_avg_ms == pytest.approx(2732.15)
    assert out.count == 10 and out.median_ms is None and out.std_ms == pytest.approx(105.101)
    assert (out.init_mb, out.overall_mb) == (286.73, 337.0)


def test_parse_benchmark_model_failure_quotes_the_error():
    text = ("INFO: Created TensorFlow Lite delegate for GPU.\nERROR: Following operations are not supported by GPU "
            "delegate:\nERROR: Failed to apply GPU delegate.\nBenchmarking failed.\n")
    with pytest.raises(EdgekitError, match="Failed to apply GPU delegate"):
        parse_benchmark_model(text)


def test_benchmark_model_args_are_the_tool_flags():
    cfg = dataclasses.replace(FAST, threads=4, provider="gpu", warmup=3, runs=20, min_time_s=1.0, max_time_s=60)
    args = benchmark_model_args("/data/local/tmp/benchmark_model", "/data/local/tmp/m.tflite", cfg)
    assert args == ["/data/local/tmp/benchmark_model", "--graph=/data/local/tmp/m.tflite", "--warmup_runs=3",
                    "--num_runs=20", "--min_secs=1", "--max_secs=60", "--num_threads=4", "--use_gpu=true"]


def test_parse_odpm_rails():
    # /sys/bus/iio/devices/iio:device0/energy_value on a Pixel 6 (two devices concatenated by `cat`)
    text = ("t=123456789\nCH0(T=123456789)[S10M_VDD_TPU], 3311112\nCH1(T=123456789)[VSYS_PWR_MODEM], 15110\n"
            "t=123456790\nCH0(T=123456790)[S2M_VDD_CPUCL2], 88123456\nCH1(T=123456790)[S3M_VDD_CPUCL1], 1200\n")
    rails = parse_odpm(text)
    assert rails == {"S10M_VDD_TPU": 3311112, "VSYS_PWR_MODEM": 15110, "S2M_VDD_CPUCL2": 88123456,
                     "S3M_VDD_CPUCL1": 1200}
    assert parse_odpm("") == {}


def test_adb_without_server_is_one_clear_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = AdbTransport("pixel6", TransportSpec(kind="adb"), adb_port=port)
    with pytest.raises(DeviceUnreachableError, match="no adb server answers") as err:
        t.check()
    assert "adb start-server" in err.value.fix


@pytest.mark.device
def test_adb_real_device():
    if shutil.which("adb") is None:
        pytest.skip("no adb binary on PATH: install Android platform-tools and plug in a phone")
    t = AdbTransport("pixel6", TransportSpec(kind="adb"))
    try:
        report = t.check()
    except DeviceUnreachableError as exc:
        pytest.skip(f"no Android device: {exc.problem}")
    assert report.host["model"]


def test_pixel6_without_phone_falls_back_to_prediction(job, tmp_path):
    run = bench_on_target([job], "pixel6", FAST, DeviceOptions(), store=ResultsStore(tmp_path / "s.db"))
    assert run.mode == "predicted" and run.predictions[0].provenance == "predicted"
    assert "adb" in run.notes[0]


# -- the agent ---------------------------------------------------------------------------------------------------

def test_agent_matches_the_bench_engine_inputs(job):
    """The agent's seeded inputs are exactly TensorSpec.random's, so a device sees what a local run sees."""
    # the package module, not edgekit/targets/ on sys.path (its profile.py would shadow the stdlib's)
    from edgekit.targets import agent

    rng = np.random.default_rng(7)
    for spec in job.inputs + [__import__("edgekit.specs", fromlist=["TensorSpec"]).TensorSpec(
            "ids", (1, 8), "int64", low=0, high=100)]:
        a = agent.make_feeds([spec.to_dict()], 7)[spec.name]
        b = spec.random(np.random.default_rng(7))
        assert a.dtype == b.dtype and np.array_equal(a, b)
    del rng


def test_agent_runs_with_only_stdlib_numpy_and_runtime(job, tmp_path):
    """Run the agent file outside the package, with edgekit not importable."""
    copy = tmp_path / "agent.py"
    copy.write_text(AGENT_PATH.read_text())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    argv = [sys.executable, "-I", str(copy), "bench", "--model", str(job.path), "--format", "onnx", "--inputs",
            json.dumps([s.to_dict() for s in job.inputs]), "--runs", "3", "--warmup", "1", "--min-time", "0",
            "--return-outputs"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    final = json.loads(proc.stdout.strip().splitlines()[-1])
    assert final["event"] == "result" and len(final["samples_ms"]) == 3 and final["outputs"][0]["shape"] == [1, 4]
    proc = subprocess.run([*argv[:5], "/nonexistent.onnx", *argv[6:]], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and json.loads(proc.stdout.strip())["event"] == "error"


# -- emulation (qemu-aarch64-static + arm64 sysroot) --------------------------------------------------------------

def _emulation_cache() -> Path:
    return Path(os.environ.get("EDGEKIT_EMULATE_CACHE") or Path.home() / ".cache" / "edgekit" / "emulate" / "aarch64")


@pytest.mark.emulate
def test_emulated_arm64_run_matches_this_host(job, tmp_path, monkeypatch):
    from edgekit.targets.emulate import EmulateTransport, status

    ready, why = status(_emulation_cache())
    if not ready:
        pytest.skip(f"arm64 emulation not prepared: {why}")
    monkeypatch.setenv("EDGEKIT_EMULATE_CACHE", str(_emulation_cache()))
    t = EmulateTransport("rpi4", _emulation_cache())
    report = t.check()
    assert report.host["machine"] == "aarch64" and report.runtimes["onnxruntime"].startswith("1.24")
    store = ResultsStore(tmp_path / "s.db")
    run = bench_on_target([job], "rpi4", FAST, DeviceOptions(emulate=True), store=store)
    (res,) = run.results
    assert run.mode == "emulated" and res.ok and res.provenance == "emulated" and res.energy is None
    assert res.env.machine == "aarch64"
    assert res.runtime["parity"]["verdict"] == "pass" and res.runtime["parity"]["max_abs"] < 1e-4
    assert store.get_run(res.run_id).provenance == "emulated"


def test_emulation_absent_is_explained(job, tmp_path):
    from edgekit.targets.emulate import EmulateTransport

    t = EmulateTransport("rpi4", tmp_path / "no-cache")
    with pytest.raises(EdgekitError, match="make emulate-setup|qemu-aarch64-static is not installed"):
        t.run_bench(job, FAST)
