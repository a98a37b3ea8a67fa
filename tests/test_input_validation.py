"""Malformed input ends in one clear line (issue 11, items 14, 15, 16 and "keep the agent as strict as the host"):
target profiles with unknown or mistyped keys, impossible values from an NPU command or the device agent,
a non-UTF-8 metrics CSV, an empty or string-input ONNX in `eval`, a report JSON with wrong types in `compare`.
Each case goes through the library function, and a few through the real CLI in a subprocess (exit 2, one line,
no traceback)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from edgekit.bench.jobs import job_for_file
from edgekit.bench.runner import BenchConfig
from edgekit.errors import EdgekitError
from edgekit.store import ResultsStore
from edgekit.targets.profile import TransportSpec, builtin_dir, load_target
from edgekit.targets.remote import DeviceOptions, bench_on_target
from edgekit.targets.transports.base import AGENT_PATH, parse_agent_output
from edgekit.targets.transports.command import CommandTransport

sys.path.insert(0, str(Path(__file__).parent))
from test_ssh import tiny_onnx  # noqa: E402
from test_targets import MINIMAL  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
NPU = [sys.executable, str(FIXTURES / "npu_command.py"), "--model", "{artifact}"]
FAST = BenchConfig(warmup=1, runs=3, min_time_s=0.0, energy="none")

PROFILE = MINIMAL  # the smallest valid profile (tests/test_targets.py)


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def assert_one_line(proc: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    """Exit `code`, no traceback, and an `error:` line on stderr naming every needle."""
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = exc.value.one_line()
    assert "\n" not in text
    return text


# -- item 14 / 16: target profiles ---------------------------------------------------------------------------------

CLUSTER = '[[cpu.clusters]]\nname = "Cortex-A53"\ncores = 4\nmax_ghz = 1.2\nflops_per_cycle = { fp32 = 8 }'
POWER = "[power]\nidle_w = 1.0\nactive_w = 3.0"
TOP = 'soc = "Test SoC"'  # a top-level key: replacing it with TOP + "\nkey = value" adds a top-level key


def write_profile(tmp_path: Path, extra: str = "", name: str = "board", replace: list[tuple[str, str]] = ()) -> Path:
    """PROFILE with tables appended (`extra`) and (old, new) text replacements."""
    text = PROFILE.format(name=name)
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text + extra)
    return path


def test_every_shipped_profile_still_loads():
    shipped = sorted(builtin_dir().glob("*.toml"))
    assert len(shipped) >= 6
    for path in shipped:
        assert load_target(str(path)).name == path.stem


def test_the_minimal_profile_loads(tmp_path):
    assert load_target(str(write_profile(tmp_path))).transport.kind == "ssh"


@pytest.mark.parametrize("extra, replace, needles", [
    ('[transprot]\nkind = "local"\n', [], ["[transprot]", "[transport]"]),
    ("", [(TOP, TOP + "\nram_bg = 4.0")], ["ram_bg", "ram_gb"]),
    ("", [('kind = "ssh"', 'kind = "ssh"\nhots = "10.0.0.2"')], ["transport.hots", "transport.host"]),
    ("", [("idle_w = 1.0", "idle_w = 1.0\nidel_w = 2.0")], ["power.idel_w", "power.idle_w"]),
    ("", [("max_ghz = 1.2", "max_ghz = 1.2\nmax_gz = 1.0")], ["cpu.clusters[0].max_gz", "max_ghz"]),
    ("", [("fp32 = 8", "fp32 = 8, fp33 = 8")], ["flops_per_cycle.fp33", "fp32"]),
    ("[predictor]\ncompute_eficiency = 0.2\n", [], ["predictor.compute_eficiency", "compute_efficiency"]),
    ("", [('power = "datasheet"', 'pwer = "datasheet"')], ["sources", "pwer", "power"]),
    ('[accelerator]\nname = "tpu"\ntopps = 4.0\n', [], ["accelerator.topps", "accelerator.tops"]),
    ("", [(CLUSTER, CLUSTER.replace("[[cpu.clusters]]", "[[cpu.clusterz]]"))], ["cpu.clusterz", "cpu.clusters"]),
    ("[peak_gflops]\nint4 = 5.0\n", [], ["peak_gflops.int4", "peak_gflops.int8"]),
    ("", [('power = "datasheet"', 'power = "datasheet"\n"power.idel_w" = "x"')], ["power.idel_w", "power.idle_w"]),
])
def test_unknown_keys_are_rejected_with_the_nearest_known(tmp_path, extra, replace, needles):
    path = write_profile(tmp_path, extra, replace=replace)
    with pytest.raises(EdgekitError) as exc:
        load_target(str(path))
    text = one_line(exc)
    assert str(path) in text
    for needle in needles:
        assert needle in text, (needle, text)


@pytest.mark.parametrize("replace, needles", [
    ([(CLUSTER, "[cpu]\nclusters = 5")], ["cpu.clusters", "5"]),
    ([(CLUSTER, "[cpu]\nclusters = [5]")], ["cpu.clusters[0]", "5"]),
    ([(CLUSTER, ""), (TOP, TOP + "\ncpu = 5")], ["cpu", "5"]),
    ([('kind = "ssh"', 'kind = "ssh"\nhost = 12345')], ["transport.host", "12345", "string"]),
    ([('kind = "ssh"', 'kind = "ssh"\nport = "22"')], ["transport.port", "'22'"]),
    ([('kind = "ssh"', 'kind = "ssh"\nport = 70000')], ["transport.port", "70000"]),
    ([('kind = "ssh"', 'kind = "command"\ncommand = 5')], ["transport.command"]),
    ([('kind = "ssh"', 'kind = "ssh"\ntimeout_s = nan')], ["transport.timeout_s", "nan"]),
    ([('kind = "ssh"', 'kind = "ssh"\nretries = 1.5')], ["transport.retries", "1.5"]),
    ([('kind = "ssh"', "kind = 5")], ["transport.kind", "5"]),
    ([("cores = 4", "cores = 2.5")], ["cpu.clusters[0].cores", "2.5"]),
    ([("cores = 4", "cores = 0")], ["cpu.clusters[0].cores", "0"]),
    ([("memory_bandwidth_gbs = 10.0", "memory_bandwidth_gbs = inf")], ["memory_bandwidth_gbs", "inf"]),
    ([(TOP, "soc = 7")], ["soc", "7"]),
    ([(TOP, TOP + '\nkind = "borad"')], ["kind", "borad", "board"]),
    ([(TOP, TOP + "\npredictor = 5")], ["predictor", "5"]),
    ([(POWER, ""), (TOP, TOP + "\npower = 3")], ["power", "3"]),
    ([(TOP, TOP + '\nformats = "onnx"')], ["formats", "onnx"]),
    ([('cpu = "datasheet"', "cpu = 5")], ["sources.cpu", "5"]),
    ([('kind = "ssh"', 'kind = "ssh"\nretries = 0')], ["transport.retries", "0"]),
    ([("flops_per_cycle = { fp32 = 8 }", "flops_per_cycle = 8")], ["cpu.clusters[0].flops_per_cycle", "8"]),
    ([("cores = 4", "cores = true")], ["cpu.clusters[0].cores", "True"]),
    ([('kind = "ssh"', 'kind = "macos"\ncompute_units = "CPU_ONYL"')], ["compute_units", "CPU_ONLY"]),
    ([('kind = "ssh"', 'kind = "ssh"\nknown_hosts = [1]')], ["transport.known_hosts"]),
    ([(TOP, "soc = 1979-05-27")], ["soc", "string"]),
])
def test_wrong_types_are_one_line(tmp_path, replace, needles):
    path = write_profile(tmp_path, replace=replace)
    with pytest.raises(EdgekitError) as exc:
        load_target(str(path))
    text = one_line(exc)
    assert str(path) in text
    for needle in needles:
        assert needle in text, (needle, text)


def test_unreadable_profiles_are_one_line(tmp_path):
    path = write_profile(tmp_path, replace=[(TOP, 'soc = "Caf\u00e9 SoC"')])
    path.write_bytes(path.read_text().encode("latin-1"))
    with pytest.raises(EdgekitError, match="not UTF-8") as exc:
        load_target(str(path))
    assert str(path) in one_line(exc)
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(EdgekitError, match="cannot be read"):
        load_target(str(tmp_path / "dir.toml"))


def test_cli_rejects_a_profile_with_a_misspelt_section(tmp_path):
    path = write_profile(tmp_path, '[transprot]\nkind = "local"\n')
    assert_one_line(cli("targets", "show", str(path)), str(path), "[transprot]", "[transport]")
    onnx_path = tiny_onnx(tmp_path / "mlp.onnx")
    proc = cli("bench", str(onnx_path), "--target", str(path), "--runs", "3")
    assert_one_line(proc, "[transprot]")
    with ResultsStore(Path(os.environ["EDGEKIT_DB"])) as store:
        assert store.list_runs() == []  # nothing ran, nothing was stored as that device


def test_cli_wrong_types_are_one_line(tmp_path):
    clusters = write_profile(tmp_path, name="clusters", replace=[(CLUSTER, "[cpu]\nclusters = 5")])
    assert_one_line(cli("targets", "show", str(clusters)), "cpu.clusters")
    host = write_profile(tmp_path, name="host", replace=[('kind = "ssh"', 'kind = "ssh"\nhost = 12345')])
    assert_one_line(cli("targets", "show", str(host)), "transport.host")


# -- item 15: the NPU command protocol ------------------------------------------------------------------------------

@pytest.fixture
def job(tmp_path):
    return job_for_file(tiny_onnx(tmp_path / "mlp.onnx"))


def npu(tmp_path: Path, final: str | dict, **spec) -> CommandTransport:
    """A command transport whose fixture answers with `final` (a raw JSON line) as its last event."""
    line = final if isinstance(final, str) else json.dumps(final)
    path = tmp_path / f"final-{abs(hash(line))}.json"
    path.write_text(line + "\n")
    return CommandTransport("npu", TransportSpec(kind="command", command=(*NPU, "--emit-file", str(path)), **spec))


GOOD = {"event": "result", "samples_ms": [1.5, 1.6, 1.4], "load_ms": 3.0, "first_ms": 2.0, "warmup_ms": [1.7],
        "runtime": {"name": "fake-npu", "version": "0.1", "provider": "npu0"}, "device": {"name": "fake-npu"},
        "energy_j": 0.03, "memory_peak_bytes": 52428800}


def bad(**fields) -> dict:
    return {**GOOD, **fields}


def test_a_valid_emitted_result_is_accepted(tmp_path, job):
    payload = npu(tmp_path, GOOD).run_bench(job, FAST)
    assert payload["samples_ms"] == [1.5, 1.6, 1.4] and payload["memory"]["peak_rss_inference"] == 52428800
    payload = npu(tmp_path, bad(memory_peak_bytes=52428800.0, warmup_ms=[])).run_bench(job, FAST)
    assert payload["memory"]["peak_rss_inference"] == 52428800


IMPOSSIBLE = [
    (bad(samples_ms=[1.5, -2.0, 1.4]), "samples_ms[1]"),
    (bad(samples_ms=[1.5, 0, 1.4]), "samples_ms[1]"),
    ('{"event": "result", "samples_ms": [1.5, Infinity, 1.4]}', "samples_ms[1]"),
    ('{"event": "result", "samples_ms": [NaN]}', "samples_ms[0]"),
    ('{"event": "result", "samples_ms": [1.0], "load_ms": -Infinity}', "load_ms"),
    (bad(samples_ms=["1.5"]), "samples_ms[0]"),
    (bad(samples_ms=[True]), "samples_ms[0]"),
    (bad(samples_ms=[]), "samples_ms"),
    (bad(samples_ms="1.5"), "samples_ms"),
    (bad(memory_peak_bytes="lots"), "memory_peak_bytes"),
    (bad(memory_peak_bytes=-5), "memory_peak_bytes"),
    (bad(memory_peak_bytes=1.5), "memory_peak_bytes"),
    (bad(memory_peak_bytes=1e400), "memory_peak_bytes"),
    (bad(energy_j=-0.1), "energy_j"),
    ('{"event": "result", "samples_ms": [1.0], "energy_j": Infinity}', "energy_j"),
    (bad(energy_j="0.1"), "energy_j"),
    (bad(first_ms=0), "first_ms"),
    (bad(load_ms="fast"), "load_ms"),
    (bad(warmup_ms=[1.0, -1.0]), "warmup_ms[1]"),
    (bad(runtime="fake"), "runtime"),
    (bad(runtime={"name": 5}), "runtime.name"),
    (bad(device=["x"]), "device"),
    (bad(device={"name": {"nested": 1}}), "device.name"),
    (bad(memory_peak_byte=5), "memory_peak_byte"),
    (bad(samples_ms=[1.0, None]), "samples_ms[1]"),
    ('{"event": "result", "samples_ms": [1.0], "memory_peak_bytes": ' + "9" * 400 + "}", "memory_peak_bytes"),
    ('{"event": "result", "samples_ms": [1e400]}', "samples_ms[0]"),
]


@pytest.mark.parametrize("final, field", IMPOSSIBLE)
def test_impossible_values_from_the_command_are_refused(tmp_path, job, final, field):
    with pytest.raises(EdgekitError) as exc:
        npu(tmp_path, final).run_bench(job, FAST)
    text = one_line(exc)
    assert field in text and "npu_command.py" in text, text


def test_unknown_fields_name_the_nearest_known(tmp_path, job):
    with pytest.raises(EdgekitError) as exc:
        npu(tmp_path, bad(memory_peak_byte=5)).run_bench(job, FAST)
    assert "memory_peak_bytes" in one_line(exc)


def test_impossible_samples_are_stored_as_failed_not_measured(tmp_path, job):
    store = ResultsStore(tmp_path / "s.db")
    path = tmp_path / "final.json"
    path.write_text('{"event": "result", "samples_ms": [1.5, -2.0, Infinity]}\n')
    run = bench_on_target([job], "npu", FAST, DeviceOptions(command=[*NPU, "--emit-file", str(path)]), store=store)
    (res,) = run.results
    assert res.status == "failed" and "samples_ms[1]" in res.error
    (stored,) = store.list_runs()
    assert stored.status == "failed"


def test_a_bad_check_answer_is_one_line(tmp_path):
    with pytest.raises(EdgekitError) as exc:
        npu(tmp_path, {"event": "check", "device": "fake", "runtimes": {}}).check()
    assert "device" in one_line(exc)
    with pytest.raises(EdgekitError) as exc:
        npu(tmp_path, {"event": "check", "device": {}, "runtimes": {"rknn": 2}}).check()
    assert "runtimes.rknn" in one_line(exc)


def test_an_error_event_with_odd_types_is_still_one_line(tmp_path, job):
    with pytest.raises(EdgekitError) as exc:
        npu(tmp_path, {"event": "error", "problem": {"code": 3}, "fix": ["a"]}).run_bench(job, FAST)
    assert "code" in one_line(exc)


def test_cli_bench_with_impossible_samples_exits_2(tmp_path):
    final = tmp_path / "final.json"
    final.write_text('{"event": "result", "samples_ms": [1.5, -2.0], "memory_peak_bytes": "lots"}\n')
    argv = json.dumps([*NPU, "--emit-file", str(final)])
    profile = tmp_path / "mynpu.toml"
    profile.write_text(f'name = "mynpu"\n[power]\nidle_w = 0.0\nactive_w = 1.0\n[transport]\nkind = "command"\n'
                       f'command = {argv}\n[sources]\npower = "placeholder for the test"\n')
    onnx_path = tiny_onnx(tmp_path / "mlp.onnx")
    proc = cli("bench", str(onnx_path), "--target", str(profile), "--runs", "3")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "samples_ms[1]" in errors[0] and "npu_command.py" in errors[0], proc.stderr
    with ResultsStore(Path(os.environ["EDGEKIT_DB"])) as store:
        assert [r.status for r in store.list_runs()] == ["failed"]


# -- the device agent: as strict as the host ---------------------------------------------------------------------

AGENT_GOOD = {"event": "result", "load_ms": 3.0, "first_ms": 2.0, "warmup_ms": [1.0], "samples_ms": [1.0, 1.1],
              "timed_wall_s": 0.01,
              "memory": {"rss_before_load": 1, "rss_after_load": 2, "peak_rss_load": 3, "peak_rss_inference": 4,
                         "peak_rss_scope": "process", "rss_after_runs": 2},
              "describe": {"runtime": "onnxruntime", "version": "1.32", "threads": None, "provider": "CPU"},
              "host": {"machine": "aarch64", "cpu_count": 4, "memory_total_bytes": 4 * 2**30, "agent": "1"}}


def agent_line(**fields) -> str:
    return json.dumps({**AGENT_GOOD, **fields})


@pytest.mark.parametrize("line, field", [
    (agent_line(samples_ms=[1.0, -1.0]), "samples_ms[1]"),
    (agent_line().replace('"first_ms": 2.0', '"first_ms": NaN'), "first_ms"),
    (agent_line().replace('"samples_ms": [1.0, 1.1]', '"samples_ms": [Infinity]'), "samples_ms[0]"),
    (agent_line(memory={**AGENT_GOOD["memory"], "peak_rss_inference": "big"}), "memory.peak_rss_inference"),
    (agent_line(host={"cpu_count": "four"}), "host.cpu_count"),
    (agent_line(describe={"runtime": 5}), "describe.runtime"),
    (agent_line(outputs=[{"shape": [1, 2], "dtype": "float32", "values": [1.0, "x"]}]), "outputs[0].values[1]"),
    (agent_line(sampels_ms=[1.0]), "sampels_ms"),
    (agent_line(timed_wall_s=-1), "timed_wall_s"),
])
def test_host_refuses_impossible_agent_results(line, field):
    with pytest.raises(EdgekitError) as exc:
        parse_agent_output(f"noise\n{line}\n", "target rpi4 (pi@10.0.0.2)", 0, None, "")
    text = one_line(exc)
    assert field in text and "rpi4" in text, text


def test_host_accepts_a_real_agent_result():
    assert parse_agent_output(agent_line() + "\n", "t", 0, None, "")["samples_ms"] == [1.0, 1.1]


def strict_json(line: str) -> dict:
    """JSON as the standard defines it: NaN / Infinity / -Infinity are not JSON."""
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in {line}")

    return json.loads(line, parse_constant=refuse)


def test_agent_never_prints_nan_and_says_why():
    # the agent as the package module: putting edgekit/targets/ on sys.path made its profile.py shadow the stdlib
    # `profile` for the rest of the session (torch.export then failed in later tests)
    from edgekit.targets import agent

    out = io.StringIO()
    fields = {k: v for k, v in AGENT_GOOD.items() if k != "event"}
    agent.emit(out, "result", **{**fields, "samples_ms": [1.0, float("nan")]})
    (line,) = out.getvalue().splitlines()
    event = strict_json(line)
    assert event["event"] == "error" and "samples_ms[1]" in event["problem"]


def nan_onnx(path: Path) -> Path:
    """A model whose output is NaN: sqrt(-(|x| + 1))."""
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    nodes = [helper.make_node("Abs", ["x"], ["a"]), helper.make_node("Add", ["a", "one"], ["b"]),
             helper.make_node("Neg", ["b"], ["c"]), helper.make_node("Sqrt", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "nan", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_agent_process_reports_nan_outputs_as_an_error(tmp_path):
    """The real agent file, run as on a device: NaN outputs become an error event (exit 2), never NaN in JSON."""
    copy = tmp_path / "agent.py"
    copy.write_text(AGENT_PATH.read_text())
    model = nan_onnx(tmp_path / "nan.onnx")
    inputs = json.dumps([{"name": "x", "shape": [1, 4], "dtype": "float32"}])
    argv = [sys.executable, "-I", str(copy), "bench", "--model", str(model), "--format", "onnx", "--inputs", inputs,
            "--runs", "2", "--warmup", "0", "--min-time", "0", "--return-outputs"]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    events = [strict_json(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    final = events[-1]
    assert final["event"] == "error" and "outputs[0].values[0]" in final["problem"]
    with pytest.raises(EdgekitError, match=r"outputs\[0\]\.values\[0\]"):
        parse_agent_output(proc.stdout, "target x", proc.returncode, None, proc.stderr)


def test_agent_result_schema_is_the_hosts(tmp_path):
    """A result the agent emits passes the host's check unchanged (one rule set, in agent.py)."""
    copy = tmp_path / "agent.py"
    copy.write_text(AGENT_PATH.read_text())
    model = tiny_onnx(tmp_path / "mlp.onnx")
    inputs = json.dumps([{"name": "x", "shape": [1, 16], "dtype": "float32"}])
    argv = [sys.executable, "-I", str(copy), "bench", "--model", str(model), "--format", "onnx", "--inputs", inputs,
            "--runs", "2", "--warmup", "1", "--min-time", "0", "--return-outputs"]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert parse_agent_output(proc.stdout, "t", 0, None, proc.stderr)["outputs"][0]["shape"] == [1, 4]


# -- item 16: metrics CSV, eval ONNX, compare report JSON -----------------------------------------------------------

def test_non_utf8_metrics_csv_is_one_line(tmp_path):
    from edgekit.evalsuite.score_files import load_scores, read_csv_scores

    path = tmp_path / "scores.csv"
    path.write_bytes("model,domain,task,score\nm\xe9,law,t,0.5\n".encode("latin-1"))
    with pytest.raises(EdgekitError) as exc:
        read_csv_scores(path)
    text = one_line(exc)
    assert str(path) in text and "UTF-8" in text and "line 2" in text
    with pytest.raises(EdgekitError):
        load_scores([str(path)])
    assert_one_line(cli("metrics", "--reference", "m", str(path)), str(path), "UTF-8")


@pytest.mark.parametrize("body, needle", [
    ("model,domain,task,score\nm,law,t,nan\n", "nan"),
    ("model,domain,task,score\nm,law,t,inf\n", "inf"),
])
def test_non_finite_csv_scores_are_refused(tmp_path, body, needle):
    from edgekit.evalsuite.score_files import read_csv_scores

    path = tmp_path / "scores.csv"
    path.write_text(body)
    with pytest.raises(EdgekitError) as exc:
        read_csv_scores(path)
    assert needle in one_line(exc) and "scores.csv:2" in one_line(exc)


def test_non_utf8_and_mistyped_score_json_is_one_line(tmp_path):
    from edgekit.evalsuite.score_files import load_scores

    path = tmp_path / "scores.json"
    path.write_bytes(b'{"model": "m\xff", "scores": []}')
    with pytest.raises(EdgekitError) as exc:
        load_scores([str(path)])
    assert "UTF-8" in one_line(exc)
    path.write_text(json.dumps({"model": "m", "scores": [{"domain": "law", "task": "t", "macro_f1": "high"}]}))
    with pytest.raises(EdgekitError) as exc:
        load_scores([str(path)])
    assert "macro_f1" in one_line(exc)


def string_input_onnx(path: Path) -> Path:
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "s",
                              [helper.make_tensor_value_info("x", TensorProto.STRING, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.STRING, [1, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def no_input_onnx(path: Path) -> Path:
    const = helper.make_tensor("c", TensorProto.FLOAT, [1, 3], [0.1, 0.2, 0.7])
    graph = helper.make_graph([helper.make_node("Constant", [], ["y"], value=const)], "c", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("make, needle", [
    (lambda p: (p.write_bytes(b""), p)[1], "empty"),
    (string_input_onnx, "string"),
    (no_input_onnx, "no input"),
    (lambda p: tiny_onnx(p), "float"),
])
def test_eval_refuses_unusable_onnx_in_one_line(tmp_path, make, needle):
    from edgekit.evalsuite.evaluate import artifact_inputs, evaluate_artifact

    path = make(tmp_path / "model.onnx")
    with pytest.raises(EdgekitError) as exc:
        artifact_inputs(path, "onnx")
    text = one_line(exc)
    assert str(path) in text and needle in text, text
    with pytest.raises(EdgekitError):
        evaluate_artifact(path, {}, trained=False)


def test_cli_eval_empty_and_string_onnx(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert_one_line(cli("eval", str(empty), "--no-store"), str(empty), "empty")
    strings = string_input_onnx(tmp_path / "strings.onnx")
    assert_one_line(cli("eval", str(strings), "--no-store"), str(strings), "string")


def report_file(tmp_path: Path, name: str, **latency) -> Path:
    from edgekit.report.records import LatencyFigures, Report, ReportRow
    from edgekit.report.tabular import render_json

    samples = [2.0 + 0.01 * i for i in range(10)]
    lat = LatencyFigures(provenance="measured", n=10, p50_ms=2.05, samples_ms=samples)
    row = ReportRow(run_id=1, model="m", format="onnx", precision="fp32", target="local", status="ok", latency=lat)
    data = json.loads(render_json(Report(generated="", edgekit_version="", store="", selection={}, rows=[row])))
    data["rows"][0]["latency"].update(latency)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("latency, field", [
    ({"p50_ms": "2.05", "samples_ms": []}, "rows[0].latency.p50_ms"),
    ({"p50_ms": "2.05"}, "rows[0].latency.p50_ms"),
    ({"samples_ms": [2.0, "x", 2.1, 2.2, 2.3]}, "rows[0].latency.samples_ms[1]"),
    ({"samples_ms": [2.0, -1.0, 2.1, 2.2, 2.3]}, "rows[0].latency.samples_ms[1]"),
    ({"n": "ten"}, "rows[0].latency.n"),
    ({"provenance": 5}, "rows[0].latency.provenance"),
    ({"ci_median_ms": [1.0]}, "rows[0].latency.ci_median_ms"),
    ({"samples_ms": [2.0, None, 2.1, 2.2, 2.3]}, "rows[0].latency.samples_ms[1]"),
    ({"p50_ms": float("nan"), "samples_ms": []}, "rows[0].latency.p50_ms"),
    ({"samples_ms": "2.0,2.1"}, "rows[0].latency.samples_ms"),
])
def test_compare_refuses_report_json_with_wrong_types(tmp_path, latency, field):
    from edgekit.report.compare import compare_reports
    from edgekit.report.tabular import read_report_file

    good = report_file(tmp_path, "base.json")
    broken = report_file(tmp_path, "new.json", **latency)
    with pytest.raises(EdgekitError) as exc:
        compare_reports(read_report_file(good), read_report_file(broken), base_name=str(good),
                        new_name=str(broken))
    text = one_line(exc)
    assert str(broken) in text and field in text, text


def test_compare_refuses_mistyped_rows(tmp_path):
    from edgekit.report.compare import compare_reports
    from edgekit.report.tabular import read_report_file

    good = report_file(tmp_path, "base.json")
    for i, mutate in enumerate([lambda r: r.update(latency="fast"), lambda r: r.update(model=5),
                                lambda r: r.update(status=None), lambda r: r.update(run_id="one")]):
        data = json.loads(good.read_text())
        mutate(data["rows"][0])
        broken = tmp_path / f"broken{i}.json"
        broken.write_text(json.dumps(data))
        with pytest.raises(EdgekitError) as exc:
            compare_reports(read_report_file(good), read_report_file(broken), new_name=str(broken))
        assert str(broken) in one_line(exc)


def test_cli_compare_string_p50(tmp_path):
    good = report_file(tmp_path, "base.json")
    broken = report_file(tmp_path, "new.json", p50_ms="2.05", samples_ms=[])
    assert_one_line(cli("compare", str(good), str(broken)), str(broken), "p50_ms")
    assert cli("compare", str(good), str(good)).returncode == 0

