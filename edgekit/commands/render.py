"""How commands render results: the `edgekit bench` table (also for `bench --target T`), the `edgekit predict` table,
with numbers written by edgekit/report/fmt.py. Shared by commands/bench.py, commands/targets.py and commands/runs.py,
so none of them imports another."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.commands.common import console, verbosity


def wide_console() -> Any:
    """The console, at least 160 columns wide when piped (tables of many columns stay readable in logs)."""
    out = console()
    if not out.is_terminal:
        out.width = max(out.width, 160)
    return out


def _provenance(r: Any, wide: bool) -> str:
    """Of latency and memory: `measured` (compact); with --wide also the energy's: `measured; energy modeled`."""
    if not wide or r.energy is None or r.energy.provenance == r.provenance:
        return r.provenance or ""
    return f"{r.provenance}; energy {r.energy.provenance}"


def render_results(results: list[Any], db_path: Path | None = None, wide: bool = False) -> None:
    """The table: latency percentiles, runs, provenance (compact, fits 80 columns); with `wide`, also mean ± σ,
    range, load/first, peak RSS and energy, each labelled. Names and provenance are never wrapped. Then the notes:
    a warning line per artifact, each kind's hint once; with `edgekit -v` the median's CI per artifact."""
    from rich.table import Table

    from edgekit.report import fmt

    table = Table(title="edgekit bench — latency in ms", title_justify="left", show_lines=False)
    cols = [("model", "left"), ("format/prec", "left"), ("runtime", "left"), ("status", "left"),
            ("p50", "right"), ("p90", "right"), ("p99", "right"), ("mean ± σ", "right"), ("min … max", "right"),
            ("runs", "right"), ("load", "right"), ("first", "right"), ("peak RSS MB", "right"),
            ("energy mJ/inf", "right"), ("provenance", "left")]
    compact = ("model", "format/prec", "status", "p50", "p90", "runs", "provenance")
    keep = [c for c, _ in cols if wide or c in compact]
    for col, just in cols:
        if col in keep:
            table.add_column(col, justify=just, no_wrap=col in ("model", "format/prec", "provenance", "status"),  # type: ignore[arg-type]
                             overflow="ellipsis")
    for r in results:
        sweep = r.config.get("sweep") or {}  # ×2: the threads the runtime really used; b8 s128: a sweep point
        name = f"{r.format}/{r.precision}" + (f" ×{r.runtime['threads']}" if r.runtime.get("threads") else "") + \
            "".join(f" {k[0]}{sweep[k]}" for k in ("batch", "seq_len") if k in sweep)
        rt = r.runtime.get("runtime") or ""
        if r.runtime.get("threads"):
            rt += f" ×{r.runtime['threads']}"
        if not r.ok:
            style = "yellow" if r.status == "skipped" else "red"
            cells = dict.fromkeys(keep, "—")
            cells.update({"model": r.model, "format/prec": name, "runtime": rt, "status": f"[{style}]{r.status}[/]",
                          "provenance": ""})
            table.add_row(*(cells[c] for c in keep))
            continue
        lat = r.latency
        mem = r.memory
        energy = "—"
        if r.energy is not None:
            energy = fmt.sig(r.energy.j_per_inference * 1e3)
            if r.energy.error_band_j is not None:
                energy += f" ± {fmt.sig(r.energy.error_band_j * 1e3, 2)}"
        cells = {"model": r.model, "format/prec": name, "runtime": rt, "status": "[green]ok[/]",
                 "p50": fmt.sig(lat.p50), "p90": fmt.sig(lat.p90), "p99": fmt.sig(lat.p99),
                 "mean ± σ": f"{fmt.sig(lat.mean)} ± {fmt.sig(lat.std)}",
                 "min … max": f"{fmt.sig(lat.min)} … {fmt.sig(lat.max)}",
                 "runs": str(lat.n), "load": fmt.sig(r.load_ms), "first": fmt.sig(r.first_ms),
                 "peak RSS MB": f"{mem.peak_rss_inference / 2**20:.1f}" if mem else "—", "energy mJ/inf": energy,
                 "provenance": _provenance(r, wide)}
        table.add_row(*(cells[c] for c in keep))
    out = console()
    width = out.width
    if wide:  # every column at its natural width, wider than the terminal if need be: nothing is cut or folded
        from rich.measure import Measurement

        out.width = max(width, Measurement.get(out, out.options.update(width=1000), table).maximum)
    out.print(table)
    out.width = width
    if verbosity() < 0:
        return
    notes: list[str] = []
    hints: dict[str, str] = {}  # one hint per warning kind, however many artifacts raised it
    skipped: dict[str, list[str]] = {}
    for r in results:
        if r.ok and r.latency and verbosity() > 0:
            lo, hi = r.latency.ci_median
            notes.append(f"{r.model} {r.format}/{r.precision}: median {fmt.sig(r.latency.p50)} ms, "
                         f"{r.latency.ci_level:.0%} CI [{fmt.sig(lo)}, {fmt.sig(hi)}] (bootstrap)")
        for w in r.warnings:
            notes.append(f"warning {r.model} {r.format}/{r.precision}: {w.kind.value} — {w.detail}")
            hints.setdefault(w.kind.value, w.kind.hint())
        if r.status == "skipped":  # the same reason once, with every artifact it skipped
            skipped.setdefault(f"{r.error}", []).append(f"{r.model} {r.format}/{r.precision}")
    notes += [f"skipped {', '.join(names)}: {reason}" for reason, names in skipped.items()]
    notes += [f"hint ({kind}): {hint}" for kind, hint in hints.items()]
    assumptions = sorted({r.energy.assumption for r in results if r.energy and r.energy.provenance == "modeled"})
    notes += [f"energy (modeled): {a}" for a in assumptions]
    if not wide:
        notes.append("more columns (mean ± σ, range, load/first, memory, energy): --wide; the median's CI: edgekit -v")
    ids = [str(r.run_id) for r in results if r.run_id is not None]
    if ids and db_path is not None:
        notes.append(f"stored as run {', '.join(ids)} in {db_path} (`edgekit runs show ID`)")
    for line in notes:
        out.print(line, overflow="fold", markup=False)


def render_predictions(preds: list[Any], notes: list[str]) -> None:
    from rich.table import Table

    from edgekit.report import fmt

    table = Table(title="edgekit predict — latency in ms (predicted, not measured)", title_justify="left")
    for col in ("model", "format/prec", "target", "p50", "p90", "GFLOP", "MB moved", "kernels", "compute",
                "memory", "dispatch", "provenance"):
        table.add_column(col, justify="left" if col in ("model", "format/prec", "target", "provenance") else "right")
    for p in preds:
        table.add_row(p.model, f"{p.format}/{p.precision}", p.target, fmt.sig(p.p50_ms), fmt.sig(p.p90_ms),
                      fmt.sig(p.flops / 1e9), fmt.sig(p.bytes / 1e6), str(p.kernels),
                      *(fmt.sig(p.breakdown_ms[k]) for k in ("compute", "memory", "dispatch")), p.provenance)
    out = wide_console()
    out.print(table)
    seen: set[str] = set()
    for p in preds:
        cal = p.calibration
        line = f"calibration ({p.target}): {cal.basis}; {cal.error_text()}"
        if cal.p90_ratio is not None:
            line += f"; p90 = p50 x {fmt.sig(cal.p90_ratio)} ({cal.p90_basis})"
        else:
            line += f"; p90 not predicted (no measured runs on {p.target} to take its tail from)"
        if line not in seen:
            seen.add(line)
            out.print(line, overflow="fold", markup=False)
        if p.note:
            out.print(f"note {p.model} {p.format}/{p.precision}: {p.note}", overflow="fold", markup=False)
    for n in notes:
        out.print(f"note: {n}", overflow="fold", markup=False)
