"""Energy probes on fake sysfs trees laid out like the real ones (powercap/RAPL with wrap-around, ODPM, hwmon,
battery), the external-command probe, the measured and modeled energy formulas, and the power profile."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from edgekit.bench.energy import (
    DEFAULT_W_PER_CORE,
    BatteryProbe,
    CommandProbe,
    EnergyMeter,
    EnergyWindow,
    HwmonPowerProbe,
    OdpmProbe,
    RaplProbe,
    _integrate,
    detect_probe,
    measured_energy,
    modeled_energy,
    power_profile,
    probe_from_spec,
)
from edgekit.errors import EdgekitError


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def make_rapl(root: Path, zones: dict[str, tuple[str, int, int]]) -> Path:
    """zones: dir name -> (name, energy_uj, max_energy_range_uj), as in /sys/class/powercap."""
    base = root / "sys/class/powercap"
    for d, (name, energy, rng) in zones.items():
        write(base / d / "name", name)
        write(base / d / "energy_uj", str(energy))
        write(base / d / "max_energy_range_uj", str(rng))
    return base


def test_rapl_sums_packages_and_handles_wrap_around(tmp_path):
    base = make_rapl(tmp_path, {
        "intel-rapl:0": ("package-0", 999_000, 1_000_000),
        "intel-rapl:0:0": ("core", 500, 1_000_000),  # inside package-0: not counted twice
        "intel-rapl:1": ("package-1", 10_000, 1_000_000),
        "intel-rapl:2": ("psys", 7, 1_000_000),  # platform total overlaps the packages: left out
    })
    probe = RaplProbe(root=tmp_path)
    assert probe.available() == (True, "")
    assert probe.read() == 0.0  # the first read sets the baseline
    write(base / "intel-rapl:0/energy_uj", "2000")  # wrapped: 999000 -> 1000000 == 0 -> 2000, i.e. +3000 µJ
    write(base / "intel-rapl:1/energy_uj", "15000")  # +5000 µJ
    assert probe.read() == pytest.approx(8000e-6)
    write(base / "intel-rapl:0/energy_uj", "4000")  # +2000 µJ, no wrap
    assert probe.read() == pytest.approx(10_000e-6)
    chosen = RaplProbe(root=tmp_path, domains=["psys"])
    chosen.read()
    write(base / "intel-rapl:2/energy_uj", "1000007")
    assert chosen.read() == pytest.approx(1.0)


def test_rapl_reports_why_it_is_not_usable(tmp_path):
    assert not RaplProbe(root=tmp_path).available()[0]
    probe, reasons = detect_probe(tmp_path)
    assert probe is None and any(r.startswith("rapl:") for r in reasons)
    with pytest.raises(EdgekitError, match="rapl is not readable"):
        detect_probe(tmp_path, "rapl")
    with pytest.raises(EdgekitError, match="unknown energy probe"):
        detect_probe(tmp_path, "geiger")
    assert detect_probe(tmp_path, "none")[0] is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_rapl_root_only_counter_says_how_to_fix(tmp_path):
    base = make_rapl(tmp_path, {"intel-rapl:0": ("package-0", 1, 100)})
    (base / "intel-rapl:0/energy_uj").chmod(0)
    ok, why = RaplProbe(root=tmp_path).available()
    assert not ok and "chmod" in why


def test_detect_prefers_rapl_then_others(tmp_path):
    make_rapl(tmp_path, {"intel-rapl:0": ("package-0", 1, 100)})
    write(tmp_path / "sys/class/hwmon/hwmon0/name", "ina260")
    write(tmp_path / "sys/class/hwmon/hwmon0/power1_input", "2500000")
    assert isinstance(detect_probe(tmp_path)[0], RaplProbe)
    assert isinstance(detect_probe(tmp_path, "hwmon")[0], HwmonPowerProbe)


def test_odpm_rails(tmp_path):
    f = tmp_path / "sys/bus/iio/devices/iio:device0/energy_value"
    write(f, "t=1000\nCH0(T=1000)[S4M_VDD_CPUCL0], 1000000\nCH1(T=1000)[S5M_VDD_INT], 250000")
    write(tmp_path / "sys/bus/iio/devices/iio:device1/energy_value", "t=1000\nCH0(T=1000)[L15M_VDD_SLC_M], 5")
    probe = OdpmProbe(root=tmp_path)
    assert probe.available() == (True, "")
    assert probe.read() == pytest.approx(1.250005)  # µWs summed over every rail -> J
    cpu = OdpmProbe(root=tmp_path, rails=["S4M_VDD_CPUCL0"])
    assert cpu.read() == pytest.approx(1.0)
    write(f, "t=2000\nCH0(T=2000)[S4M_VDD_CPUCL0], 3000000\nCH1(T=2000)[S5M_VDD_INT], 250000")
    assert cpu.read() == pytest.approx(3.0)
    assert not OdpmProbe(root=tmp_path, rails=["NOPE"]).available()[0]
    assert isinstance(probe_from_spec(cpu.spec()), OdpmProbe)


def test_hwmon_and_battery_power(tmp_path):
    write(tmp_path / "sys/class/hwmon/hwmon3/name", "ina219")
    write(tmp_path / "sys/class/hwmon/hwmon3/power1_input", "2500000")  # µW
    write(tmp_path / "sys/class/hwmon/hwmon0/name", "k10temp")
    hw = HwmonPowerProbe(root=tmp_path)
    assert hw.available()[0] and hw.kind == "power"
    assert hw.read() == pytest.approx(2.5)
    bat = tmp_path / "sys/class/power_supply/BAT0"
    write(bat / "type", "Battery")
    write(bat / "status", "Discharging")
    write(bat / "current_now", "-500000")  # µA (negative while discharging on some gauges)
    write(bat / "voltage_now", "4000000")  # µV
    probe = BatteryProbe(root=tmp_path)
    assert probe.available()[0]
    assert probe.read() == pytest.approx(2.0)
    write(bat / "status", "Charging")
    ok, why = probe.available()
    assert not ok and "unplug" in why


def test_power_samples_are_integrated():
    w = _integrate([(0.0, 2.0), (1.0, 4.0), (2.0, 4.0)])
    assert w.joules == pytest.approx(3.0 + 4.0) and w.seconds == 2.0 and w.readings == 3
    assert w.watts == pytest.approx(3.5)


def test_meter_samples_a_power_probe_in_a_thread(tmp_path):
    write(tmp_path / "sys/class/hwmon/hwmon0/name", "ina260")
    write(tmp_path / "sys/class/hwmon/hwmon0/power1_input", "3000000")
    meter = EnergyMeter(HwmonPowerProbe(root=tmp_path), interval_s=0.01)
    meter.start()
    time.sleep(0.1)
    w = meter.stop()
    assert w.readings >= 3
    assert w.watts == pytest.approx(3.0)
    assert w.joules == pytest.approx(3.0 * w.seconds)


def test_meter_on_a_running_rapl_counter(tmp_path):
    """A counter that advances like a 12 W package: idle baseline and active window both near 12 W."""
    base = make_rapl(tmp_path, {"intel-rapl:0": ("package-0", 0, 2**40)})
    stop = threading.Event()
    t0 = time.perf_counter()

    def tick() -> None:
        while not stop.is_set():
            tmp = base / "intel-rapl:0/energy_uj.tmp"  # atomic, like a sysfs read: never a half-written file
            tmp.write_text(str(int((time.perf_counter() - t0) * 12e6)))
            tmp.replace(base / "intel-rapl:0/energy_uj")
            time.sleep(0.002)

    th = threading.Thread(target=tick, daemon=True)
    th.start()
    try:
        time.sleep(0.01)
        meter = EnergyMeter(RaplProbe(root=tmp_path))
        idle = meter.idle(0.25, parts=5)
        meter.start()
        time.sleep(0.2)
        active = meter.stop()
    finally:
        stop.set()
        th.join()
    assert idle.watts == pytest.approx(12.0, rel=0.25)
    assert active.watts == pytest.approx(12.0, rel=0.25)
    assert idle.power_std_w is not None


def test_measured_energy_formula():
    probe = RaplProbe()
    idle = EnergyWindow(joules=10.0, seconds=5.0, power_std_w=0.1)  # 2 W idle
    active = EnergyWindow(joules=12.0, seconds=2.0)  # 6 W while running
    r = measured_energy(probe, idle, active, inferences=1000)
    assert r.provenance == "measured" and r.source == "rapl"
    assert r.j_per_inference == pytest.approx((12.0 - 2.0 * 2.0) / 1000)
    assert r.error_band_j == pytest.approx((0.1 * 2.0 + 2 * probe.resolution_j) / 1000)
    assert r.idle_w == pytest.approx(2.0) and r.active_w == pytest.approx(6.0)


def test_command_probe_energy_and_power(tmp_path):
    script = tmp_path / "meter.py"
    counter = tmp_path / "count"
    counter.write_text("0")
    script.write_text(
        "import json, pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) + 1; p.write_text(str(n))\n"
        "print('meter v1 ready')\n"
        "print(json.dumps({'energy_j': n * 0.5}))\n"
    )
    probe = CommandProbe([sys.executable, str(script)])
    assert probe.available() == (True, "") and probe.kind == "counter"
    assert probe.read() == pytest.approx(1.0)
    watts = CommandProbe(f"{sys.executable} -c 'print(\"{{\\\"power_w\\\": 3.5}}\")'")
    assert watts.available()[0] and watts.kind == "power" and watts.read() == 3.5
    bad = CommandProbe([sys.executable, "-c", "print('{\"volts\": 1}')"])
    ok, why = bad.available()
    assert not ok and "energy_j" in why
    assert not CommandProbe([sys.executable, "-c", "raise SystemExit(3)"]).available()[0]


PROFILE = """
name = "{name}"
soc = "Test SoC"
memory_bandwidth_gbs = 10.0
[[cpu.clusters]]
name = "Cortex-A53"
cores = 4
max_ghz = 1.2
flops_per_cycle = {{ fp32 = 8 }}
[power]
idle_w = {idle}
active_w = {active}
source = "measured at the wall"
[transport]
kind = "{kind}"
[sources]
cpu = "datasheet"
peak_gflops = "derived: 4 x 1.2 x 8"
memory_bandwidth_gbs = "datasheet"
power = "datasheet"
"""


def write_profile(path: Path, idle: object = 2.0, active: object = 12.0, kind: str = "ssh") -> Path:
    path.write_text(PROFILE.format(name=path.stem, idle=idle, active=active, kind=kind))
    return path


def test_power_profile_from_target_toml(tmp_path):
    write_profile(tmp_path / "local.toml", kind="local")
    prof = power_profile("local", cores_used=4, directory=tmp_path)
    assert (prof.idle_w, prof.active_w) == (2.0, 12.0) and "local.toml" in prof.assumption
    assert "measured at the wall" in prof.assumption
    r = modeled_energy(mean_latency_ms=20.0, std_latency_ms=2.0, inferences=50, profile=prof)
    assert r.provenance == "modeled" and r.source == "power-model"
    assert r.j_per_inference == pytest.approx(0.020 * 10.0)  # latency x (active - idle)
    assert r.error_band_j == pytest.approx(0.002 * 10.0)


def test_power_profile_default_and_errors(tmp_path):
    prof = power_profile("local", cores_used=3, directory=tmp_path)
    assert prof.active_w == pytest.approx(3 * DEFAULT_W_PER_CORE) and prof.idle_w == 0.0
    assert "targets/local.toml" in prof.assumption
    (tmp_path / "rpi4.toml").write_text(PROFILE.format(name="rpi4", idle=1, active=2, kind="ssh").replace(
        "[power]\nidle_w = 1\nactive_w = 2\nsource = \"measured at the wall\"\n", ""))
    with pytest.raises(EdgekitError, match="missing the \\[power\\] table"):
        power_profile("rpi4", directory=tmp_path)
    (tmp_path / "rpi4.toml").write_text("[power\nidle_w = 2")
    with pytest.raises(EdgekitError, match="not valid TOML"):
        power_profile("rpi4", directory=tmp_path)
    write_profile(tmp_path / "pixel6.toml", active='"lots"')
    with pytest.raises(EdgekitError, match="`power.active_w` must be a number"):
        power_profile("pixel6", directory=tmp_path)


def test_power_profile_reads_the_profile_the_user_named(tmp_path, monkeypatch):
    """A path given as the target is read through the one profile loader (edgekit.targets.profile), not looked up by
    name in the built-in targets/ folder; `bench --target FILE` hands the loaded profile to the runner."""
    from edgekit.targets.profile import load_target

    board = write_profile(tmp_path / "myboard.toml", idle=1.5, active=4.5, kind="local")
    prof = power_profile(str(board), cores_used=2)
    assert (prof.idle_w, prof.active_w) == (1.5, 4.5) and "myboard.toml" in prof.assumption
    assert power_profile(load_target(str(board))) == prof

    import edgekit.bench.runner as runner
    from edgekit.targets.remote import bench_on_target

    seen = []
    monkeypatch.setattr(runner, "run_benchmark", lambda job, config, **kw: seen.append((config, kw)) or "result")
    run = bench_on_target(["job"], str(board), runner.BenchConfig())
    assert run.results == ["result"] and seen[0][0].target == "myboard"
    assert power_profile(seen[0][1]["target_profile"]) == prof
