"""The report's "where the time goes" section: per artifact, the operator profile (`edgekit profile`) of the
selection, summed per PyTorch module. Profile runs belong to a selection by the same rule as eval runs
(collect.select_companions); the newest ok profile per artifact (model, format, precision, target) is shown, read
through its typed record (edgekit.profile.run.ProfileRun.from_row)."""

from __future__ import annotations

from typing import Any

TOP_MODULES = 12
DEPTH = 2  # blocks.0, encoder.layers: one row per block, not per linear layer


def profile_sections(companions: list[Any], depth: int | None = DEPTH, top: int = TOP_MODULES) -> list[dict]:
    """One plain dict per profiled artifact (JSON-ready): its identity, the measured p50, the operators' sum and
    the costliest modules at `depth` (the rest summed in one row) and operator types."""
    from edgekit.profile.model import ModuleRow
    from edgekit.profile.run import ProfileRun

    newest: dict[tuple, ProfileRun] = {}
    for run in sorted(companions, key=lambda r: r.id):
        if run.kind == "profile" and run.status == "ok":
            rec = ProfileRun.from_row(run)
            if rec.profile is not None:
                newest[(rec.model, rec.format, rec.precision, rec.target)] = rec
    out = []
    for (model, fmt, precision, target), rec in sorted(newest.items(), key=lambda kv: tuple(map(str, kv[0]))):
        prof = rec.profile
        assert prof is not None
        rows = rec.modules(depth)
        shown = rows[:top]
        if len(rows) > top:
            rest = rows[top:]
            shown.append(ModuleRow(f"({len(rest)} more modules)", sum(r.ops for r in rest),
                                   sum(r.calls for r in rest), sum(r.total_ms for r in rest),
                                   sum(r.share for r in rest)))
        out.append({"run_id": rec.run_id, "model": model, "format": fmt, "precision": precision, "target": target,
                    "runtime": f"{prof.runtime} {prof.runtime_version}".strip(), "threads": prof.threads,
                    "p50_ms": prof.p50_ms, "ops_ms": prof.ops_ms, "coverage": prof.coverage, "depth": depth,
                    "summary": prof.summary_line(), "modules": [r.to_dict() for r in shown],
                    "op_types": [r.to_dict() for r in prof.op_types()[:6]]})
    return out


def markdown_lines(profiles: list[dict]) -> list[str]:
    """## Where the time goes — one table per profiled artifact."""
    from edgekit.report.markdown import table, text

    if not profiles:
        return []
    lines = ["## Where the time goes", "",
             "Per-operator times from the runtime's own profiler (`edgekit profile`), summed per PyTorch module; ms "
             "per inference, measured.", ""]
    for p in profiles:
        lines += [f"### {text(p['model'])} {text(p['format'])}/{text(p['precision'])} @ {text(p['target'])} "
                  f"(profile run #{p['run_id']}, {text(p['runtime'])}, {p['threads']} thread(s))", ""]
        lines += table(["module", "ops", "calls", "total ms", "share", "costliest operators"],
                       [[m["module"], m["ops"], f"{m['calls']:g}", f"{m['total_ms']:.3f}", f"{m['share']:.1%}",
                         ", ".join(m["op_types"]) or "—"] for m in p["modules"]])
        types = ", ".join(f"{t['module']} {t['total_ms']:.3g} ms ({t['share']:.0%})" for t in p["op_types"])
        lines += ["", f"{text(p['summary'])}. By operator type: {text(types)}.", ""]
    return lines
