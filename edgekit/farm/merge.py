"""`edgekit runs import`: merge runs exported on other machines (`edgekit runs export --format json [--samples]`)
into one results store, without duplicates, keeping provenance and the machine each run came from.

- Every run has a stable `uuid` (edgekit/migrations.py m002): a run already in the store (same uuid) is skipped, so
  importing the same file twice, or files that overlap, adds each run once. An export written before runs had a
  uuid gets a deterministic one (uuid5 of machine, id, created time and artifact hash), so it is skipped the second
  time too.
- `origin` records where the run came from: `machine` (the exporting host's name, recorded by `runs export`, or
  `--machine`), the `file`, the time it was `imported`, its `id` and `target` in the source store. A run that was
  itself imported keeps its first origin (its real machine) and adds the hop to `origin.via`.
- `provenance` (measured / emulated / predicted / modeled), status, env, config, result and every latency sample
  are kept as they were. A run whose target was `local` ("the machine that ran it") is stored as
  `local@<machine>`, so runs of two machines are never compared as the same target; the original is in
  `origin.target`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.store import _JSON_COLUMNS, RUN_COLUMNS, RUN_STATUSES, SAMPLE_PHASES, ResultsStore

_NS = uuid.UUID("6f1c4d0e-7a52-4b8e-9a57-2f3f1d9b8e41")  # edgekit's namespace for derived run uuids


@dataclass
class ImportReport:
    """What `import_files` did: new run ids, runs skipped as already present, per file and per machine."""

    imported: list[int] = field(default_factory=list)
    duplicates: int = 0
    files: dict[str, dict[str, int]] = field(default_factory=dict)  # file -> {"imported": n, "duplicates": n}
    machines: dict[str, int] = field(default_factory=dict)  # machine -> runs imported

    def to_dict(self) -> dict[str, Any]:
        return {"imported": len(self.imported), "duplicates": self.duplicates, "run_ids": self.imported,
                "files": self.files, "machines": self.machines}


def _bad(file: Path, why: str) -> EdgekitError:
    return EdgekitError(f"{file} is not an edgekit runs export ({why})",
                        "write it with `edgekit runs export --format json --samples --out FILE` on the machine "
                        "that ran the benchmarks")


def read_export(file: Path) -> list[dict[str, Any]]:
    """The runs of an export file, each checked; anything else is one EdgekitError naming the file and the run."""
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EdgekitError(f"runs file {file} does not exist", "check the path") from exc
    except IsADirectoryError as exc:
        raise EdgekitError(f"runs file {file} is a folder", f"give the JSON files in it, e.g. {file}/*.json") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        if file.suffix.lower() == ".csv":
            why = "a CSV export: only JSON keeps every field"
        raise _bad(file, why) from exc
    if not isinstance(doc, list):
        raise _bad(file, "expected a JSON list of runs")
    for i, run in enumerate(doc):
        problem = _run_problem(run)
        if problem:
            raise _bad(file, f"run #{i + 1}: {problem}")
    return doc


def _run_problem(run: Any) -> str | None:
    if not isinstance(run, dict):
        return "not an object"
    for key in ("kind", "created", "status"):
        if not isinstance(run.get(key), str) or not run[key]:
            return f"`{key}` must be text"
    if run["status"] not in RUN_STATUSES:
        return f"`status` {run['status']!r} is not one of {', '.join(RUN_STATUSES)}"
    for key in ("env", "config", "result", "origin"):
        if run.get(key) is not None and not isinstance(run[key], dict):
            return f"`{key}` must be an object"
    for key in ("finished", "group", "model", "format", "precision", "target", "runtime", "provenance", "error",
                "artifact_path", "artifact_sha256", "uuid", "machine"):
        if run.get(key) is not None and not isinstance(run[key], str):
            return f"`{key}` must be text"
    if run.get("uuid") is not None:
        try:
            uuid.UUID(run["uuid"])
        except ValueError:
            return f"`uuid` {run['uuid']!r} is not a UUID"
    if run.get("id") is not None and (not isinstance(run["id"], int) or isinstance(run["id"], bool)):
        return "`id` must be an integer"
    samples = run.get("samples") or {}
    if not isinstance(samples, dict) or any(p not in SAMPLE_PHASES or not isinstance(v, list)
                                            for p, v in samples.items()):
        return f"`samples` must map {', '.join(SAMPLE_PHASES)} to lists of milliseconds"
    if any(not isinstance(x, int | float) or isinstance(x, bool) for v in samples.values() for x in v):
        return "a latency in `samples` is not a number"
    return None


def run_uuid(run: dict[str, Any], machine: str) -> str:
    """The run's own uuid, else one derived from what identifies it (stable: the same run gets the same uuid)."""
    if run.get("uuid"):
        return str(uuid.UUID(run["uuid"]))
    key = f"{machine}|{run.get('id')}|{run['created']}|{run.get('artifact_sha256')}|{run.get('group')}"
    return str(uuid.uuid5(_NS, key))


def import_files(store: ResultsStore, files: list[Path], machine: str | None = None) -> ImportReport:
    """Import every run of the export files into `store` (each run in its own transaction, committed at once).
    Every file is read and checked before anything is written, so a bad file leaves the store untouched."""
    loaded = [(Path(f), read_export(Path(f))) for f in files]
    report = ImportReport()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for file, runs in loaded:
        counts = report.files.setdefault(str(file), {"imported": 0, "duplicates": 0})
        for run in runs:
            source = machine or run.get("machine") or (run.get("origin") or {}).get("machine") or "unknown"
            hop = {"machine": source, "file": str(file.resolve()), "imported": now, "id": run.get("id"),
                   "target": run.get("target")}
            if run.get("origin"):  # imported before: keep its first origin (the machine that really ran it)
                origin = {**run["origin"], "via": [*run["origin"].get("via", []), hop]}
                source = machine or run["origin"].get("machine") or source
            else:
                origin = hop
            fields = {c: run.get(c) for c in RUN_COLUMNS if c not in ("id", "grp", "origin", "uuid")}
            fields.update(grp=run.get("group"), uuid=run_uuid(run, source), origin=origin)
            for col in _JSON_COLUMNS:
                if col != "origin":
                    fields[col] = run.get(col) or {}
            fields["schema_version"] = run.get("schema_version") or 1
            if run.get("target") == "local":
                fields["target"] = f"local@{source}"
            samples = {p: [float(x) for x in v] for p, v in (run.get("samples") or {}).items()}
            run_id = store.insert_imported(fields, samples)
            if run_id is None:
                report.duplicates += 1
                counts["duplicates"] += 1
                continue
            report.imported.append(run_id)
            counts["imported"] += 1
            report.machines[source] = report.machines.get(source, 0) + 1
    return report
