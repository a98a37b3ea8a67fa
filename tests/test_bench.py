"""`edgekit bench` end to end on real artifacts (tiny ONNX/TFLite files made here with torch.onnx.export and
litert_torch.convert): the isolated child, timing rules, memory, energy, the store, and every bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from edgekit.bench.inputs import format_for_path, onnx_input_specs, tflite_input_specs
from edgekit.bench.jobs import resolve_jobs
from edgekit.bench.runner import BenchConfig, BenchJob, run_benchmark
from edgekit.bench.stats import NoiseWarning
from edgekit.errors import EdgekitError
from edgekit.export.artifact import Artifact, Manifest, path_size
from edgekit.files import file_sha256
from edgekit.specs import TensorSpec
from edgekit.store import ResultsStore

FAST = dict(warmup=2, runs=5, min_time_s=0.05, idle_s=0.05)


class TinyMLP:
    @staticmethod
    def build(width: int = 32, n_in: int = 16):
        import torch

        class MLP(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.l1 = torch.nn.Linear(n_in, width)
                self.l2 = torch.nn.Linear(width, 4)

            def forward(self, x):
                return self.l2(torch.relu(self.l1(x)))

        torch.manual_seed(0)
        return MLP().eval(), (torch.randn(1, n_in),)


def _export_onnx(path: Path, width: int = 32) -> Path:
    import torch

    model, args = TinyMLP.build(width)
    torch.onnx.export(model, args, str(path), dynamo=True, input_names=["x"], output_names=["y"],
                      external_data=False)
    return path


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    """tiny.onnx, tiny.tflite, big.onnx (32 MB of weights) and an export dir with a manifest listing the tiny two."""
    import litert_torch

    d = tmp_path_factory.mktemp("artifacts")
    out = {"onnx": _export_onnx(d / "tiny.onnx"), "big": _export_onnx(d / "big.onnx", width=2**19)}
    model, args = TinyMLP.build()
    litert_torch.convert(model, args).export(str(d / "tiny.tflite"))
    out["tflite"] = d / "tiny.tflite"
    exp = d / "export"
    exp.mkdir()
    spec = TensorSpec("x", (1, 16)).to_dict()
    manifest = Manifest(model="tiny-mlp", source="tests", edgekit_version="test", created="now", inputs=[spec],
                        outputs=["y"])
    for fmt in ("onnx", "tflite"):
        target = exp / f"tiny-mlp.fp32.{fmt}"
        target.write_bytes(out[fmt].read_bytes())
        manifest.upsert(Artifact(model="tiny-mlp", format=fmt, precision="fp32", path=target.name,
                                 size_bytes=path_size(target), sha256=file_sha256(target), inputs=[spec]))
    manifest.upsert(Artifact(model="tiny-mlp", format="coreml", precision="fp32", path=None, status="failed",
                             error="coremltools said no"))
    manifest.write(exp)
    out["export"] = exp
    return out


def cli(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# -- the library --------------------------------------------------------------------------------------------------


def test_onnx_benchmark_measures_everything_and_stores_it(artifacts, tmp_path):
    job = resolve_jobs(str(artifacts["onnx"]))[0]
    assert (job.format, job.runtime, job.sha256) == ("onnx", "onnxruntime", file_sha256(artifacts["onnx"]))
    events: list[dict] = []
    with ResultsStore() as store:
        r = run_benchmark(job, BenchConfig(**FAST, threads=1), store=store, on_event=events.append)
        assert r.status == "ok", r.error
        run = store.get_run(r.run_id)
        assert run.status == "ok" and run.provenance == "measured"
        assert store.samples(r.run_id) == pytest.approx(r.samples_ms)
        assert store.samples(r.run_id, "first") == pytest.approx([r.first_ms])
        assert len(store.samples(r.run_id, "warmup")) == 2
    lat = r.latency
    assert lat.n == len(r.samples_ms) >= 5 and sum(r.samples_ms) / 1000 >= 0.9 * 0.05
    assert lat.min <= lat.p50 <= lat.p90 <= lat.p95 <= lat.p99 <= lat.max
    assert lat.ci_median[0] <= lat.p50 <= lat.ci_median[1]
    assert r.load_ms > 0 and r.first_ms > 0
    mem = r.memory
    assert mem.provenance == "measured" and mem.rss_before_load > 10 * 2**20
    assert mem.peak_rss_inference >= mem.rss_after_runs * 0.9 and mem.uss_after_runs
    assert r.runtime["runtime"] == "onnxruntime" and r.runtime["threads"] == 1
    env = r.env
    assert env.cpu_model and env.cpus_used and env.runtime_version and env.threads == 1
    assert env.provider == "CPUExecutionProvider" and env.artifact_sha256 == job.sha256
    assert env.edgekit_version and env.host_os
    assert r.energy.provenance == "modeled" and r.energy.j_per_inference > 0 and r.energy.assumption
    assert r.harness["timer_overhead_ns"] < 5_000 and r.harness["loop_overhead_ns"] < 20_000
    phases = [e["phase"] for e in events if e["event"] == "phase"]
    assert phases == ["load", "first", "warmup", "timed"]
    assert {e["pid"] for e in events} != {os.getpid()}  # the model ran in another process


def test_tflite_benchmark(artifacts):
    specs = tflite_input_specs(artifacts["tflite"])
    assert [(s.name, s.shape, s.dtype) for s in specs] == [("args_0", (1, 16), "float32")]
    r = run_benchmark(resolve_jobs(str(artifacts["tflite"]))[0], BenchConfig(**FAST))
    assert r.status == "ok", r.error
    assert r.runtime["runtime"] == "ai-edge-litert" and r.latency.n >= 5


def test_runs_and_time_are_both_minimums_and_max_time_caps(artifacts):
    job = resolve_jobs(str(artifacts["onnx"]))[0]
    by_count = run_benchmark(job, BenchConfig(warmup=0, runs=300, min_time_s=0.0, energy="none"))
    assert by_count.latency.n >= 300 and by_count.energy is None
    by_time = run_benchmark(job, BenchConfig(warmup=0, runs=3, min_time_s=0.4, energy="none"))
    assert by_time.harness["timed_wall_s"] >= 0.4 and by_time.latency.n > 3
    capped = run_benchmark(job, BenchConfig(warmup=0, runs=10**8, min_time_s=0.0, max_time_s=0.2, energy="none"))
    assert capped.harness["timed_wall_s"] < 1.5 and capped.latency.n < 10**8
    assert NoiseWarning.TIME_CAP_REACHED in {w.kind for w in capped.warnings}


def test_each_model_has_its_own_process_and_memory(artifacts):
    big = run_benchmark(resolve_jobs(str(artifacts["big"]))[0], BenchConfig(**FAST, energy="none"))
    tiny = run_benchmark(resolve_jobs(str(artifacts["onnx"]))[0], BenchConfig(**FAST, energy="none"))
    assert big.ok and tiny.ok
    weights = artifacts["big"].stat().st_size
    assert weights > 30 * 2**20
    assert big.memory.rss_after_load - big.memory.rss_before_load > 0.8 * weights
    assert big.memory.peak_rss_load > big.memory.rss_before_load + 0.8 * weights
    assert tiny.memory.rss_after_load - tiny.memory.rss_before_load < 0.25 * weights  # nothing left over from big
    assert tiny.memory.peak_rss_inference < big.memory.peak_rss_inference - 0.5 * weights
    assert big.runtime and tiny.runtime  # each loaded in its own child; the parent never creates a session


def test_child_killed_mid_way_is_one_clear_line(artifacts):
    job = resolve_jobs(str(artifacts["onnx"]))[0]

    def kill_when_timing(ev: dict) -> None:
        if ev["event"] == "progress" and ev["phase"] == "timed":
            os.kill(ev["pid"], signal.SIGKILL)

    with ResultsStore() as store:
        r = run_benchmark(job, BenchConfig(warmup=0, runs=10**8, min_time_s=30, energy="none"), store=store,
                          on_event=kill_when_timing)
        assert r.status == "killed"
        assert "SIGKILL" in r.error and "during the timed runs" in r.error and "out-of-memory" in r.error
        assert "\n" not in r.error
        assert store.get_run(r.run_id).status == "killed"


def test_coreml_is_skipped_not_failed(tmp_path):
    if sys.platform == "darwin":
        pytest.skip("on macOS CoreML runs for real")
    pkg = tmp_path / "m.mlpackage"
    pkg.mkdir()
    job = BenchJob(model="m", format="coreml", precision="fp32", path=pkg, inputs=[TensorSpec("x", (1, 4))],
                   runtime="coreml")
    r = run_benchmark(job, BenchConfig(**FAST))
    assert r.status == "skipped" and "CoreML runs only on macOS" in r.error


def test_manifest_dir_benches_every_ok_artifact(artifacts):
    jobs = resolve_jobs(str(artifacts["export"]))
    assert [(j.format, j.precision, j.skip_reason is None) for j in jobs] == \
        [("coreml", "fp32", False), ("onnx", "fp32", True), ("tflite", "fp32", True)]
    assert jobs[1].model == "tiny-mlp" and jobs[1].inputs[0].shape == (1, 16)
    only = resolve_jobs(str(artifacts["export"] / "manifest.json"), formats=["tflite"])
    assert [j.format for j in only] == ["tflite"]
    with pytest.raises(EdgekitError, match="no exported artifact matching"):
        resolve_jobs(str(artifacts["export"]), precisions=["int4"])


def test_artifact_beside_its_manifest_takes_its_record(artifacts):
    job = resolve_jobs(str(artifacts["export"] / "tiny-mlp.fp32.onnx"))[0]
    assert (job.model, job.precision) == ("tiny-mlp", "fp32")


def test_format_from_suffix():
    assert format_for_path(Path("a.onnx")) == "onnx" and format_for_path(Path("a.TFLITE")) == "tflite"
    assert format_for_path(Path("a.pt2")) == "torch" and format_for_path(Path("a.mlpackage")) == "coreml"
    assert format_for_path(Path("model.bin"), "onnx") == "onnx"
    with pytest.raises(EdgekitError, match="cannot tell the format"):
        format_for_path(Path("model.bin"))
    with pytest.raises(EdgekitError, match="is a tflite artifact but --format onnx"):
        format_for_path(Path("m.tflite"), "onnx")


def test_declared_inputs_and_dtype_of_same_kind(artifacts):
    assert [(s.name, s.shape, s.dtype) for s in onnx_input_specs(artifacts["onnx"])] == [("x", (1, 16), "float32")]
    job = resolve_jobs(str(artifacts["onnx"]), input_options=["x:1x16:float16"])[0]
    assert job.inputs[0].dtype == "float32"  # same kind: the model's dtype is fed, no per-run conversion
    with pytest.raises(EdgekitError, match="is int64 but tiny.onnx expects float32"):
        resolve_jobs(str(artifacts["onnx"]), input_options=["x:1x16:int64"])


# -- the command line: happy path and every bad input ----------------------------------------------------------


def test_cli_bench_json_and_table(artifacts, tmp_path):
    proc = cli("bench", str(artifacts["onnx"]), "--runs", "5", "--warmup", "1", "--min-time", "0.05", "--json")
    assert proc.returncode == 0, proc.stderr
    [rec] = json.loads(proc.stdout)
    assert rec["status"] == "ok" and rec["provenance"] == "measured" and rec["latency"]["n"] >= 5
    assert rec["energy"]["provenance"] == "modeled" and "samples_ms" not in rec
    with ResultsStore() as store:
        assert store.get_run(rec["run_id"]).status == "ok"
    proc = cli("bench", str(artifacts["export"]), "--runs", "3", "--min-time", "0.05", "--threads", "1", "--wide")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for text in ("p50", "p99", "mean ± σ", "peak RSS MB", "energy mJ/inf", "measured", "modeled", "tiny-mlp",
                 "onnx/fp32", "tflite/fp32", "skipped", "export failed: coremltools said no"):
        assert text in out, text


def test_cli_unknown_format(artifacts):
    assert_one_line_error(cli("bench", str(artifacts["onnx"]), "--format", "keras"), "unknown artifact format")


def test_cli_unknown_suffix(tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(b"\x00" * 64)
    assert_one_line_error(cli("bench", str(f)), "cannot tell the format of model.bin", "--format")


def test_cli_missing_artifact(tmp_path):
    assert_one_line_error(cli("bench", str(tmp_path / "nope.onnx")), "does not exist")


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_cli_truncated_artifact(artifacts, tmp_path, fmt):
    data = artifacts[fmt].read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: len(data) // 3])
    assert_one_line_error(cli("bench", str(cut)), str(cut), "truncated or corrupt")


def test_cli_truncated_artifact_in_manifest_keeps_the_others(artifacts, tmp_path):
    import shutil

    exp = tmp_path / "export"
    shutil.copytree(artifacts["export"], exp)
    data = (exp / "tiny-mlp.fp32.onnx").read_bytes()
    (exp / "tiny-mlp.fp32.onnx").write_bytes(data[:100])
    proc = cli("bench", str(exp), "--runs", "3", "--min-time", "0.05")
    assert proc.returncode == 2
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")] == [
        next(ln for ln in proc.stderr.splitlines() if "tiny-mlp onnx/fp32" in ln)]
    with ResultsStore() as store:
        status = {r.format: r.status for r in store.list_runs()}
    assert status == {"onnx": "failed", "tflite": "ok", "coreml": "skipped"}


def test_cli_shape_mismatch(artifacts):
    assert_one_line_error(cli("bench", str(artifacts["onnx"]), "--input", "x:1x8"),
                          "input 'x' has shape 1x8 but tiny.onnx expects x:1x16:float32")
    assert_one_line_error(cli("bench", str(artifacts["onnx"]), "--input", "x:1x16", "--input", "y:1x2"),
                          "takes 1 inputs")


def test_cli_shape_rejected_by_the_runtime(artifacts, tmp_path):
    """A .pt2-like case where edgekit cannot read the signature first: the child reports the runtime's refusal."""
    data = artifacts["onnx"].read_bytes()
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(data)
    # the ONNX check is bypassed by giving a format edgekit cannot pre-read; feed the wrong shape through the runner
    job = BenchJob(model="m", format="onnx", precision="fp32", path=renamed, inputs=[TensorSpec("x", (1, 3))],
                   runtime="onnxruntime")
    with ResultsStore() as store:
        r = run_benchmark(job, BenchConfig(**FAST), store=store)
        assert r.status == "failed" and "the model rejected the inputs x:1x3:float32" in r.error
        assert store.get_run(r.run_id).status == "failed"


def test_cli_runtime_not_installed(artifacts, tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "onnxruntime.py").write_text("raise ImportError('No module named onnxruntime (hidden by the test)')\n")
    proc = cli("bench", str(artifacts["onnx"]), "--runs", "3", "--min-time", "0.05",
               env={"PYTHONPATH": f"{shim}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert_one_line_error(proc, "runtime onnxruntime is not installed", "pip install onnxruntime")
    with ResultsStore() as store:
        assert [r.status for r in store.list_runs()] == ["failed"]


def test_cli_child_killed_keeps_completed_results(artifacts):
    """onnx completes, then the tflite child is killed mid-way: one line, exit 2, the onnx result stays stored."""
    proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "bench", str(artifacts["export"]), "--runs", "3",
                             "--min-time", "1.5", "--warmup", "0", "--format", "onnx,tflite"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = ResultsStore()
    killed = False
    deadline = time.time() + 120
    try:
        while time.time() < deadline and not killed and proc.poll() is None:
            time.sleep(0.1)
            status = {r.format: r.status for r in store.list_runs()}
            if status.get("onnx") == "ok" and status.get("tflite") == "running":
                children = [c for c in psutil.Process(proc.pid).children()
                            if "edgekit.bench.child" in " ".join(c.cmdline())]
                if children:
                    time.sleep(0.7)
                    children[0].send_signal(signal.SIGKILL)
                    killed = True
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed, "never saw the tflite child"
    assert proc.returncode == 2
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "tiny-mlp tflite/fp32: the benchmark process was killed (SIGKILL)" in errors[0]
    assert "Traceback" not in err and "onnx/fp32" in out  # the table of what completed is still printed
    status = {r.format: r.status for r in store.list_runs()}
    assert status == {"onnx": "ok", "tflite": "killed"}
    store.close()


def test_cli_unknown_target(artifacts):
    # non-local targets run through edgekit/targets (tests/test_ssh.py, tests/test_targets.py); an unknown one is
    # still one line
    assert_one_line_error(cli("bench", str(artifacts["onnx"]), "--target", "nosuch"), "unknown target 'nosuch'")


def test_cli_corrupt_store(artifacts, tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database" * 100)
    assert_one_line_error(cli("bench", str(artifacts["onnx"]), "--db", str(bad)), "is not a readable edgekit database")


def test_feeds_are_seeded(artifacts):
    spec = TensorSpec("x", (1, 16))
    a = spec.random(np.random.default_rng(0))
    assert np.array_equal(a, spec.random(np.random.default_rng(0)))


def test_measured_energy_through_the_child_on_a_fake_powercap(artifacts, tmp_path):
    """The child reads RAPL under sysfs_root; a thread advances the counter like a steady 12 W package, so the
    idle baseline and the active power both come out near 12 W and the energy above idle near 0."""
    import threading

    base = tmp_path / "sys/class/powercap/intel-rapl:0"
    base.mkdir(parents=True)
    (base / "name").write_text("package-0\n")
    (base / "max_energy_range_uj").write_text(str(2**40))
    (base / "energy_uj").write_text("0\n")
    stop = threading.Event()
    t0 = time.perf_counter()

    def tick() -> None:
        while not stop.is_set():
            tmp = base / "energy_uj.tmp"
            tmp.write_text(f"{int((time.perf_counter() - t0) * 12e6)}\n")
            tmp.replace(base / "energy_uj")
            time.sleep(0.002)

    th = threading.Thread(target=tick, daemon=True)
    th.start()
    try:
        job = resolve_jobs(str(artifacts["onnx"]))[0]
        r = run_benchmark(job, BenchConfig(warmup=1, runs=5, min_time_s=0.3, idle_s=0.3, sysfs_root=str(tmp_path)))
    finally:
        stop.set()
        th.join()
    assert r.ok, r.error
    e = r.energy
    assert (e.provenance, e.source) == ("measured", "rapl")
    assert e.idle_w == pytest.approx(12.0, rel=0.3) and e.active_w == pytest.approx(12.0, rel=0.3)
    assert abs(e.j_per_inference) < 0.3 * 12.0 * r.latency.mean / 1000 + e.error_band_j
    assert e.error_band_j is not None and e.error_band_j >= 0


def test_cli_bench_a_model_exports_it_first_then_hits_the_cache(tmp_path):
    model = f"{Path(__file__).parent / 'fixtures' / 'tiny_xattn.py'}:build"
    args = ("bench", model, "--format", "onnx", "--runs", "3", "--min-time", "0.05", "--json")
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    [rec] = json.loads(first.stdout)
    assert rec["status"] == "ok" and rec["format"] == "onnx" and rec["precision"] == "fp32"
    manifest = Manifest.read(Path(os.environ["EDGEKIT_CACHE"]) / "exports" / "tiny_xattn")
    assert manifest.find("onnx").sha256 == rec["env"]["artifact_sha256"]
    second = cli(*args)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)[0]["env"]["artifact_sha256"] == rec["env"]["artifact_sha256"]
    assert Manifest.read(Path(os.environ["EDGEKIT_CACHE"]) / "exports" / "tiny_xattn").find("onnx") \
        .details.get("cache") == "hit"


def test_timed_loop_uses_a_prepared_call_when_the_session_offers_one():
    from edgekit.bench.child import _Events, prepared_call, timed_runs

    calls: list[str] = []

    class Plain:
        def run(self, feeds):
            calls.append("run")

    class Prepared(Plain):
        def prepare(self, feeds):
            return lambda: calls.append("prepared")

    prepared_call(Plain(), {})()
    prepared_call(Prepared(), {})()
    assert calls == ["run", "prepared"]

    class Sink:
        def write(self, _text):
            pass

        def flush(self):
            pass

    samples, wall = timed_runs(lambda: None, 1000, 0.0, 10.0, _Events(Sink()), 100.0)
    assert len(samples) >= 1000 and all(isinstance(s, int) and s >= 0 for s in samples) and wall < 5


def test_cli_unknown_precision_is_refused_not_stored(artifacts):
    """`bench x.onnx --precision abc` stored a run under the made-up precision "abc" (exit 0)."""
    assert_one_line_error(cli("bench", str(artifacts["onnx"]), "--precision", "int9"), "unknown precision 'int9'")
    with ResultsStore() as store:
        assert not [r for r in store.list_runs() if r.precision == "int9"]
