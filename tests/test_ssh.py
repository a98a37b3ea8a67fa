"""The SSH transport end to end against a real SSH server on 127.0.0.1 (asyncssh's server, started by the test),
which runs the agent as a real subprocess with this machine's Python and onnxruntime. Every failure path: host down,
auth refused, unknown / changed host key, agent crash, agent error, timeout, disconnect mid-run."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import asyncssh
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.bench.jobs import job_for_file
from edgekit.bench.runner import BenchConfig
from edgekit.errors import DeviceUnreachableError, EdgekitError
from edgekit.store import ResultsStore
from edgekit.targets.profile import TransportSpec
from edgekit.targets.remote import DeviceOptions, bench_on_target, check_target
from edgekit.targets.transports.base import AgentFailedError
from edgekit.targets.transports.ssh import SSHTransport

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from sshd import TestSSHServer  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
FAST = BenchConfig(warmup=1, runs=5, min_time_s=0.0, energy="none")


def tiny_onnx(path: Path, hidden: int = 32) -> Path:
    """A 2-layer MLP as a real ONNX file (MatMul, Add, Relu)."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((16, hidden)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(np.zeros(hidden, np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((hidden, 4)).astype(np.float32), "w2")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w1, b1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    good = asyncssh.generate_private_key("ssh-ed25519")
    bad = asyncssh.generate_private_key("ssh-ed25519")
    for name, key in (("id_good", good), ("id_bad", bad)):
        (d / name).write_bytes(key.export_private_key())
        (d / name).chmod(0o600)
    return d, good


@pytest.fixture(scope="module")
def server(keys, tmp_path_factory):
    d, good = keys
    srv = TestSSHServer(tmp_path_factory.mktemp("remote-home"), [good], password="s3cret-pw").start()
    yield srv
    srv.stop()


@pytest.fixture
def spec(server, keys, tmp_path):
    d, _ = keys
    kh = tmp_path / "known_hosts"
    kh.write_text(server.known_hosts_line())
    return TransportSpec(kind="ssh", host="127.0.0.1", port=server.port, user="pi", known_hosts=str(kh),
                         identity_file=str(d / "id_good"), workdir=str(tmp_path / "remote"), python=sys.executable,
                         connect_timeout_s=5, timeout_s=120, retries=2)


@pytest.fixture
def model(tmp_path):
    return job_for_file(tiny_onnx(tmp_path / "mlp.onnx"))


def test_check_reports_runtime_versions(spec):
    report = SSHTransport("rpi4", spec).check()
    import onnxruntime

    assert report.runtimes["onnxruntime"] == onnxruntime.__version__
    assert report.host["cpu_count"] == os.cpu_count()
    assert report.host["python"] == ".".join(map(str, sys.version_info[:3]))


def test_bench_end_to_end_is_measured_and_stored(spec, model, tmp_path):
    store = ResultsStore(tmp_path / "s.db")
    opts = DeviceOptions(host="127.0.0.1", port=spec.port, user="pi", known_hosts=spec.known_hosts,
                         identity_file=spec.identity_file, python=spec.python, workdir=spec.workdir)
    run = bench_on_target([model], "rpi4", dataclasses.replace(FAST, energy="auto"), opts, store=store)
    assert run.mode == "measured"
    (res,) = run.results
    assert res.ok and res.provenance == "measured" and res.latency.n >= 5
    assert res.runtime["runtime"] == "onnxruntime" and res.env.target == "rpi4"
    assert res.energy is not None and res.energy.provenance == "modeled"  # from rpi4's [power], never measured
    stored = store.get_run(res.run_id)
    assert stored.target == "rpi4" and stored.provenance == "measured" and stored.status == "ok"
    assert len(store.samples(res.run_id)) == res.latency.n
    # the artifact was really copied: a second run reuses it (same size) and still works
    assert list(Path(spec.workdir, "artifacts").rglob("mlp.onnx"))
    assert bench_on_target([model], "rpi4", FAST, opts, store=store).results[0].ok


def test_remote_command_is_quoted(spec, model, server, tmp_path):
    """A workdir with spaces and shell metacharacters reaches the agent as one argument (shlex.join)."""
    odd = dataclasses.replace(spec, workdir=str(tmp_path / "dir with space;touch PWNED"))
    res = SSHTransport("rpi4", odd).run_bench(model, FAST)
    assert res["samples_ms"]
    assert not (Path(server.workdir) / "PWNED").exists() and not Path("PWNED").exists()


def test_host_down_retries_then_one_clear_error(spec):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    t = SSHTransport("rpi4", dataclasses.replace(spec, port=port, retries=3), retry_delay_s=0.01)
    with pytest.raises(DeviceUnreachableError) as err:
        t.check()
    assert t.attempts == 3
    assert "connection refused" in str(err.value) and "after 3 attempts" in str(err.value)
    assert err.value.exit_code == 3


def test_auth_refused(spec, keys):
    d, _ = keys
    with pytest.raises(EdgekitError, match="authentication was refused") as err:
        SSHTransport("rpi4", dataclasses.replace(spec, identity_file=str(d / "id_bad"))).check()
    assert "ssh-copy-id" in err.value.fix


def test_password_never_leaks(spec, monkeypatch):
    monkeypatch.setenv("EDGEKIT_SSH_PASSWORD", "wrong-pw-123")
    monkeypatch.setenv("HOME", str(spec.workdir))  # no default keys in ~/.ssh: password authentication only
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    t = SSHTransport("rpi4", dataclasses.replace(spec, identity_file=None))
    with pytest.raises(EdgekitError, match="authentication was refused") as err:
        t.check()
    assert "wrong-pw-123" not in err.value.one_line() and "wrong-pw-123" not in repr(t)
    monkeypatch.setenv("EDGEKIT_SSH_PASSWORD", "s3cret-pw")  # the right one logs in
    assert SSHTransport("rpi4", dataclasses.replace(spec, identity_file=None)).check().runtimes


def test_missing_identity_file_is_named(spec):
    with pytest.raises(EdgekitError, match="SSH key file /nonexistent-key does not exist"):
        SSHTransport("rpi4", dataclasses.replace(spec, identity_file="/nonexistent-key")).check()


def test_unknown_host_key_refused_then_trusted_on_first_use(spec, tmp_path):
    kh = tmp_path / "empty_known_hosts"
    kh.write_text("")
    s = dataclasses.replace(spec, known_hosts=str(kh))
    with pytest.raises(EdgekitError, match="not in") as err:
        SSHTransport("rpi4", s).check()
    assert "--trust-on-first-use" in err.value.fix
    assert SSHTransport("rpi4", s, trust_on_first_use=True).check().runtimes
    assert f"[127.0.0.1]:{spec.port} ssh-ed25519 " in kh.read_text()
    assert SSHTransport("rpi4", s).check().runtimes  # now verified without the flag


def test_changed_host_key_is_refused_even_with_tofu(spec, tmp_path):
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    kh = tmp_path / "kh_changed"
    kh.write_text(f"[127.0.0.1]:{spec.port} {other}")
    with pytest.raises(EdgekitError, match="does NOT match"):
        SSHTransport("rpi4", dataclasses.replace(spec, known_hosts=str(kh)), trust_on_first_use=True).check()


def test_agent_crash_is_one_line(spec, model):
    crash = dataclasses.replace(spec, python=str(FIXTURES / "crashing_python.sh"))
    with pytest.raises(AgentFailedError, match="killed by signal SIGSEGV"):
        SSHTransport("rpi4", crash).run_bench(model, FAST)


def test_agent_error_event_is_reported(spec, tmp_path):
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"not an onnx file at all")
    from edgekit.bench.runner import BenchJob
    from edgekit.specs import TensorSpec

    job = BenchJob(model="corrupt", format="onnx", precision="fp32", path=bad,
                   inputs=[TensorSpec("x", (1, 16))], runtime="onnxruntime", sha256="0" * 64)
    with pytest.raises(EdgekitError, match="onnxruntime cannot load corrupt.onnx"):
        SSHTransport("rpi4", spec).run_bench(job, FAST)


def test_timeout(spec, model):
    slow = dataclasses.replace(spec, timeout_s=1.5)
    with pytest.raises(AgentFailedError, match="timed out"):
        SSHTransport("rpi4", slow).run_bench(model, dataclasses.replace(FAST, min_time_s=30.0, max_time_s=30.0))


def test_disconnect_mid_run_keeps_completed_results(spec, model, server, tmp_path):
    """The second artifact's connection is dropped by the server while the agent runs: the first result stays in
    the store, the second is recorded as killed with one line, the third is not attempted."""
    store = ResultsStore(tmp_path / "s.db")
    second = job_for_file(tiny_onnx(tmp_path / "mlp2.onnx", hidden=48))
    third = job_for_file(tiny_onnx(tmp_path / "mlp3.onnx", hidden=64))
    seen = {"bench": 0}

    def drop_second(command, conn, loop):
        if " bench " in command:
            seen["bench"] += 1
            if seen["bench"] == 2:
                loop.call_later(0.5, conn.abort)

    server.on_exec = drop_second
    try:
        opts = DeviceOptions(host="127.0.0.1", port=spec.port, user="pi", known_hosts=spec.known_hosts,
                             identity_file=spec.identity_file, python=spec.python, workdir=spec.workdir, retries=1)
        run = bench_on_target([model, second, third], "rpi4", dataclasses.replace(FAST, min_time_s=2.0), opts,
                              store=store)
    finally:
        server.on_exec = None
    assert [r.status for r in run.results] == ["ok", "killed", "skipped"]
    assert run.error is not None and "dropped" in run.error.one_line()
    runs = {r.model: r for r in store.list_runs(kind="bench")}
    assert runs["mlp"].status == "ok" and store.samples(runs["mlp"].id)
    assert runs["mlp2"].status == "killed" and "dropped" in runs["mlp2"].error


def test_cli_bench_target_with_host_prints_measured(spec, tmp_path, monkeypatch):
    onnx_path = tiny_onnx(tmp_path / "cli.onnx")
    env = {**os.environ, "EDGEKIT_DB": str(tmp_path / "cli.db")}
    args = [sys.executable, "-m", "edgekit.cli", "bench", str(onnx_path), "--target", "rpi4", "--host", "127.0.0.1",
            "--port", str(spec.port), "--user", "pi", "--known-hosts", spec.known_hosts, "--identity",
            spec.identity_file, "--runs", "5", "--warmup", "1", "--min-time", "0", "--energy", "none"]
    # the profile runs `python3` on the device; the test server runs commands here, with this process's PATH
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "measured" in proc.stdout and "cli" in proc.stdout
    # the same target without --host: predicted figures, labelled
    proc = subprocess.run(args[:7] + ["--json"], capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    import json

    doc = json.loads(proc.stdout)
    assert doc["mode"] == "predicted" and doc["predictions"][0]["provenance"] == "predicted"
    assert doc["predictions"][0]["p50_ms"] > 0


def test_cli_check_unreachable_is_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "targets", "check", "rpi4", "--host", "127.0.0.1",
                           "--port", str(port)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach target rpi4" in lines[0] and "fix:" in lines[0]


def test_check_target_without_host_says_why():
    with pytest.raises(EdgekitError, match="no device address for rpi4"):
        check_target("rpi4")


def test_macos_bridge_refuses_a_linux_host(spec, model):
    from edgekit.targets.transports.macos import MacOSTransport

    mac = MacOSTransport("iphone13", dataclasses.replace(spec, kind="macos", compute_units="CPU_AND_NE"))
    with pytest.raises(EdgekitError, match="runs Linux, not macOS") as err:
        mac.check()
    assert "Remote Login" in err.value.fix
    with pytest.raises(EdgekitError, match="runs CoreML packages, not onnx"):
        mac.run_bench(model, FAST)
    with pytest.raises(EdgekitError, match="unknown CoreML compute units"):
        MacOSTransport("iphone13", dataclasses.replace(spec, kind="macos", compute_units="GPU_ONLY"))


@pytest.mark.device
def test_macos_bridge_on_a_real_mac():
    host = os.environ.get("EDGEKIT_TEST_MAC")
    if not host:
        pytest.skip("no Mac to bridge to: set EDGEKIT_TEST_MAC=user@host (Remote Login on, coremltools installed)")
    from edgekit.targets.transports.macos import MacOSTransport

    user, _, addr = host.rpartition("@")
    report = MacOSTransport("iphone13", TransportSpec(kind="macos", host=addr, user=user or None)).check()
    assert report.host["system"] == "Darwin" and report.runtimes["coremltools"]
