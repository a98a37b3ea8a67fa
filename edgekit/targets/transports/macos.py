"""`macos` bridge: a Mac reached over SSH runs the agent with coremltools, because CoreML executes only on macOS.
Compute units: ALL | CPU_ONLY | CPU_AND_GPU | CPU_AND_NE (the Neural Engine). The iPhone 13 profile uses this bridge:
the Mac's CoreML run is the closest automated proxy; a run on the phone itself needs Xcode's performance report
(Xcode > Open Developer Tool > Create ML / model performance report), which edgekit does not drive.
"""

from __future__ import annotations

from typing import Any

from edgekit.errors import EdgekitError
from edgekit.runtime.coreml import COMPUTE_UNITS
from edgekit.targets.profile import TransportSpec
from edgekit.targets.transports.base import CheckReport
from edgekit.targets.transports.ssh import SSHTransport


class MacOSTransport(SSHTransport):
    kind = "macos"
    provenance = "measured"

    def __init__(self, target: str, spec: TransportSpec, **kwargs: Any) -> None:
        if spec.compute_units not in COMPUTE_UNITS:
            raise EdgekitError(f"unknown CoreML compute units {spec.compute_units!r}",
                               f"use one of {', '.join(COMPUTE_UNITS)}")
        super().__init__(target, spec, **kwargs)

    def check(self) -> CheckReport:
        report = super().check()
        system = report.host.get("system")
        if system != "Darwin":
            raise EdgekitError(f"target {self.target}: host {self.host} runs {system or 'an unknown OS'}, not macOS, "
                               "so it cannot run CoreML models",
                               "point --host at a Mac with Remote Login on and `pip install coremltools` there")
        if not report.runtimes.get("coremltools"):
            report.notes.append("coremltools is missing on the Mac: pip install coremltools")
        return report

    def run_bench(self, job: Any, config: Any, return_outputs: bool = False) -> dict[str, Any]:
        if job.format != "coreml":
            raise EdgekitError(f"target {self.target} runs CoreML packages, not {job.format} ({job.describe()})",
                               "export with --format coreml and benchmark the .mlpackage")
        return super().run_bench(job, config, return_outputs)

    def _compute_units(self, job: Any) -> str | None:
        return self.spec.compute_units
