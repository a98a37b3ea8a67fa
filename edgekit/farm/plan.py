"""`edgekit farm plan`: the benchmark matrix (models x formats x precisions x targets) as a CI workflow.

One **cell** = one model, format, precision and target (a device label). Its key (`gem-tiny.onnx.fp32.rpi4`) is
the bench group its runs are stored under, the name of its CI job and of its uploaded results.

- `github_workflow()`: a GitHub Actions workflow. Each cell is a job of one matrix on `runs-on: [self-hosted,
  <target>]` — a runner installed on the device itself, so it measures with `--target local` — running
  `edgekit bench MODEL --format F --precision P --repeat N --group <cell>` (N interleaved runs in fresh processes:
  `edgekit compare` takes runs as its unit), then `edgekit runs export --format json --samples` uploaded as an
  artifact. A final job merges every cell's runs (`edgekit runs import`, which records each run's machine and
  stores its `local` target as `local@<machine>`), runs `edgekit report --check` (exit 1 on a failed budget or
  parity check) and `edgekit compare BASELINE` (exit 1 on a regression above `--fail-above`), and uploads the report.
- `json_matrix()`: the same cells as plain JSON (`{"include": [...]}`, each with its `argv`) for other CI systems.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from edgekit.errors import EdgekitError

LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FORMATS = ("onnx", "tflite", "torch", "coreml")
PRECISIONS = ("fp32", "fp16", "int8", "int4")
DEFAULT_INSTALL = "python3 -m pip install --upgrade edgekit"


@dataclass(frozen=True)
class Cell:
    """One cell of the matrix. `target` is a device label (a self-hosted runner label, or a farm device label)."""

    model: str
    format: str
    precision: str
    target: str

    @property
    def key(self) -> str:
        """Stable, safe as a group name, a job name and a file name: `gem-tiny.onnx.fp32.rpi4`."""
        name = re.sub(r"\.(toml|onnx|tflite|pt2|mlpackage|json)$", "", self.model.rstrip("/").rsplit("/", 1)[-1])
        model = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
        key = f"{model or 'model'}.{self.format}.{self.precision}.{self.target}"
        return key[:64].rstrip(".-_")

    def bench_argv(self, repeat: int, extra: list[str] | None = None) -> list[str]:
        return ["edgekit", "bench", self.model, "--target", "local", "--format", self.format, "--precision",
                self.precision, "--repeat", str(repeat), "--group", self.key, *(extra or [])]

    def to_dict(self) -> dict[str, Any]:
        return {"cell": self.key, **asdict(self)}


def split_list(option: str, text: str | list[str] | None) -> list[str]:
    """`a,b` (or a repeated option) as a list without duplicates, order kept; empty is a usage error."""
    items = text if isinstance(text, list) else [text or ""]
    values = [v.strip() for item in items for v in str(item).split(",") if v.strip()]
    if not values:
        raise EdgekitError(f"{option} is empty", f"give {option} as a comma list, e.g. {option} a,b")
    return list(dict.fromkeys(values))


def expand(models: list[str], formats: list[str], precisions: list[str], targets: list[str]) -> list[Cell]:
    """The cross product, targets outermost (a device's cells are next to each other). Names are checked."""
    for f in formats:
        if f not in FORMATS:
            raise EdgekitError(f"unknown format {f!r}", f"use one of {', '.join(FORMATS)}")
    for p in precisions:
        if p not in PRECISIONS:
            raise EdgekitError(f"unknown precision {p!r}", f"use one of {', '.join(PRECISIONS)}")
    for t in targets:
        if not LABEL_RE.match(t):
            raise EdgekitError(f"target {t!r} is not a usable runner label",
                               "use letters, digits, '.', '_' and '-' (up to 64), e.g. rpi4")
    for m in models:
        if not m or any(c in m for c in "\n\r\"'`$\\"):
            raise EdgekitError(f"model {m!r} cannot be written into a workflow",
                               "give a model card name or a path without quotes, `$` or backslashes")
    cells = [Cell(m, f, p, t) for t in targets for m in models for f in formats for p in precisions]
    seen: dict[str, Cell] = {}
    for c in cells:
        if c.key in seen:
            raise EdgekitError(f"models {seen[c.key].model!r} and {c.model!r} give the same cell key {c.key!r}",
                               "give the models distinct file names")
        seen[c.key] = c
    return cells


def json_matrix(cells: list[Cell], repeat: int) -> dict[str, Any]:
    """`{"include": [{cell, model, format, precision, target, argv}, ...]}` — GitHub's matrix layout, usable as is."""
    return {"include": [{**c.to_dict(), "argv": c.bench_argv(repeat)} for c in cells]}


class _Dumper(__import__("yaml").SafeDumper):
    """PyYAML's SafeDumper with multi-line strings as `|` blocks (readable `run:` scripts) and no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def github_workflow(cells: list[Cell], *, repeat: int = 3, baseline: str = ".edgekit/baseline.json",
                    fail_above: str = "5%", install: str = DEFAULT_INSTALL, bench_args: list[str] | None = None,
                    command_line: str = "") -> str:
    """The workflow file's text (YAML). `baseline` is a report .json (from `edgekit report`) in the repository;
    without it the compare step warns and passes."""
    import yaml

    if not cells:
        raise EdgekitError("the matrix is empty", "give at least one model, format, precision and target")
    extra = " ".join(bench_args or [])
    bench = ('edgekit bench "$MODEL" --target local --format "$FORMAT" --precision "$PRECISION" '
             f'--repeat {repeat} --group "$CELL"' + (f" {extra}" if extra else ""))
    cell_env = {"CELL": "${{ matrix.cell }}", "MODEL": "${{ matrix.model }}", "FORMAT": "${{ matrix.format }}",
                "PRECISION": "${{ matrix.precision }}",
                "EDGEKIT_DB": "${{ runner.temp }}/edgekit-${{ matrix.cell }}.db"}  # a fresh store per cell
    doc: dict[str, Any] = {
        "name": "edgekit device farm",
        "on": {"workflow_dispatch": {}, "push": {"branches": ["main"]}},
        "permissions": {"contents": "read"},
        "jobs": {
            "bench": {
                "name": "bench ${{ matrix.cell }}",
                "runs-on": ["self-hosted", "${{ matrix.target }}"],
                "timeout-minutes": 120,
                "strategy": {"fail-fast": False,
                             "matrix": {"include": [c.to_dict() for c in cells]}},
                "steps": [
                    {"uses": "actions/checkout@v5"},
                    {"name": "Install edgekit", "run": install},
                    {"name": "Benchmark (interleaved runs, each in a fresh process)", "env": cell_env,
                     "run": bench},
                    {"name": "Export the runs", "if": "${{ !cancelled() }}", "env": cell_env,
                     "run": 'edgekit runs export --format json --samples --out "edgekit-runs-$CELL.json"'},
                    {"name": "Upload the runs", "if": "${{ !cancelled() }}", "uses": "actions/upload-artifact@v6",
                     "with": {"name": "edgekit-runs-${{ matrix.cell }}", "path": "edgekit-runs-${{ matrix.cell }}.json",
                              "if-no-files-found": "error"}},
                ],
            },
            "merge": {
                "name": "merge, report, compare",
                "needs": "bench",
                "if": "${{ !cancelled() }}",
                "runs-on": "ubuntu-latest",
                "env": {"EDGEKIT_DB": "${{ github.workspace }}/farm.db", "BASELINE": baseline,
                        "FAIL_ABOVE": fail_above},
                "steps": [
                    {"uses": "actions/checkout@v5"},
                    {"uses": "actions/setup-python@v6", "with": {"python-version": "3.11"}},
                    {"name": "Install edgekit", "run": install},
                    {"uses": "actions/download-artifact@v7",
                     "with": {"pattern": "edgekit-runs-*", "path": "farm-runs", "merge-multiple": True}},
                    {"name": "Merge the runs of every device", "run": "edgekit runs import farm-runs/*.json"},
                    {"name": "Report (fails on a budget or parity check)",
                     "run": "edgekit report --all --check --out reports/farm"},
                    {"name": "Compare with the baseline (fails on a regression)",
                     "run": 'if [ -f "$BASELINE" ]; then\n'
                            '  edgekit compare "$BASELINE" reports/farm.json --fail-above "$FAIL_ABOVE"\n'
                            'else\n'
                            '  echo "::warning::no baseline report at $BASELINE: nothing to compare with. Commit '
                            'reports/farm.json of a good run there."\n'
                            'fi\n'},
                    {"name": "Upload the report", "if": "${{ !cancelled() }}", "uses": "actions/upload-artifact@v6",
                     "with": {"name": "edgekit-report", "path": "reports/"}},
                ],
            },
        },
    }
    command_line = " ".join(command_line.split())  # one comment line, whatever the arguments held
    head = ("# Written by edgekit farm plan" + (f": {command_line}" if command_line else "") +
            "\n# Regenerate it rather than editing it. Each device needs a self-hosted runner with its label "
            "(docs/farm.md).\n")
    return head + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=120, default_flow_style=False)


def render(cells: list[Cell], ci: str, **kwargs: Any) -> str:
    if ci == "github":
        return github_workflow(cells, **kwargs)
    if ci == "json":
        return json.dumps(json_matrix(cells, kwargs.get("repeat", 3)), indent=2) + "\n"
    raise EdgekitError(f"unknown --ci {ci!r}", "use --ci github or --ci json")
