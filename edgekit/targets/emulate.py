"""`--emulate`: run the device agent on arm64 under qemu-aarch64-static, with the real aarch64 wheels of the runtime
and an arm64 sysroot built from Debian packages. It proves an artifact loads and computes the same outputs on Arm;
its timings are labelled `emulated` (an instruction-set emulator says nothing about a board's speed).

Prepare once (root for apt, network to Debian and PyPI):  `make emulate-setup`  or
`python -m edgekit.targets.emulate setup [--cache DIR]`. It
1. needs qemu-aarch64-static (Debian: `apt-get install qemu-user-static`);
2. `dpkg --add-architecture arm64`, `apt-get update`, `apt-get download` Python 3.11 and its shared libraries for
   arm64, and `dpkg -x` each into <cache>/sysroot (nothing is installed on this host);
3. `pip download --only-binary=:all: --platform manylinux_2_28_aarch64 --python-version 3.11` onnxruntime 1.24.x and
   numpy into <cache>/wheels and unpacks them into <cache>/site. onnxruntime >= 1.32 for aarch64 crashes under
   qemu 7.2 (Debian 12's), 1.24 works. (Recent onnxruntime wheels are tagged manylinux_2_27/2_28, which
   `--platform manylinux2014_aarch64` does not match.)
The cache is $EDGEKIT_EMULATE_CACHE, else $EDGEKIT_CACHE/emulate/aarch64, else ~/.cache/edgekit/emulate/aarch64.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.paths import cache_root
from edgekit.targets.transports.base import (
    AGENT_PATH,
    AgentFailedError,
    CheckReport,
    Transport,
    agent_args,
    parse_agent_output,
)

QEMU = "qemu-aarch64-static"
PYTHON = "usr/bin/python3.11"
DEBIAN_PACKAGES = (
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "libgcc-s1", "libstdc++6",
    "libexpat1", "zlib1g", "libffi8", "libssl3", "libbz2-1.0", "liblzma5", "libsqlite3-0", "libuuid1",
    "libncursesw6", "libtinfo6", "libreadline8", "libcrypt1", "libnsl2", "libtirpc3", "libdb5.3",
    "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3", "libkrb5support0", "libcom-err2", "libkeyutils1",
)
WHEELS = ("onnxruntime==1.24.*", "numpy>=1.26,<2.4")
PLATFORM = "manylinux_2_28_aarch64"
# Emulation runs ~1000x slower than the board: a handful of runs proves the artifact works.
MAX_RUNS, MAX_WARMUP = 3, 1


def cache_dir() -> Path:
    """$EDGEKIT_EMULATE_CACHE, else $EDGEKIT_CACHE/emulate/aarch64, else ~/.cache/edgekit/emulate/aarch64."""
    if os.environ.get("EDGEKIT_EMULATE_CACHE"):
        return Path(os.environ["EDGEKIT_EMULATE_CACHE"]).expanduser()
    return cache_root() / "emulate" / "aarch64"


def status(cache: Path | None = None) -> tuple[bool, str]:
    """(ready, why not): qemu on PATH and a prepared sysroot with the runtime wheels."""
    cache = cache or cache_dir()
    if shutil.which(QEMU) is None:
        return False, f"{QEMU} is not installed (Debian/Ubuntu: apt-get install qemu-user-static)"
    if not (cache / "sysroot" / PYTHON).is_file():
        return False, f"no arm64 sysroot in {cache} (run `make emulate-setup`)"
    if not (cache / "site" / "onnxruntime").is_dir():
        return False, f"no aarch64 onnxruntime in {cache / 'site'} (run `make emulate-setup`)"
    return True, ""


def _run(argv: list[str], log: Callable[[str], None], cwd: Path | None = None) -> str:
    log("$ " + " ".join(argv))
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EdgekitError(f"`{' '.join(argv[:3])} ...` failed ({tail[0][:200]})",
                           "run `make emulate-setup` as root with network access to Debian and PyPI")
    return proc.stdout


def setup(cache: Path | None = None, log: Callable[[str], None] = print, wheels: tuple[str, ...] = WHEELS) -> Path:
    """Build (or complete) the arm64 sysroot and the aarch64 wheels in `cache`; returns the cache path."""
    cache = cache or cache_dir()
    if shutil.which(QEMU) is None:
        raise EdgekitError(f"{QEMU} is not installed", "apt-get install qemu-user-static (as root)")
    debs, sysroot, wheel_dir, site = cache / "debs", cache / "sysroot", cache / "wheels", cache / "site"
    for d in (debs, sysroot, wheel_dir, site):
        d.mkdir(parents=True, exist_ok=True)
    if not (sysroot / PYTHON).is_file():
        if "arm64" not in _run(["dpkg", "--print-foreign-architectures"], log).split():
            _run(["dpkg", "--add-architecture", "arm64"], log)
            _run(["apt-get", "update"], log)
        try:
            _run(["apt-get", "download", *[f"{p}:arm64" for p in DEBIAN_PACKAGES]], log, cwd=debs)
        except EdgekitError:
            _run(["apt-get", "update"], log)  # arm64 lists may be missing or stale
            _run(["apt-get", "download", *[f"{p}:arm64" for p in DEBIAN_PACKAGES]], log, cwd=debs)
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg", "-x", str(deb), str(sysroot)], log)
    if not (site / "onnxruntime").is_dir():
        _run([sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--platform", PLATFORM,
              "--python-version", "3.11", "--implementation", "cp", "-d", str(wheel_dir), *wheels], log)
        for whl in sorted(wheel_dir.glob("*.whl")):
            log(f"unpack {whl.name}")
            with zipfile.ZipFile(whl) as zf:
                zf.extractall(site)
    ready, why = status(cache)
    if not ready:
        raise EdgekitError(f"the emulation setup is incomplete: {why}", "re-run `make emulate-setup`")
    (cache / "READY.json").write_text(json.dumps({"packages": list(DEBIAN_PACKAGES), "wheels": list(wheels),
                                                  "platform": PLATFORM}, indent=2))
    return cache


class EmulateTransport(Transport):
    """Runs the agent under qemu-aarch64-static on this host. Timings are `emulated`; outputs are compared with
    this host's runtime on the same seeded inputs."""

    kind = "emulate"
    provenance = "emulated"

    def __init__(self, target: str, cache: Path | None = None, timeout_s: float = 900.0) -> None:
        super().__init__(target)
        self.cache = cache or cache_dir()
        self.timeout_s = timeout_s

    @property
    def address(self) -> str:
        return f"qemu-aarch64 ({self.cache})"

    def _argv(self, args: list[str]) -> tuple[list[str], dict[str, str]]:
        ready, why = status(self.cache)
        if not ready:
            raise EdgekitError(f"cannot emulate {self.target}: {why}", "run `make emulate-setup` (needs root and "
                               "network access to Debian and PyPI), or leave out --emulate")
        sysroot = self.cache / "sysroot"
        env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
               "PYTHONPATH": str(self.cache / "site"), "PYTHONNOUSERSITE": "1"}
        return [QEMU, "-L", str(sysroot), str(sysroot / PYTHON), str(AGENT_PATH), *args], env

    def _call(self, args: list[str], what: str) -> dict[str, Any]:
        argv, env = self._argv(args)
        where = f"target {self.target} (emulated arm64)"
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=self.timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise AgentFailedError(f"{where}: {what} did not finish within {self.timeout_s:g} s under qemu",
                                   "emulation is slow: benchmark a smaller model, or fewer --runs") from exc
        sig = None
        if proc.returncode < 0:
            import signal

            sig = signal.Signals(-proc.returncode).name
        return parse_agent_output(proc.stdout, where, proc.returncode if proc.returncode >= 0 else None, sig,
                                  proc.stderr)

    def check(self) -> CheckReport:
        event = self._call(["check"], "the agent check")
        return CheckReport(target=self.target, transport=self.kind, address=self.address,
                           host=event.get("host", {}), runtimes=event.get("runtimes", {}),
                           notes=["emulated with qemu-aarch64-static: functional results are real, timings are not"])

    def run_bench(self, job: Any, config: Any, return_outputs: bool = True) -> dict[str, Any]:
        import dataclasses

        if job.format != "onnx":
            raise EdgekitError(f"emulation runs ONNX artifacts (onnxruntime aarch64), not {job.format}",
                               "benchmark the .onnx artifact with --emulate")
        small = dataclasses.replace(config, runs=min(config.runs, MAX_RUNS), warmup=min(config.warmup, MAX_WARMUP),
                                    min_time_s=0.0)
        result = self._call(agent_args(job, small, str(Path(job.path).resolve()), return_outputs=True),
                            f"running {job.describe()}")
        result["provenance"] = self.provenance
        result["requested_runs"] = small.runs  # capped on purpose: not a time-cap warning
        result["transport"] = {"kind": self.kind, "address": self.address}
        result["parity"] = compare_with_host(job, config.seed, result.get("outputs") or [])
        if not return_outputs:
            result.pop("outputs", None)
        return result


def compare_with_host(job: Any, seed: int, outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare the emulated outputs with this host's runtime on the same seeded inputs (the host's own parity with
    PyTorch is in the export manifest). Tolerances: edgekit's per-precision defaults."""
    from edgekit.runtime import runtime_for_format
    from edgekit.specs import DEFAULT_TOLERANCES

    rng = np.random.default_rng(seed)
    feeds = {s.name: s.random(rng) for s in job.inputs}
    session = runtime_for_format(job.format).load(Path(job.path))
    ref = session.run(feeds)
    tol = DEFAULT_TOLERANCES.get(job.precision, DEFAULT_TOLERANCES["fp32"])
    if len(ref) != len(outputs):
        return {"verdict": "fail", "note": f"{len(outputs)} outputs on arm64, {len(ref)} on this host"}
    worst_abs, scale, cos = 0.0, 0.0, 1.0
    for r, o in zip(ref, outputs, strict=True):
        a = np.asarray(o["values"], dtype=np.float64).reshape(o["shape"])
        b = np.asarray(r, dtype=np.float64)
        if a.shape != b.shape:
            return {"verdict": "fail", "note": f"output shape {a.shape} on arm64 vs {b.shape} on this host"}
        worst_abs = max(worst_abs, float(np.max(np.abs(a - b))) if a.size else 0.0)
        scale = max(scale, float(np.max(np.abs(b))) if b.size else 0.0)
        denom = float(np.linalg.norm(a) * np.linalg.norm(b))
        cos = min(cos, float(a.ravel() @ b.ravel()) / denom if denom else 1.0)
    ok = worst_abs <= tol["atol"] + tol["rtol"] * scale
    return {"verdict": "pass" if ok else "fail", "max_abs": worst_abs, "cosine": cos, "tolerance": tol,
            "reference": f"{session.describe().get('runtime')} {session.describe().get('version')} on this host"}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m edgekit.targets.emulate",
                                     description="Prepare or inspect the arm64 emulation cache.")
    parser.add_argument("cmd", choices=["setup", "status"])
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "setup":
            path = setup(args.cache)
            print(f"arm64 emulation ready in {path}")
            return 0
        ready, why = status(args.cache)
        print("ready" if ready else f"not ready: {why}")
        return 0 if ready else 1
    except EdgekitError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
