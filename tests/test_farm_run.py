"""`edgekit farm run` (issue 16, parts 3 and 4): a lab of two real "devices" — this host (transport local) and the
SSH test server on 127.0.0.1 (tests/fixtures/sshd.py, the agent runs as a real subprocess) — driven by a real local
Ray instance. 6 cells complete, both devices work at the same time, SIGTERM midway + resume finishes the rest
without repeating a cell, a device that fails is retried and then reported. Real SQLite store throughout.

The Ray tests start a local Ray instance (about 6 s) and measure real cells: each takes 10-40 s on 2 cores, so they
are `slow` (`make test-slow`) and skipped when ray is absent (`pip install 'edgekit[farm]'`). The farm file's checks
and the no-Ray message are fast and always run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import asyncssh
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from farm_models import tiny_onnx  # noqa: E402
from sshd import TestSSHServer  # noqa: E402

HAVE_RAY = importlib.util.find_spec("ray") is not None

BENCH = """
[bench]
runs = 5
min_time_s = 0.05
warmup = 1
max_time_s = 2
energy = "none"
"""


def edgekit(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgekit.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert "Traceback" not in err, err
    return proc.returncode, out, err


def farm_runs(db: Path) -> list[dict]:
    """The farm's runs in the store: {id, status, cell, device, target, provenance, error}."""
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT id, status, config, target, provenance, error, grp FROM runs ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
    out = []
    for rid, status, config, target, prov, error, grp in rows:
        farm = json.loads(config or "{}").get("farm") or {}
        out.append({"id": rid, "status": status, "cell": farm.get("cell"), "device": farm.get("device"),
                    "target": target, "provenance": prov, "error": error, "group": grp})
    return out


@pytest.fixture(scope="module")
def ssh_device(tmp_path_factory):
    """The SSH test server on 127.0.0.1 and what a [[device]] needs to reach it."""
    d = tmp_path_factory.mktemp("farm-ssh")
    key = asyncssh.generate_private_key("ssh-ed25519")
    (d / "id").write_bytes(key.export_private_key())
    (d / "id").chmod(0o600)
    srv = TestSSHServer(d, [key]).start()
    (d / "known_hosts").write_text(srv.known_hosts_line())
    yield {"port": srv.port, "identity_file": str(d / "id"), "known_hosts": str(d / "known_hosts"),
           "workdir": str(d / "remote"), "server": srv}
    srv.stop()


def lab_file(tmp_path: Path, devices: list[str], *, models: int = 3, repeat: int = 2, targets: str = '["x86"]',
             retries: int = 2) -> Path:
    names = []
    for i, hidden in enumerate((16, 32, 48, 64)[:models]):
        names.append(str(tiny_onnx(tmp_path / f"m{i}.onnx", hidden=hidden)))
    text = (f'[farm]\nname = "test-lab"\nretries = {retries}\nretry_delay_s = 0.2\n\n'
            f"[matrix]\nmodels = {json.dumps(names)}\ntargets = {targets}\nrepeat = {repeat}\n" + BENCH +
            "\n".join(devices))
    path = tmp_path / "farm.toml"
    path.write_text(text)
    return path


LOCAL = '[[device]]\nname = "host-01"\nprofile = "local"\nlabels = ["x86"]\n'


def ssh_dev(s: dict, name: str = "ssh-01", port: int | None = None, labels: str = '["x86"]') -> str:
    return (f'[[device]]\nname = "{name}"\nprofile = "rpi4"\ntransport = "ssh"\n'
            f'address = "pi@127.0.0.1:{port or s["port"]}"\nlabels = {labels}\nknown_hosts = "{s["known_hosts"]}"\n'
            f'identity_file = "{s["identity_file"]}"\npython = "{sys.executable}"\nworkdir = "{s["workdir"]}"\n'
            'connect_timeout_s = 2\n')


# -- fast: no Ray needed -------------------------------------------------------------------------------------------

def test_without_ray_farm_run_says_how_to_install_it(tmp_path):
    blocker = tmp_path / "block" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('ray is blocked for this test')\n")
    farm = lab_file(tmp_path, [LOCAL], models=1, repeat=1)
    rc, out, err = finish(edgekit("farm", "run", "--farm", str(farm), env={"PYTHONPATH": str(tmp_path / "block")}))
    assert rc == 2 and err.strip().splitlines() == [
        "error: `edgekit farm run` needs Ray, which is not installed — fix: pip install 'edgekit[farm]'  (installs ray)"]


@pytest.mark.parametrize(("text", "words"), [
    ('[[device]]\nname = "a"\nprofile = "local"\nlabelz = ["x"]\n', "device #1.labelz is not a known key"),
    ('[[device]]\nname = "a"\nprofile = "rpi4"\ntransport = "ssh"\n', "address '' is not [user@]host[:port]"),
    ('[[device]]\nname = "a"\n[[device]]\nname = "a"\n', "device 'a'.name is used twice"),
    ('[[device]]\nname = "CPU"\n', "'CPU' is not a usable device name"),
    ('[farm]\nretries = "3"\n[[device]]\nname = "a"\n', "farm.retries must be a int"),
    ('[matrx]\n[[device]]\nname = "a"\n', "[matrx] is not a known table"),
    ('[farm]\nname = "x"\n', "[[device]] is missing"),
    ('[[device]]\nname = "a"\nprofile = "rpi5"\n', "rpi5"),
])
def test_farm_file_errors_are_one_line(tmp_path, text, words):
    from edgekit.errors import EdgekitError
    from edgekit.farm.lab import load_lab

    path = tmp_path / "farm.toml"
    path.write_text(text)
    with pytest.raises(EdgekitError) as info:
        load_lab(path)
    assert words in info.value.one_line()


def test_cells_follow_labels_and_repeat(tmp_path, ssh_device):
    from edgekit.farm.lab import load_lab

    lab = load_lab(lab_file(tmp_path, [LOCAL, ssh_dev(ssh_device)]))
    cells = lab.cells()
    assert len(cells) == 6 and len({c.key for c in cells}) == 6 and cells[0].key == "m0.onnx.fp32.x86#1"
    assert [d.name for d in lab.devices if d.serves("x86")] == ["host-01", "ssh-01"]
    assert lab.device("ssh-01").stored_target() == "rpi4" and lab.device("host-01").stored_target() == "local@host-01"
    from edgekit.errors import EdgekitError

    with pytest.raises(EdgekitError, match="no device of .* serves target 'pixel6'"):
        lab.cells(targets=["pixel6"])


# -- real Ray ------------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'edgekit[farm]')")
def test_six_cells_on_two_devices_in_parallel(tmp_path, ssh_device):
    farm = lab_file(tmp_path, [LOCAL, ssh_dev(ssh_device)])
    db = tmp_path / "s.db"
    rc, out, err = finish(edgekit("farm", "run", "--farm", str(farm), "--db", str(db), "--json"))
    assert rc == 0, err
    summary = json.loads(out)
    assert len(summary["completed"]) == 6 and not summary["failed"] and not summary["unfinished"]
    runs = farm_runs(db)
    assert len(runs) == 6 and {r["status"] for r in runs} == {"ok"} and len({r["cell"] for r in runs}) == 6
    by_device = {d["device"]: d for d in summary["devices"]}
    assert by_device["host-01"]["done"] >= 1 and by_device["ssh-01"]["done"] >= 1
    assert {r["target"] for r in runs if r["device"] == "ssh-01"} == {"rpi4"}  # measured through the SSH agent
    assert {r["target"] for r in runs if r["device"] == "host-01"} == {"local@host-01"}
    assert {r["provenance"] for r in runs} == {"measured"}
    # the two devices worked at the same time: some cell on one overlaps some cell on the other
    spans = {name: [(t["start_s"], t["end_s"]) for t in summary["timeline"] if t["device"] == name]
             for name in by_device}
    assert any(a0 < b1 and b0 < a1 for a0, a1 in spans["host-01"] for b0, b1 in spans["ssh-01"]), spans
    # per-device progress lines
    assert "[ssh-01] ok m" in err and "[host-01] ok m" in err and "6/6 cells done" in err


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'edgekit[farm]')")
def test_sigterm_midway_then_resume_never_repeats_a_cell(tmp_path, ssh_device):
    farm = lab_file(tmp_path, [LOCAL, ssh_dev(ssh_device)], models=4)  # 8 cells
    db = tmp_path / "s.db"
    proc = edgekit("farm", "run", "--farm", str(farm), "--db", str(db), "--group", "farm-kill")
    deadline = time.monotonic() + 180
    while len([r for r in farm_runs(db) if r["status"] == "ok"]) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "the farm ended before it could be killed"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    rc, _, err = finish(proc)
    assert rc == 143, err
    assert "resume with: edgekit farm run --farm" in err and "--group farm-kill" in err
    before = {r["cell"] for r in farm_runs(db) if r["status"] == "ok"}
    assert 2 <= len(before) < 8
    rc, out, err = finish(edgekit("farm", "run", "--farm", str(farm), "--db", str(db), "--resume", "--json"))
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["group"] == "farm-kill" and set(summary["already_done"]) == before
    assert not before & set(summary["completed"])
    ok = [r["cell"] for r in farm_runs(db) if r["status"] == "ok"]
    assert len(ok) == 8 and len(set(ok)) == 8  # every cell once: none repeated, none missing
    assert f"{len(before)} done before (resumed)" in err


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'edgekit[farm]')")
def test_failing_device_is_retried_then_reported(tmp_path, ssh_device):
    import socket

    with socket.socket() as s:  # a port with nobody listening: the device is down
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    devices = [LOCAL, ssh_dev(ssh_device, "dead-01", dead_port, '["x86", "dead"]')]
    farm = lab_file(tmp_path, devices, models=2, repeat=1, targets='["x86", "dead"]')  # 2 x86 cells, 2 dead
    db = tmp_path / "s.db"
    rc, out, err = finish(edgekit("farm", "run", "--farm", str(farm), "--db", str(db), "--json"))
    assert rc == 3, err
    summary = json.loads(out)
    assert set(summary["completed"]) == {"m0.onnx.fp32.x86", "m1.onnx.fp32.x86"}  # moved to the working device
    assert set(summary["unfinished"]) == {"m0.onnx.fp32.dead", "m1.onnx.fp32.dead"}
    dead = next(d for d in summary["devices"] if d["device"] == "dead-01")
    assert dead["down"] and "failed 2 times in a row" in dead["down"] and dead["retried"] >= 1
    assert "device failed on" in err and "will retry" in err and "error: cell m0.onnx.fp32.dead not finished" in err
    assert "cannot reach target rpi4" in err
    runs = farm_runs(db)
    ok = [r for r in runs if r["status"] == "ok"]
    assert len(ok) == 2 and {r["device"] for r in ok} == {"host-01"}
    # whatever was given up on is in the store as `killed`, and runs again on resume
    killed = [r for r in runs if r["status"] == "killed"]
    assert {r["cell"] for r in killed} <= set(summary["unfinished"]) and killed
    assert all(r["device"] == "dead-01" and "dead-01" in r["error"] for r in killed)


# -- running before the work (no Ray: a stand-in that runs each task when the driver asks for its result) ----------

class _Ref:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args


class _InlineRay:
    """ray's calls the driver makes; a task runs inside `get`, so the task sees the store as the driver left it."""

    def __init__(self, interrupt_after: int | None = None):
        self.waits, self.interrupt_after = 0, interrupt_after

    def init(self, **kw):
        pass

    def shutdown(self):
        pass

    def cancel(self, ref, force=False):
        pass

    def remote(self, fn):
        class Task:
            def options(self, **kw):
                return self

            def remote(self, *args):
                return _Ref(fn, args)

        return Task()

    def wait(self, refs, num_returns=1, timeout=None):
        self.waits += 1
        if self.interrupt_after is not None and self.waits > self.interrupt_after:
            raise KeyboardInterrupt
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return ref.fn(*ref.args)


def _farm(tmp_path, monkeypatch, cell_fn, ray):
    import edgekit.farm.engine as engine
    from edgekit.farm.lab import Device, FarmCell, Lab
    from edgekit.farm.plan import Cell

    monkeypatch.setattr(engine, "import_ray", lambda: ray)
    monkeypatch.setattr(engine, "run_cell", cell_fn)
    lab = Lab(path=tmp_path / "farm.toml", name="lab", retries=2, retry_delay_s=0.0,
              devices=[Device("dev-a", labels=("x86",)), Device("dev-b", labels=("x86",))])
    return engine, lab, [FarmCell(Cell("m.onnx", "onnx", "fp32", "x86"))]


def _ok_out(host: str, device: str) -> dict:
    from edgekit.bench.runner import BenchResult
    from edgekit.bench.stats import summarize

    xs = [1.0, 1.1, 1.2]
    res = BenchResult(model="m", format="onnx", precision="fp32", artifact="/w/m.onnx", status="ok",
                      latency=summarize(xs), samples_ms=xs, config={"runs": 3}, artifact_sha256="ab" * 32)
    return {"host": host, "device": device, "outcome": "ok", "status": "ok", "error": None,
            "samples": {"steady": xs, "warmup": []}, "result": res.to_dict(samples=False), "provenance": "measured",
            "runtime": "onnxruntime", "artifact_path": "/w/m.onnx", "artifact_sha256": "ab" * 32, "env": {},
            "config": {"runs": 3}, "wall_s": 0.1}


def test_farm_cell_is_running_from_dispatch_and_its_row_is_finished_after_a_retry(tmp_path, monkeypatch):
    """A cell's row is `running` while its device works — also during its retry on another device — and the same
    row is finished with the device, attempt and worker host known only at the end."""
    from edgekit.store import ResultsStore

    db, seen = tmp_path / "s.db", []

    def cell(cell, device, bench):
        with ResultsStore(db, read_only=True) as st:
            seen.extend((r.id, r.status, r.config["farm"]["cell"]) for r in st.list_runs())
        if len(seen) == 1:
            return {"host": "h1", "device": device["name"], "outcome": "device", "error": "the device dropped"}
        return _ok_out("h2", device["name"])

    engine, lab, cells = _farm(tmp_path, monkeypatch, cell, _InlineRay())
    with ResultsStore(db) as store:
        result = engine.run_farm(lab, cells, {}, store, "g")
        (run,) = store.list_runs()
    assert seen == [(run.id, "running", "m.onnx.fp32.x86")] * 2  # inserted at dispatch, kept for the retry
    assert result.completed == {"m.onnx.fp32.x86": run.id} and run.status == "ok" and run.group == "g"
    farm = run.config["farm"]
    assert farm["attempt"] == 2 and farm["worker_host"] == "h2" and run.target == f"local@{farm['device']}"
    assert run.config["runs"] == 3 and run.artifact_sha256 == "ab" * 32 and run.artifact_path == "/w/m.onnx"


def test_farm_cell_given_up_or_interrupted_finishes_its_own_row(tmp_path, monkeypatch):
    """A cell whose devices all fail: its one row ends `killed` (run again on resume). A driver interrupted while
    the cell is in flight: the row ends `interrupted` (the store's exit handling), never left `running`."""
    from edgekit.store import ResultsStore

    def crash(cell, device, bench):
        raise RuntimeError("the worker died")

    engine, lab, cells = _farm(tmp_path, monkeypatch, crash, _InlineRay())
    with ResultsStore(tmp_path / "a.db") as store:
        result = engine.run_farm(lab, cells, {}, store, "g")
        runs = store.list_runs()
    assert [r.status for r in runs] == ["killed"] and "the worker died" in runs[0].error
    assert set(result.unfinished) == {"m.onnx.fp32.x86"} and runs[0].config["farm"]["attempt"] == 2

    engine, lab, cells = _farm(tmp_path, monkeypatch, crash, _InlineRay(interrupt_after=0))
    with pytest.raises(KeyboardInterrupt), ResultsStore(tmp_path / "b.db") as store:
        engine.run_farm(lab, cells, {}, store, "g")
    with ResultsStore(tmp_path / "b.db", read_only=True) as store:
        assert [r.status for r in store.list_runs()] == ["interrupted"]
