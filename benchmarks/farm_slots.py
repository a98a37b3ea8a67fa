"""Wall time of a 6-cell `edgekit farm run` on 1 vs 2 device slots (a benchmark script, not a timed test).

The lab is the one the farm tests use: this host (transport local) and the SSH test server on 127.0.0.1
(tests/fixtures/sshd.py; the agent runs as a real subprocess), both labelled `x86`, so any cell can run on either.
The matrix is 3 tiny ONNX models x 2 repeats = 6 cells, each measured with `--runs 50 --min-time 1` (about 1-2 s of
timed runs). Each configuration runs the real CLI with a local Ray instance in a fresh store; wall time includes
Ray's start (about 6 s here).

    .venv/bin/python benchmarks/farm_slots.py            # 1 slot, then 2 slots, then 1 again (drift check)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import asyncssh  # noqa: E402
from farm_models import tiny_onnx  # noqa: E402
from sshd import TestSSHServer  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        key = asyncssh.generate_private_key("ssh-ed25519")
        (d / "id").write_bytes(key.export_private_key())
        (d / "id").chmod(0o600)
        srv = TestSSHServer(d, [key]).start()
        (d / "known_hosts").write_text(srv.known_hosts_line())
        models = [str(tiny_onnx(d / f"m{i}.onnx", hidden=h)) for i, h in enumerate((16, 32, 64))]
        head = (f'[farm]\nname = "slots"\n\n[matrix]\nmodels = {models!r}\ntargets = ["x86"]\nrepeat = 2\n\n'
                '[bench]\nruns = 50\nmin_time_s = 1.0\nwarmup = 5\nenergy = "none"\n\n').replace("'", '"')
        local = '[[device]]\nname = "host-01"\nprofile = "local"\nlabels = ["x86"]\n\n'
        ssh = (f'[[device]]\nname = "ssh-01"\nprofile = "rpi4"\ntransport = "ssh"\naddress = "pi@127.0.0.1:{srv.port}"\n'
               f'labels = ["x86"]\nknown_hosts = "{d / "known_hosts"}"\nidentity_file = "{d / "id"}"\n'
               f'python = "{sys.executable}"\nworkdir = "{d / "remote"}"\n')
        try:
            for name, devices in (("1 slot (host-01)", local), ("2 slots (host-01 + ssh-01)", local + ssh),
                                  ("1 slot again (host-01)", local)):
                farm = d / "farm.toml"
                farm.write_text(head + devices)
                db = d / f"{time.monotonic_ns()}.db"
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "-q", "farm", "run", "--farm", str(farm),
                                       "--db", str(db), "--json"], capture_output=True, text=True, timeout=900)
                wall = time.perf_counter() - t0
                if proc.returncode != 0:
                    raise SystemExit(f"{name}: rc {proc.returncode}\n{proc.stderr}")
                import json

                summary = json.loads(proc.stdout)
                per_dev = ", ".join(f"{x['device']} {x['done']} cells {x['busy_s']:.1f} s busy"
                                    for x in summary["devices"])
                print(f"{name}: command {wall:.1f} s, farm loop {summary['wall_s']:.1f} s "
                      f"({len(summary['completed'])} cells; {per_dev})", flush=True)
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
