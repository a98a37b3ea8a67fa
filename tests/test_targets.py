"""Target profiles (loader, sources, errors, plugins, local detection) and the targets / predict / bench --target
commands without a device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgekit.errors import EdgekitError
from edgekit.targets.profile import (
    builtin_dir,
    detect_local,
    list_profiles,
    load_target,
    numeric_fields,
    parse_profile,
    source_for,
)

SHIPPED = sorted(p.stem for p in builtin_dir().glob("*.toml"))
MINIMAL = """
name = "{name}"
soc = "Test SoC"
memory_bandwidth_gbs = 10.0
[[cpu.clusters]]
name = "Cortex-A53"
cores = 4
max_ghz = 1.2
flops_per_cycle = {{ fp32 = 8 }}
[power]
idle_w = 1.0
active_w = 3.0
[transport]
kind = "ssh"
[sources]
cpu = "datasheet"
peak_gflops = "derived: 4 x 1.2 x 8"
memory_bandwidth_gbs = "datasheet"
power = "datasheet"
"""


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_required_targets_are_shipped():
    assert {"rpi4", "pixel6", "iphone13", "npu", "coral-edgetpu", "rk3588-npu"} <= set(SHIPPED)
    assert "local" in list_profiles()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_number_has_a_source_and_power(name):
    p = load_target(name)
    for fld in numeric_fields(p):
        src = source_for(p, fld)
        assert src and len(src) > 10, (name, fld)
    assert p.power.active_w >= p.power.idle_w >= 0
    assert p.transport.kind in ("ssh", "adb", "macos", "command")
    for prec, value in p.peak_gflops.items():  # declared peaks agree with cores x GHz x FLOP/cycle
        derived = sum(c.peak_gflops(prec) or 0 for c in p.clusters)
        assert derived == pytest.approx(value, rel=0.01), (name, prec)


def test_published_figures():
    rpi4, coral, iphone = load_target("rpi4"), load_target("coral-edgetpu"), load_target("iphone13")
    assert rpi4.soc == "Broadcom BCM2711" and rpi4.cores == 4 and rpi4.clusters[0].name == "Cortex-A72"
    assert coral.accelerator.tops == 4.0 and coral.power.active_w == 2.0
    assert iphone.accelerator.tops == 15.8 and iphone.transport.kind == "macos"
    assert load_target("rk3588-npu").accelerator.tops == 6.0
    assert [c.cores for c in load_target("pixel6").clusters] == [2, 2, 4]


def test_bench_engine_reads_the_power_table():
    from edgekit.bench.energy import power_profile

    prof = power_profile("rpi4")
    assert (prof.idle_w, prof.active_w) == (2.7, 6.4) and "Dramble" in prof.assumption


def test_unknown_target_is_one_clear_error():
    with pytest.raises(EdgekitError, match="unknown target 'nosuch'") as err:
        load_target("nosuch")
    assert "rpi4" in err.value.fix and "targets/nosuch.toml" in err.value.fix


@pytest.mark.parametrize("text, needle", [
    ("name = [", "is not valid TOML"),
    (MINIMAL.format(name="x").replace("[power]\nidle_w = 1.0\nactive_w = 3.0\n", ""), "missing the [power] table"),
    (MINIMAL.format(name="x").replace('memory_bandwidth_gbs = "datasheet"\n', ""), "no source for memory_bandwidth_gbs"),
    (MINIMAL.format(name="x").replace('kind = "ssh"', 'kind = "telnet"'), "unknown transport kind 'telnet'"),
    (MINIMAL.format(name="x").replace("idle_w = 1.0", 'idle_w = "one"'), "`power.idle_w` must be a number"),
    (MINIMAL.format(name="x").replace("active_w = 3.0", "active_w = 0.5"), "is below idle_w"),
    (MINIMAL.format(name="x").replace('[transport]\nkind = "ssh"', '[transport]\nkind = "command"\ncommand = "run me"'),
     "must be a list of arguments"),
])
def test_malformed_profiles_name_file_and_fix(tmp_path, text, needle):
    path = tmp_path / "board.toml"
    path.write_text(text)
    with pytest.raises(EdgekitError) as err:
        load_target(str(path))
    line = err.value.one_line()
    assert needle in line and str(path) in line and "fix:" in line


def test_peaks_are_derived_from_clusters_when_absent(tmp_path):
    p = parse_profile(__import__("tomllib").loads(MINIMAL.format(name="board")), "board.toml")
    assert p.peak_gflops == {"fp32": pytest.approx(38.4)}


def test_user_profiles_directory(tmp_path, monkeypatch):
    (tmp_path / "myboard.toml").write_text(MINIMAL.format(name="myboard"))
    monkeypatch.setenv("EDGEKIT_TARGETS", str(tmp_path))
    assert "myboard" in list_profiles() and load_target("myboard").soc == "Test SoC"


def test_entry_point_plugin(tmp_path, monkeypatch):
    """A third-party package registering a target under the older `edgekit.targets` entry point group (read by
    the built-in plugin edgekit.targets.transports)."""
    pkg = tmp_path / "site"
    (pkg / "myplugin").mkdir(parents=True)
    (pkg / "myplugin" / "__init__.py").write_text(textwrap.dedent(f'''
        import tomllib
        def profile():
            return tomllib.loads({MINIMAL.format(name="plugboard")!r})
    '''))
    dist = pkg / "myplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[edgekit.targets]\nplugboard = myplugin:profile\n")
    monkeypatch.syspath_prepend(str(pkg))
    from edgekit import plugins

    plugins.reset()  # entry points are read once per process: read them again with the new package on sys.path
    try:
        assert "plugboard" in list_profiles()
        p = load_target("plugboard")
        assert p.name == "plugboard" and p.path.startswith("entry point plugboard")
    finally:
        sys.path.remove(str(pkg))
        plugins.reset()


def test_local_is_detected():
    p = detect_local()
    assert p.name == "local" and p.cores == os.cpu_count() and p.transport.kind == "local"
    assert p.ram_gb and p.ram_gb > 0.1
    assert "onnx" in p.formats
    if p.clusters[0].max_ghz:
        assert p.peak_gflops["fp32"] > 0 and "derived" in p.sources["peak_gflops"]


def test_cli_list_and_show():
    proc = cli("targets", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["rpi4"]["fp32_gflops"] == 96.0 and rows["coral-edgetpu"]["transport"] == "ssh"
    proc = cli("targets", "show", "rpi4")
    assert proc.returncode == 0 and "Dramble" in proc.stdout and "Cortex-A72" in proc.stdout
    proc = cli("targets", "show", "nosuch")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "unknown target 'nosuch'" in proc.stderr


def test_cli_check_without_device_says_why():
    proc = cli("targets", "check", "pixel6")
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1
    assert "adb" in proc.stderr and "fix:" in proc.stderr
    proc = cli("targets", "check", "local", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["runtimes"]["onnxruntime"]


def test_cli_predict_and_bench_without_device(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_ssh import tiny_onnx

    onnx_path = tiny_onnx(tmp_path / "mlp.onnx")
    proc = cli("predict", str(onnx_path), "--target", "rpi4", "--json")
    assert proc.returncode == 0, proc.stderr
    (pred,) = json.loads(proc.stdout)
    assert pred["provenance"] == "predicted" and pred["target"] == "rpi4" and pred["p50_ms"] > 0
    # The Pi 4 has published priors (targets/rpi4.toml [[published]]): the expected error is stated, not "unknown".
    assert pred["calibration"]["n_samples"] == 13 and pred["calibration"]["kind"] == "prior"
    assert "leave-one-out over 13 published models" in pred["calibration"]["error_text"]
    proc = cli("bench", str(onnx_path), "--target", "rpi4")
    assert proc.returncode == 0, proc.stderr
    assert "predicted" in proc.stdout and "published" in proc.stdout
    proc = cli("bench", str(onnx_path), "--target", "pixel6")  # no priors, no runs: says so
    assert proc.returncode == 0, proc.stderr
    assert "predicted" in proc.stdout and "calibration error unknown" in proc.stdout
    proc = cli("predict", str(onnx_path), "--target", "npu")
    assert proc.returncode == 2 and "has no peak GFLOP/s" in proc.stderr
