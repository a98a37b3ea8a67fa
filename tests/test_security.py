"""Hostile files and hosts (issue 11, security): a .pt2 whose pickled weights run code is never loaded unless an
edgekit manifest vouches for its bytes or the user passes --trust; manifest entries stay inside the manifest's
folder; a changed SSH host key is refused with advice that does not trust the new key; the Markdown report shows
user-derived text, never renders it. Real files, real subprocesses, a real SSH server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import asyncssh
import pytest

from edgekit.bench.jobs import resolve_jobs
from edgekit.errors import EdgekitError
from edgekit.export.artifact import Artifact, Manifest
from edgekit.files import file_sha256

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
sys.path.insert(0, str(Path(__file__).parent))
from sshd import TestSSHServer  # noqa: E402

FAST = ["--runs", "1", "--warmup", "0", "--min-time", "0", "--energy", "none"]


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """The real `edgekit` entry point in a subprocess (EDGEKIT_DB / EDGEKIT_CACHE come from conftest)."""
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# -- 1. a hostile .pt2 ---------------------------------------------------------------------------------------------


def tiny_pt2(path: Path) -> Path:
    """A real torch.export program (.pt2) of a 4 -> 2 Linear layer; its input is x:1x4:float32."""
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

    torch.export.save(torch.export.export(Tiny(), (torch.zeros(1, 4),)), str(path))
    return path


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # what a hostile author puts in a pickle: any callable with any arguments
        return (os.system, (f"touch {self.marker}",))


def evil_pt2(good: Path, out: Path, marker: Path) -> Path:
    """`good` with its first weight replaced by a pickle whose unpickling runs `touch marker` (the weights config
    is switched to `use_pickle`, so torch.export.load unpickles it with torch.load(weights_only=False))."""
    import torch

    payload = io.BytesIO()
    torch.save(_Payload(marker), payload)
    with zipfile.ZipFile(good) as src:
        entries = {info.filename: src.read(info.filename) for info in src.infolist()}
    cfg_name = next(n for n in entries if n.endswith("data/weights/model_weights_config.json"))
    cfg = json.loads(entries[cfg_name])
    first = next(iter(cfg["config"].values()))
    first["use_pickle"] = True
    entries[cfg_name] = json.dumps(cfg).encode()
    weight_name = next(n for n in entries if n.endswith("data/weights/" + first["path_name"]))
    entries[weight_name] = payload.getvalue()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for name, data in entries.items():
            dst.writestr(name, data)
    return out


@pytest.fixture(scope="module")
def pt2_files(tmp_path_factory):
    """(good.pt2, evil.pt2, marker path); the evil file is proven hostile once: plain torch.export.load in a
    separate process creates the marker."""
    d = tmp_path_factory.mktemp("pt2")
    good = tiny_pt2(d / "good.pt2")
    proof = d / "PROOF-MARKER"
    probe = evil_pt2(good, d / "probe.pt2", proof)
    subprocess.run([sys.executable, "-c", f"import torch\ntry: torch.export.load({str(probe)!r})\nexcept Exception: "
                    "pass"], capture_output=True, timeout=120)
    assert proof.exists(), "the crafted .pt2 is not hostile: the test would prove nothing"
    return good, d


def _evil(pt2_files, where: Path, name: str = "evil.pt2") -> tuple[Path, Path]:
    good, _ = pt2_files
    marker = where / f"MARKER-{name}"
    where.mkdir(parents=True, exist_ok=True)
    return evil_pt2(good, where / name, marker), marker


def _manifest(directory: Path, entries: list[Artifact], model: str = "tiny") -> Path:
    return Manifest(model=model, source="zoo", edgekit_version="test", created="2026-01-01T00:00:00",
                    inputs=[{"name": "x", "shape": [1, 4], "dtype": "float32"}], outputs=["output_0"],
                    artifacts=entries).write(directory)


def _art(path: str, fmt: str = "torch", sha256: str | None = None, precision: str = "fp32") -> Artifact:
    return Artifact(model="tiny", format=fmt, precision=precision, path=path, sha256=sha256,
                    inputs=[{"name": "x", "shape": [1, 4], "dtype": "float32"}])


def test_bench_untrusted_pt2_is_refused_before_unpickling(pt2_files, tmp_path):
    evil, marker = _evil(pt2_files, tmp_path)
    proc = cli("bench", str(evil), "--input", "x:1x4:float32", *FAST)
    assert not marker.exists(), "the payload ran"
    line = one_line_error(proc, "evil.pt2", "--trust", "edgekit export")
    assert "sha256" in line or "manifest" in line


def test_bench_dir_whose_manifest_has_a_wrong_sha256_refuses(pt2_files, tmp_path):
    good, _ = pt2_files
    evil, marker = _evil(pt2_files, tmp_path / "export")
    _manifest(tmp_path / "export", [_art("evil.pt2", sha256=file_sha256(good))])  # the hash of other bytes
    proc = cli("bench", str(tmp_path / "export"), *FAST)
    assert not marker.exists(), "the payload ran"
    one_line_error(proc, "evil.pt2", "sha256", "--trust")
    # the manifest beside the file does not vouch for it either
    proc = cli("bench", str(evil), "--input", "x:1x4:float32", *FAST)
    one_line_error(proc, "evil.pt2", "--trust")
    assert not marker.exists()


def test_pt2_the_manifest_vouches_for_runs_and_trust_overrides(pt2_files, tmp_path):
    good, _ = pt2_files
    d = tmp_path / "export"
    d.mkdir()
    ok = d / "tiny.pt2"
    ok.write_bytes(good.read_bytes())
    _manifest(d, [_art("tiny.pt2", sha256=file_sha256(ok))])
    proc = cli("bench", str(d), "--json", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["status"] == "ok"
    lone = tmp_path / "lone.pt2"
    lone.write_bytes(good.read_bytes())
    one_line_error(cli("bench", str(lone), "--input", "x:1x4:float32", *FAST), "lone.pt2", "--trust")
    proc = cli("bench", str(lone), "--input", "x:1x4:float32", "--trust", "--json", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["status"] == "ok"


def test_benchmark_child_refuses_an_unverified_pt2(pt2_files, tmp_path):
    """The child must not load an unverified file even when a caller skipped the parent's check."""
    from edgekit.bench.runner import run_child

    evil, marker = _evil(pt2_files, tmp_path)
    job = {"path": str(evil), "format": "torch", "runtime": "torch",
           "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}], "seed": 0, "threads": None,
           "provider": None, "extra": {}, "warmup": 0, "runs": 1, "min_time_s": 0.0, "max_time_s": 5.0,
           "energy": None, "idle_s": 0.0, "sysfs_root": "/", "cpus": []}
    for trusted in (None, file_sha256(pt2_files[0])):  # no hash, and the hash of other bytes
        status, payload, _ = run_child({**job, "trusted_sha256": trusted})
        assert status == "error" and "--trust" in payload["fix"], payload
        assert not marker.exists(), "the payload ran in the child"


def test_torch_runtime_refuses_an_unverified_pt2(pt2_files, tmp_path):
    from edgekit.runtime import RuntimeOptions
    from edgekit.runtime.torch import TorchRuntime

    evil, marker = _evil(pt2_files, tmp_path)
    with pytest.raises(EdgekitError) as err:
        TorchRuntime().load(evil)
    assert "no edgekit manifest vouches" in err.value.problem and "--trust" in err.value.fix
    with pytest.raises(EdgekitError, match="sha256"):
        TorchRuntime().load(evil, RuntimeOptions(extra={"trusted_sha256": "0" * 64}))
    assert not marker.exists()
    good = pt2_files[0]
    session = TorchRuntime().load(good, RuntimeOptions(extra={"trusted_sha256": file_sha256(good)}))
    assert session.input_names == ["x"]


def test_other_commands_do_not_load_a_pt2(pt2_files, tmp_path):
    evil, marker = _evil(pt2_files, tmp_path)
    for args in (["eval", str(evil)], ["predict", str(evil), "--target", "rpi4"],
                 ["bench", str(evil), "--format", "torch", *FAST], ["bench", str(evil), "--compile", *FAST]):
        proc = cli(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert not marker.exists()


# -- 4. manifest paths stay inside the manifest's folder --------------------------------------------------------


@pytest.mark.parametrize("entry", ["../secret.mlpackage", "../../secret.mlpackage", "ABS", "sub/../../secret.mlpackage",
                                   "link.mlpackage", "."])
def test_manifest_entry_outside_its_folder_is_refused(tmp_path, entry):
    secret = tmp_path / "secret.mlpackage"
    secret.mkdir()
    (secret / "Manifest.json").write_text("{}")
    (tmp_path / "a" / "secret.mlpackage").mkdir(parents=True)
    d = tmp_path / "a" / "export"
    d.mkdir()
    (d / "link.mlpackage").symlink_to(secret)
    rel = str(secret) if entry == "ABS" else entry
    _manifest(d, [_art(rel, fmt="coreml", sha256="0" * 64)])
    with pytest.raises(EdgekitError, match="outside") as err:
        resolve_jobs(str(d))
    assert "manifest" in err.value.one_line() and "\n" not in err.value.one_line()


def test_manifest_entry_in_a_subfolder_is_accepted(tmp_path):
    d = tmp_path / "export"
    (d / "sub" / "m.mlpackage").mkdir(parents=True)
    (d / "sub" / "m.mlpackage" / "Manifest.json").write_text("{}")
    _manifest(d, [_art("sub/m.mlpackage", fmt="coreml", sha256="0" * 64)])
    [job] = resolve_jobs(str(d))
    assert job.path == d / "sub" / "m.mlpackage" and job.error is None


def test_cli_bench_dir_with_escaping_entry_is_one_line(tmp_path):
    (tmp_path / "secret").write_text("password")
    d = tmp_path / "export"
    d.mkdir()
    _manifest(d, [_art("../secret", fmt="coreml", sha256="0" * 64)])
    one_line_error(cli("bench", str(d), *FAST), "../secret", "outside")


# -- 5. a changed SSH host key --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    key = asyncssh.generate_private_key("ssh-ed25519")
    (d / "id_good").write_bytes(key.export_private_key())
    (d / "id_good").chmod(0o600)
    srv = TestSSHServer(tmp_path_factory.mktemp("remote-home"), [key]).start()
    yield srv, d / "id_good"
    srv.stop()


def _changed_known_hosts(srv: TestSSHServer, path: Path, kind: str = "ssh-ed25519") -> Path:
    other = asyncssh.generate_private_key(kind).export_public_key("openssh").decode()
    path.write_text(f"[127.0.0.1]:{srv.port} {other}")
    return path


@pytest.mark.parametrize(("tofu", "recorded"), [(False, "ssh-ed25519"), (True, "ssh-ed25519"),
                                               (False, "ssh-rsa")])  # rsa: the device offers no key of that type
def test_changed_host_key_message_does_not_suggest_trusting_it(ssh_server, tmp_path, tofu, recorded):
    from edgekit.targets.profile import TransportSpec
    from edgekit.targets.transports.ssh import SSHTransport

    srv, identity = ssh_server
    kh = _changed_known_hosts(srv, tmp_path / "known_hosts", recorded)
    before = kh.read_text()
    spec = TransportSpec(kind="ssh", host="127.0.0.1", port=srv.port, user="pi", known_hosts=str(kh),
                         identity_file=str(identity), workdir=str(tmp_path / "remote"), python=sys.executable,
                         connect_timeout_s=5, timeout_s=30, retries=1)
    with pytest.raises(EdgekitError) as err:
        SSHTransport("rpi4", spec, trust_on_first_use=tofu).check()
    line = err.value.one_line()
    assert "does NOT match" in err.value.problem and str(kh) in line and "127.0.0.1" in line
    assert "attack" in line
    assert "ssh-keyscan" not in line and ">>" not in line
    assert "ssh-keygen -lf /etc/ssh/ssh_host_" in err.value.fix and "console" in err.value.fix
    assert f"ssh-keygen -R '[127.0.0.1]:{srv.port}'" in err.value.fix
    assert srv.host_key.get_fingerprint("sha256") in line  # the key the device offered, to compare
    assert kh.read_text() == before  # nothing recorded


def test_changed_host_key_is_named_when_the_device_drops_the_key_exchange(ssh_server, tmp_path, monkeypatch):
    """A device that refuses the key exchange can drop the connection before the client reads why (it did on a
    loaded host: 'Connection lost', reported as unreachable). The offered key is then compared with the record."""
    import asyncssh

    from edgekit.targets.profile import TransportSpec
    from edgekit.targets.transports.ssh import SSHTransport

    srv, identity = ssh_server
    kh = _changed_known_hosts(srv, tmp_path / "known_hosts", "ssh-rsa")

    async def dropped(**_kw):
        raise asyncssh.ConnectionLost("Connection lost")

    monkeypatch.setattr(asyncssh, "connect", dropped)
    spec = TransportSpec(kind="ssh", host="127.0.0.1", port=srv.port, user="pi", known_hosts=str(kh),
                         identity_file=str(identity), workdir=str(tmp_path / "remote"), python=sys.executable,
                         connect_timeout_s=5, timeout_s=30, retries=1)
    with pytest.raises(EdgekitError) as err:
        SSHTransport("rpi4", spec).check()
    assert "does NOT match" in err.value.problem and srv.host_key.get_fingerprint("sha256") in err.value.problem


def test_cli_changed_host_key_is_one_line(ssh_server, tmp_path):
    srv, identity = ssh_server
    kh = _changed_known_hosts(srv, tmp_path / "known_hosts")
    proc = cli("targets", "check", "rpi4", "--host", "127.0.0.1", "--port", str(srv.port), "--user", "pi",
               "--known-hosts", str(kh), "--identity", str(identity))
    line = one_line_error(proc, "does NOT match", str(kh))
    assert "ssh-keyscan" not in line


# -- 6. the Markdown report escapes user-derived text -----------------------------------------------------------


HOSTILE = "<img src=x onerror=alert(1)>"


def test_markdown_report_escapes_user_derived_text(tmp_path):
    from reportdata import add_bench_run

    from edgekit.report import Selection, build_report, open_store
    from edgekit.report.markdown import render_markdown
    from edgekit.store import ResultsStore

    with ResultsStore(Path(os.environ["EDGEKIT_DB"])) as store:
        add_bench_run(store, model=HOSTILE, target="dev|ice<script>alert(2)</script>")
        add_bench_run(store, model="m [x](javascript:alert(3)) \\", status="failed",
                      error="<b onmouseover=alert(4)>boom</b> | &lt;i&gt; a < b")
    store = open_store(None)
    try:
        report = build_report(store, Selection(all_runs=True))
    finally:
        store.close()
    md = render_markdown(report)
    for raw in ("<img", "<script", "</script", "<b "):
        assert raw not in md, raw
    assert not re.search(r"(?:^|[^\\])(?:\\\\)*\]\(javascript", md)  # no unescaped `](`: no link
    from markdown_it import MarkdownIt  # a CommonMark renderer with raw HTML on (rich depends on it)

    html = MarkdownIt("commonmark").enable("table").render(md)
    for raw in ("<img", "<script", "<b ", "href=\"javascript"):
        assert raw not in html, raw
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&amp;lt;i&amp;gt;" in html
    assert "&lt;img src=x onerror=alert(1)>" in md and "&amp;lt;i&amp;gt;" in md
    assert "a < b" in md  # a lone `<` is not markup: kept readable
    # every table row keeps its column count: a pipe in a value does not add a column
    for block in md.split("\n\n"):
        rows = [ln for ln in block.splitlines() if ln.startswith("|")]
        if rows:
            widths = {len([c for c in ln.replace("\\\\", "").replace("\\|", "").split("|")]) for ln in rows}
            assert len(widths) == 1, rows
