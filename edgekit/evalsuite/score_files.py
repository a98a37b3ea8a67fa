"""Where scores come from. Every loader returns ScoreRow lists; `ScoreTable.from_rows` is the one interface the
metrics need, whoever produced the rows.

- CSV with a header `model,domain,task,score` (optional `seed` column);
- an `edgekit eval --json` output (EvalResult JSON), macro-F1 by default;
- lm-evaluation-harness results JSON (its "results" dict: task -> {"acc,none": x, "f1,none": y, ...}; f1 is used
  when present, else acc, else acc_norm) plus a TOML map from tasks to domains;
- the results store (edgekit/store.py), when it is installed.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.metrics.robustness import ScoreRow, ScoreTable

LM_EVAL_METRICS: tuple[str, ...] = ("f1", "acc", "acc_norm")  # preference order


# ---------------------------------------------------------------------------------------------------- CSV
CSV_COLUMNS = ("model", "domain", "task", "score")


def read_text_file(path: Path, what: str = "score file") -> str:
    """A file's text as UTF-8 (a leading byte-order mark is dropped). A file that is not UTF-8 is one EdgekitError
    naming the file, the line and the byte, never a UnicodeDecodeError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise EdgekitError(f"{what} {path} does not exist", "check the path") from exc
    except OSError as exc:
        raise EdgekitError(f"cannot read {what} {path} ({exc.strerror or exc})", "give a readable file") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise EdgekitError(
            f"{what} {path} is not UTF-8 text (line {line}: byte 0x{raw[exc.start]:02x}, {exc.reason})",
            f"save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}`",
        ) from exc


def read_csv_scores(path: Path) -> list[ScoreRow]:
    """Rows of a CSV with columns model,domain,task,score[,seed] (any order, extra columns ignored). The file must
    be UTF-8 and every score a finite number."""
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"score file {path} does not exist", "check the path")
    text = read_text_file(path)
    try:
        return _csv_rows(path, text)
    except csv.Error as exc:
        raise EdgekitError(f"{path} is not a readable CSV ({exc})", "write plain comma-separated text") from exc


def _csv_rows(path: Path, text: str) -> list[ScoreRow]:
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise EdgekitError(
                f"{path} lacks the column(s) {', '.join(missing)} (header: {','.join(header) or 'empty'})",
                "write a header line `model,domain,task,score` (optional: seed)",
            )
        rows = []
        for line_no, raw in enumerate(reader, start=2):
            rec = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            try:
                score = float(rec["score"])
                seed = int(rec["seed"]) if rec.get("seed") else 0
            except ValueError as exc:
                raise EdgekitError(
                    f"{path}:{line_no}: score {rec.get('score')!r} / seed {rec.get('seed')!r} is not a number",
                    "write scores as decimals in [0, 1] and seeds as integers",
                ) from exc
            if not math.isfinite(score):
                raise EdgekitError(f"{path}:{line_no}: score {rec['score']!r} is not a finite number",
                                   "write scores as decimals in [0, 1]")
            if not rec["model"] or not rec["domain"] or not rec["task"]:
                raise EdgekitError(
                    f"{path}:{line_no}: model, domain and task must not be empty", "fill them in"
                )
            rows.append(ScoreRow(rec["model"], rec["domain"], rec["task"], score, seed))
    if not rows:
        raise EdgekitError(f"{path} has a header but no scores", "add one line per (model, domain, task)")
    return rows


def write_csv_scores(path: Path, rows: Iterable[ScoreRow], append: bool = True) -> Path:
    """Write rows as CSV (model,domain,task,score,seed); appends to an existing file with the same header."""
    path = Path(path)
    exists = path.is_file() and path.stat().st_size > 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if not (append and exists):
            writer.writerow([*CSV_COLUMNS, "seed"])
        for r in rows:
            writer.writerow([r.model, r.domain, r.task, f"{r.score:.6f}", r.seed])
    return path


# ------------------------------------------------------------------------------------------- edgekit eval JSON
def read_eval_json(path: Path, data: dict[str, Any], metric: str = "macro_f1") -> list[ScoreRow]:
    """Rows from `edgekit eval --json` output (one EvalResult or a list of them)."""
    items = data if isinstance(data, list) else [data]
    rows = []
    for item in items:
        try:
            for i, s in enumerate(item["scores"]):
                value, seed = s[metric], item.get("seed", 0)
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    raise EdgekitError(f"{path}: scores[{i}].{metric} is {value!r}, not a finite number",
                                       "re-run edgekit eval --json; scores are decimals in [0, 1]")
                if isinstance(seed, bool) or not isinstance(seed, int | str) or not str(seed).strip().isdigit():
                    raise EdgekitError(f"{path}: seed is {seed!r}, not a whole number", "re-run edgekit eval --json")
                if not all(isinstance(x, str) and x for x in (item["model"], s["domain"], s["task"])):
                    raise EdgekitError(f"{path}: scores[{i}] needs model, domain and task as text",
                                       "re-run edgekit eval --json")
                rows.append(ScoreRow(item["model"], s["domain"], s["task"], float(value), int(seed)))
        except (KeyError, TypeError, AttributeError) as exc:
            raise EdgekitError(
                f"{path} is not an `edgekit eval --json` result (missing {exc})", "re-run edgekit eval"
            ) from exc
    return rows


# ------------------------------------------------------------------------------------- lm-evaluation-harness
@dataclass(frozen=True)
class DomainMap:
    """Task name (or fnmatch pattern) -> domain, read from TOML:

        [domains]
        law = ["mmlu_professional_law", "mmlu_jurisprudence"]
        healthcare = ["mmlu_clinical_knowledge", "medmcqa*"]

    or, per task, `[tasks]` with `mmlu_professional_law = "law"`. Tasks matching nothing are left out (lm-eval
    also lists group aggregates such as "mmlu", which must not count twice)."""

    patterns: tuple[tuple[str, str], ...]  # (pattern, domain)
    source: str = ""

    @classmethod
    def load(cls, path: Path) -> DomainMap:
        path = Path(path)
        if not path.is_file():
            raise EdgekitError(
                f"task-to-domain map {path} does not exist", "write a TOML file with a [domains] table"
            )
        try:
            doc = tomllib.loads(read_text_file(path, "task-to-domain map"))
        except tomllib.TOMLDecodeError as exc:
            raise EdgekitError(f"{path} is not valid TOML ({exc})", "fix the syntax") from exc
        pairs: list[tuple[str, str]] = []
        for domain, tasks in (doc.get("domains") or {}).items():
            if isinstance(tasks, str):
                tasks = [tasks]
            if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
                raise EdgekitError(
                    f"{path}: domains.{domain} must be a list of task names",
                    'e.g. law = ["mmlu_jurisprudence"]',
                )
            pairs += [(t, str(domain)) for t in tasks]
        for task, domain in (doc.get("tasks") or {}).items():
            if not isinstance(domain, str):
                raise EdgekitError(f"{path}: tasks.{task} must name a domain", f'e.g. {task} = "law"')
            pairs.append((str(task), domain))
        if not pairs:
            raise EdgekitError(
                f"{path} maps no task to a domain", 'add a [domains] table: law = ["task", ...]'
            )
        return cls(tuple(pairs), str(path))

    def domain_of(self, task: str) -> str | None:
        exact = {d for p, d in self.patterns if p == task}
        hits = exact or {d for p, d in self.patterns if fnmatch.fnmatchcase(task, p)}
        if len(hits) > 1:
            raise EdgekitError(
                f"task {task!r} maps to several domains ({', '.join(sorted(hits))}) in {self.source}",
                "make the patterns in the map disjoint",
            )
        return next(iter(hits), None)


@dataclass
class LmEvalImport:
    rows: list[ScoreRow]
    unmapped: list[str] = field(default_factory=list)  # tasks the map does not name
    no_metric: list[str] = field(default_factory=list)  # tasks without f1 / acc / acc_norm


def _pick_metric(values: dict[str, Any]) -> tuple[str, float] | None:
    """f1 if present, else acc, else acc_norm; filter 'none' preferred (keys look like 'acc,none')."""
    for name in LM_EVAL_METRICS:
        candidates = sorted(
            (k for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)
             and math.isfinite(v) and k.split(",")[0] == name),
            key=lambda k: (k.split(",")[1] != "none" if "," in k else False, k),
        )
        if candidates:
            return candidates[0], float(values[candidates[0]])
    return None


def lm_eval_model_name(data: dict[str, Any], path: Path) -> str:
    if isinstance(data.get("model_name"), str) and data["model_name"]:
        return data["model_name"]
    args = (data.get("config") or {}).get("model_args")
    if isinstance(args, str):
        for part in args.split(","):
            key, _, value = part.partition("=")
            if key.strip() == "pretrained" and value.strip():
                return value.strip()
    return path.stem


def _read_json(path: Path, what: str, fix: str) -> Any:
    """Parse a JSON file; a missing or malformed file is one clear EdgekitError (`what` names it, `fix` says what
    to point at instead)."""
    text = read_text_file(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EdgekitError(f"{path} is not valid JSON ({exc})", fix) from exc


def read_lm_eval(
    path: Path, domain_map: DomainMap, model: str | None = None, data: Any = None
) -> LmEvalImport:
    """Rows from one lm-evaluation-harness results JSON file."""
    path = Path(path)
    if data is None:
        data = _read_json(path, "results file", "point at lm-eval's results_*.json")
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise EdgekitError(
            f"{path} has no 'results' table: not an lm-evaluation-harness results file",
            "point at the results_*.json that lm_eval --output_path wrote",
        )
    name = model or lm_eval_model_name(data, path)
    out = LmEvalImport([])
    for task, values in data["results"].items():
        domain = domain_map.domain_of(task)
        if domain is None:
            out.unmapped.append(task)
            continue
        picked = _pick_metric(values if isinstance(values, dict) else {})
        if picked is None:
            out.no_metric.append(task)
            continue
        out.rows.append(ScoreRow(name, domain, task, picked[1]))
    return out


# ---------------------------------------------------------------------------------------------- the store
def read_store_scores(path: Path | None = None, metric: str = "macro_f1") -> list[ScoreRow]:
    """Rows of every evaluation recorded in the results store (edgekit/store.py)."""
    from edgekit.evalsuite.persist import store_score_rows

    return store_score_rows(path, metric)


# ------------------------------------------------------------------------------------------------ dispatch
def load_scores(
    sources: Sequence[str],
    task_map: Path | None = None,
    metric: str = "macro_f1",
    warnings: list[str] | None = None,
) -> ScoreTable:
    """A ScoreTable from SOURCE arguments: `*.csv`, `*.json` (edgekit eval output, or lm-eval results with
    `task_map`; `NAME=path.json` names the model), `store` or a `*.db` / `*.sqlite` store file; none = the store."""
    rows: list[ScoreRow] = []
    dmap: DomainMap | None = None
    for src in sources or ["store"]:
        name, _, rest = src.partition("=") if "=" in src and not Path(src).exists() else ("", "", src)
        path = Path(rest)
        if rest == "store" or path.suffix in (".db", ".sqlite", ".sqlite3"):
            rows += read_store_scores(None if rest == "store" else path, metric)
        elif path.suffix == ".csv":
            rows += read_csv_scores(path)
        elif path.suffix == ".json":
            data = _read_json(path, "score file", "point at a results JSON file")
            if isinstance(data, dict) and "results" in data:
                if task_map is None:
                    raise EdgekitError(
                        f"{path} is an lm-evaluation-harness results file; its tasks need domains",
                        'pass --task-map MAP.toml (a [domains] table: law = ["mmlu_jurisprudence", ...])',
                    )
                dmap = dmap or DomainMap.load(task_map)
                imported = read_lm_eval(path, dmap, name or None, data)
                rows += imported.rows
                if warnings is not None and imported.unmapped:
                    warnings.append(
                        f"{path}: {len(imported.unmapped)} task(s) not in the map, left out: "
                        + ", ".join(imported.unmapped[:8])
                        + (" ..." if len(imported.unmapped) > 8 else "")
                    )
                if warnings is not None and imported.no_metric:
                    warnings.append(f"{path}: no f1/acc/acc_norm for {', '.join(imported.no_metric)}")
            else:
                got = read_eval_json(path, data, metric)
                rows += [ScoreRow(name, r.domain, r.task, r.score, r.seed) for r in got] if name else got
        else:
            raise EdgekitError(
                f"cannot read scores from {src!r}",
                "give a .csv (model,domain,task,score), a .json (edgekit eval or lm-eval results), or `store`",
            )
    if not rows:
        raise EdgekitError(
            "the sources hold no scores", "evaluate models first (edgekit eval) or check the files"
        )
    return ScoreTable(rows)
