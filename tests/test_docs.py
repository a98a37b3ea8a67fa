"""Every shell command shown in README.md and docs/*.md runs, so the examples cannot rot (issue 14, item 4).

How it works:
- `doc_commands()` reads the fenced code blocks of README.md and docs/*.md and takes each line that starts with
  `edgekit`, `.venv/bin/edgekit`, `make` or `$ edgekit` (a trailing `\\` joins the next line; `# comments` are
  dropped). Synopsis lines — with `[--option]`/`[ARG]` brackets or `a|b` alternatives — describe syntax, not a
  command, and are skipped.
- Each command runs through the real CLI (`.venv/bin/edgekit` beside sys.executable, else `python -m edgekit.cli`)
  in one temporary working directory shared by this module, with its own store and cache (EDGEKIT_DB,
  EDGEKIT_CACHE under that directory), so later commands see what earlier ones made: `PREREQUISITES` names the
  commands that must have run first (export before `bench artifacts/gem-tiny`, study before `eval <its artifact>`);
  each runs once and its result is reused.
- `SHRINK` replaces a command by a smaller one (fewer timed runs, shorter training) to keep `make test` fast; the
  replacement must keep the documented command's meaning, only its sizes.
- `NOT_RUN` is the one table of commands that are not run, each with its reason (a device, root, a long time, the
  network). A command in the docs that is neither run nor in this table fails `test_every_command_is_accounted_for`.
- `SLOW` commands (measured on the 2-core shared host, in the comment) carry the `slow` marker: `make test-slow`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_START = re.compile(r"^\s*(?:\$\s+)?(?:\.venv/bin/edgekit|edgekit|make)(?:\s|$)")
SYNOPSIS = re.compile(r"\[[-A-Za-z.]|\w\|\w")  # `[--json]`, `[RUN_IDS...]`, `json|csv`

# Commands that are not run, with the reason. Keys are the command as written (comment dropped, spaces squeezed).
NOT_RUN: dict[str, str] = {
    "make run": "long time (train, export to every format, eval each artifact, bench, `study fragility --quick`: about 2.5 min) and it writes "
                "artifacts/ and reports/ of the checkout; its parts run below one by one",
    "make test": "runs this test suite (recursion)",
    "make setup": "network: creates .venv and pip-installs the dependencies",
    "make evaldata": "root + network: apt-get installs the Debian text packages",
    "make emulate-setup && edgekit bench gem-tiny --target rpi4 --emulate":
        "root + network: installs qemu-user-static and downloads an arm64 sysroot (about 240 MB)",
    "make emulate-setup": "root + network: installs qemu-user-static and downloads an arm64 sysroot (about 240 MB)",
    "make test-emulate": "needs `make emulate-setup` (root + network)",
    "edgekit bench gem-tiny --target rpi4 --emulate": "needs qemu-aarch64-static and the arm64 sysroot "
                                                      "(`make emulate-setup`, root + network)",
    "edgekit bench gem-tiny --target rpi4 --host 192.168.1.42 --user pi": "a device: a Raspberry Pi over SSH",
    "edgekit bench gem-tiny --target rpi4 --host 192.168.1.42": "a device: a Raspberry Pi over SSH",
    "edgekit targets check rpi4 --host 192.168.1.42 --user pi": "a device: a Raspberry Pi over SSH",
    "edgekit study fragility": "long time: 2 targets x 2 seeds x 8 compressions, about 10 min on 2 cores",
    "edgekit study fragility --targets all": "long time: about 4x the default study (about 40 min on 2 cores)",
    "edgekit study fragility --size small": "long time: the default study on gem-small (well over 10 min)",
    "edgekit farm run --farm farm.toml": "a lab of devices (docs/farm.md's farm.toml names boards at 192.168.1.x) "
                                         "and Ray; tests/test_farm_run.py runs a real lab",
    "edgekit farm run --farm farm.toml --resume": "a lab of devices and Ray (tests/test_farm_run.py resumes one)",
    "edgekit farm run --farm farm.toml --address HEAD:6379": "an existing Ray cluster",
}

# Smaller stand-ins for slow commands: same command, smaller sizes. Documented here, applied in `argv_of`.
FAST_BENCH = " --runs 5 --min-time 0.05 --warmup 1 --max-time 2"
SHRINK: dict[str, str] = {
    "edgekit bench gem-tiny --target local": "edgekit bench gem-tiny --target local" + FAST_BENCH,
    "edgekit bench artifacts/gem-tiny --runs 100 --min-time 2": "edgekit bench artifacts/gem-tiny" + FAST_BENCH,
    # two artifacts instead of every one: 3 interleaved runs of each is still what the comparison needs
    "edgekit bench artifacts/gem-tiny --repeat 3 --group before":
        "edgekit bench artifacts/gem-tiny --repeat 3 --group before --format onnx,tflite --precision fp32" + FAST_BENCH,
    "edgekit bench artifacts/gem-tiny --repeat 3 --group after":
        "edgekit bench artifacts/gem-tiny --repeat 3 --group after --format onnx,tflite --precision fp32" + FAST_BENCH,
    # one epoch over 30 examples per domain instead of all of them (about 6.5 min as written)
    "edgekit eval gem-tiny --train-epochs 1": "edgekit eval gem-tiny --train-epochs 1 --max-train 30",
    "edgekit study fragility --json": "edgekit study fragility --quick --json",
}

# What must have run first (in the same working directory and store).
EXPORT = "edgekit export gem-tiny --format onnx,tflite,coreml --precision fp16,int8 --out artifacts/gem-tiny"
STUDY = "edgekit study fragility --quick --out artifacts/study"
PREREQUISITES: dict[str, list[str]] = {
    "edgekit bench artifacts/gem-tiny --runs 100 --min-time 2": [EXPORT],
    "edgekit bench artifacts/gem-tiny --repeat 3 --group before": [EXPORT],
    "edgekit bench artifacts/gem-tiny --repeat 3 --group after": [EXPORT],
    "edgekit report --last-group --out reports/gem": ["edgekit bench gem-tiny --target local"],
    "edgekit runs list": ["edgekit bench gem-tiny --target local"],
    "edgekit compare before after --fail-above 5%": ["edgekit bench artifacts/gem-tiny --repeat 3 --group before",
                                                     "edgekit bench artifacts/gem-tiny --repeat 3 --group after"],
    "edgekit eval artifacts/study/gem-tiny.kd-law.s0.int8.onnx --trained": [STUDY],
    'edgekit metrics --reference "gem-tiny base" --target "gem-tiny kd-law int8=law"': [STUDY],
    "edgekit report --last-group --out reports/latest": ["edgekit bench gem-tiny --target local"],
    "edgekit runs export --format json --samples --out runs-rpi4.json": ["edgekit bench gem-tiny --target local"],
    "edgekit runs import runs-rpi4.json --db farm.db": [
        "edgekit runs export --format json --samples --out runs-rpi4.json"],
}

# Over the `make test` budget (about 3 min for this module on 2 shared cores): measured wall time in the comment.
SLOW: set[str] = {
    "edgekit eval gem-tiny --train-epochs 1",  # 40 s with --max-train 30
    "edgekit study fragility --quick",  # 70 s
    STUDY,  # 70 s
    "edgekit study fragility --json",  # 70 s (run as --quick --json)
    "edgekit eval artifacts/study/gem-tiny.kd-law.s0.int8.onnx --trained",  # needs the study: 75 s
    'edgekit metrics --reference "gem-tiny base" --target "gem-tiny kd-law int8=law"',  # needs the study: 72 s
}

# Files the docs' commands read, written into the working directory before anything runs.
MY_MODEL = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.head = nn.Linear(4, 10)

    def forward(self, pixels):
        return self.head(self.conv(pixels).mean(dim=(2, 3)))


def build():
    torch.manual_seed(0)
    return Net()


def example_inputs():
    return (torch.randn(1, 3, 224, 224),)
'''
# docs/metrics.md's worked example as a score file (model,domain,task,score).
SCORES_CSV = """model,domain,task,score
base,law,law-a,0.60
base,law,law-b,0.70
base,finance,finance,0.70
base,stem,stem,0.80
base,commonsense,commonsense,0.75
base-law-int8,law,law-a,0.85
base-law-int8,law,law-b,0.75
base-law-int8,finance,finance,0.56
base-law-int8,stem,stem,0.64
base-law-int8,commonsense,commonsense,0.60
"""
# Output a command must print (beside exit 0 and no traceback), where the docs show it.
EXPECT: dict[str, list[str]] = {
    "edgekit metrics scores.csv --reference base --target base-law-int8=law": ["0.143", "0.200", "0.650",
                                                                                "0.067 (stem)"],
    ".venv/bin/edgekit --help": ["Usage: edgekit"],
}


@dataclass(frozen=True)
class DocCommand:
    source: str  # README.md:17
    text: str  # the command as written, comment dropped, spaces squeezed


def _strip_comment(line: str) -> str:
    return re.sub(r"(^|\s)#.*$", "", line).strip()


def doc_commands() -> list[DocCommand]:
    """The shell commands in the fenced code blocks of README.md and docs/*.md, synopsis lines left out."""
    found: list[DocCommand] = []
    for path in DOC_FILES:
        lines = path.read_text().splitlines()
        in_block = False
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.lstrip().startswith("```"):
                in_block = not in_block
                i += 1
                continue
            if in_block and COMMAND_START.match(line):
                start = i
                text = _strip_comment(line)
                while text.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    text = text[:-1] + " " + _strip_comment(lines[i])
                text = " ".join(text.split())
                text = text[2:] if text.startswith("$ ") else text
                if not SYNOPSIS.search(text):
                    found.append(DocCommand(f"{path.relative_to(ROOT)}:{start + 1}", text))
            i += 1
    return found


def _cli() -> list[str]:
    exe = Path(sys.executable).parent / "edgekit"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edgekit.cli"]


def argv_of(text: str) -> list[str]:
    """The argv that runs a documented command (after SHRINK), `edgekit` being this checkout's CLI."""
    argv = shlex.split(SHRINK.get(text, text))
    assert argv[0] in ("edgekit", ".venv/bin/edgekit"), f"only edgekit commands run here: {text}"
    return _cli() + argv[1:]


class Workspace:
    """A working directory with its own store and cache; runs each command once and keeps the result."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {**os.environ, "EDGEKIT_DB": str(path / "edgekit.db"), "EDGEKIT_CACHE": str(path / "cache"),
                    "COLUMNS": "120", "PYTHONWARNINGS": "ignore"}
        self.results: dict[str, tuple[subprocess.CompletedProcess, float]] = {}
        (path / "path" / "to").mkdir(parents=True)
        (path / "path" / "to" / "my_model.py").write_text(MY_MODEL)
        (path / "scores.csv").write_text(SCORES_CSV)

    def run(self, text: str) -> tuple[subprocess.CompletedProcess, float]:
        if text not in self.results:
            for before in PREREQUISITES.get(text, []):
                proc, _ = self.run(before)
                assert proc.returncode == 0, f"prerequisite `{before}` failed:\n{proc.stderr[-3000:]}"
            t0 = time.monotonic()
            proc = subprocess.run(argv_of(text), cwd=self.path, env=self.env, capture_output=True, text=True,
                                  timeout=900)
            self.results[text] = (proc, time.monotonic() - t0)
        return self.results[text]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("docs-workspace"))


def _params() -> list:
    seen: set[str] = set()
    params = []
    for cmd in doc_commands():
        if cmd.text in NOT_RUN or cmd.text in seen:
            continue
        seen.add(cmd.text)
        marks = [pytest.mark.slow] if cmd.text in SLOW else []
        params.append(pytest.param(cmd, id=f"{cmd.source} {cmd.text}"[:120], marks=marks))
    return params


@pytest.mark.parametrize("cmd", _params())
def test_doc_command_runs(cmd: DocCommand, workspace: Workspace) -> None:
    proc, seconds = workspace.run(cmd.text)
    shown = f"`{cmd.text}` ({cmd.source}, {seconds:.0f} s) exited {proc.returncode}:\n" \
            f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, shown
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    for expected in EXPECT.get(cmd.text, []):
        assert expected in proc.stdout, f"{expected!r} missing from the output of {shown}"


def test_every_command_is_accounted_for() -> None:
    """The extractor finds the docs' commands and sees through synopses; the tables name only real commands."""
    texts = {c.text for c in doc_commands()}
    assert EXPORT in texts and "edgekit models list 'gem-*'" in texts
    assert not any(t.startswith("edgekit runs show ID") for t in texts), "a synopsis was taken for a command"
    stale = [k for k in [*NOT_RUN, *SHRINK, *SLOW, *EXPECT] if k not in texts and k != STUDY]
    assert not stale, f"tables name commands the docs no longer show: {stale}"
    for needed in PREREQUISITES.values():
        assert all(n in texts or n == STUDY for n in needed)


def test_synopsis_lines_are_not_commands() -> None:
    assert SYNOPSIS.search("edgekit runs export [--format json|csv] [--samples] [--out FILE]")
    assert SYNOPSIS.search("edgekit report [RUN_IDS...] [--last N | --all]")
    assert not SYNOPSIS.search("edgekit models list 'gem-*'")
    assert not SYNOPSIS.search("edgekit compare before after --fail-above 5%")


def test_docs_reference_only_files_in_the_repository() -> None:
    """Every `*.md` a doc names exists in the checkout (README and docs once pointed at ../shared/DESIGN.md)."""
    missing = []
    for path in DOC_FILES:
        for name in re.findall(r"[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b", path.read_text()):
            if "NAME" in name or name.startswith("reports/"):  # generated report names
                continue
            candidates = [ROOT / name, path.parent / name]
            if not any(c.resolve().is_file() and ROOT in c.resolve().parents for c in candidates):
                missing.append(f"{path.relative_to(ROOT)}: {name}")
    assert not missing, missing
