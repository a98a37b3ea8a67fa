"""Text for figures, shared by the Markdown and HTML views. A missing figure is "—", never 0; each latency,
memory and energy text ends with its provenance label."""

from __future__ import annotations

from edgekit.report.records import Check, EnergyFigures, LatencyFigures, MemoryFigures, ReportRow

MISSING = "—"
MIB = 1024 * 1024
BADGE = {"pass": "✅ pass", "fail": "❌ fail", "error": "❌ error", "skipped": "⚪ skipped"}


def num(value: float | None, digits: int = 3) -> str:
    """Three significant figures for small values, fixed decimals for larger ones; "—" for a missing value."""
    if value is None:
        return MISSING
    if value == 0:
        return "0"
    mag = abs(value)
    if mag >= 100:
        return f"{value:.1f}"
    if mag >= 1:
        return f"{value:.{max(digits - 1, 0)}f}"
    return f"{value:.{digits}g}"


# The command line's figures (edgekit/commands/* use these; they never format numbers themselves).

def sig(value: float | None, digits: int = 3, unit: str = "") -> str:
    """`digits` significant figures, whole numbers instead of an exponent when the value is large (1234 ms, not
    1.23e+03); "—" when missing. The CLI's latencies (digits 3) and profile figures (digits 4)."""
    if value is None:
        return MISSING
    text = f"{value:.{digits}g}"
    if "e+" in text:
        text = f"{value:.0f}"
    return f"{text} {unit}" if unit else text


def fixed(value: float | None, digits: int = 3, unit: str = "", signed: bool = False) -> str:
    """`digits` decimals (scores, seconds); significant figures below 1e-3 so a tiny value is not shown as 0;
    `signed` writes a + before a positive change."""
    if value is None:
        return MISSING
    sign = "+" if signed else ""
    text = f"{value:{sign}.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:{sign}.{digits}f}"
    return f"{text} {unit}".strip()


def si(count: int | None, unit: str = "") -> str:
    """A count with a k / M / G prefix and two decimals (parameters, MACs): 1.23 M."""
    if count is None:
        return MISSING
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(count) >= scale:
            return f"{count / scale:.2f} {prefix}{unit}".rstrip()
    return f"{count} {unit}".rstrip()


def pct(change: float | None) -> str:
    """A signed relative change: +3.1%."""
    return MISSING if change is None else f"{change:+.1%}"


def tag(provenance: str | None) -> str:
    return f" ({provenance})" if provenance else ""


def latency_tag(lat: LatencyFigures) -> str:
    """The provenance label of a latency figure; predicted ones carry their calibration error."""
    if lat.provenance == "predicted" and lat.calibration_error is not None:
        return f" (predicted, calibration error {lat.calibration_error:.0%})"
    return tag(lat.provenance)


def latency_triple(lat: LatencyFigures | None) -> str:
    """"p50 / p90 / p99 (provenance)" in ms."""
    if lat is None or lat.p50_ms is None:
        return MISSING
    return f"{num(lat.p50_ms)} / {num(lat.p90_ms)} / {num(lat.p99_ms)}{latency_tag(lat)}"


def ms(value: float | None, provenance: str | None) -> str:
    return MISSING if value is None else f"{num(value)} ms{tag(provenance)}"


def memory(mem: MemoryFigures | None) -> str:
    if mem is None or mem.peak_rss_bytes is None:
        return MISSING
    return f"{mem.peak_rss_bytes / MIB:.1f} MiB{tag(mem.provenance)}"


def energy_scale(joules: float) -> tuple[float, str]:
    """A unit for an energy per inference: J, mJ or µJ."""
    mag = abs(joules)
    if mag >= 1:
        return 1.0, "J"
    if mag >= 1e-3:
        return 1e3, "mJ"
    return 1e6, "µJ"


def energy(en: EnergyFigures | None) -> str:
    if en is None or en.j_per_inference is None:
        return MISSING
    scale, unit = energy_scale(en.j_per_inference)
    band = f" ± {num(en.error_band_j * scale)}" if en.error_band_j is not None else ""
    return f"{num(en.j_per_inference * scale)}{band} {unit}{tag(en.provenance)}"


def parity(row: ReportRow) -> str:
    """The parity vs PyTorch badge, plus the on-target check of remote/emulated runs when there is one."""
    v = row.parity.verdict
    if v == "pass":
        text = BADGE["pass"]
    elif v in ("fail", "error"):
        text = f"❌ {v}"
    elif v == "not-executed":
        text = "⚪ not executed"
    elif v == "inconclusive":  # the PyTorch reference could not judge (all zeros, constant, ...): never a pass
        text = "⚠️ inconclusive"
    else:
        text = f"⚪ {MISSING}"
    if row.parity.on_target:
        text += f" · on {row.target}: {row.parity.on_target}"
    return text


def accuracy(row: ReportRow, figure: str = "accuracy") -> str:
    """A row's macro-F1 ("accuracy") or top-1 ("top1") with its scope: "0.935 (variant)"."""
    acc = getattr(row, figure)
    if acc is None or acc.value is None:
        return MISSING
    return f"{acc.value:.3f} ({acc.scope})"


def budgets_cell(checks: list[Check]) -> str:
    """One cell summing a run's budget checks: "✅ 2/2", "❌ p90_ms", or "—" when none apply."""
    budget = [c for c in checks if c.kind == "budget"]
    if not budget:
        return MISSING
    failed = [c.budget or c.name for c in budget if c.status in ("fail", "error")]
    if failed:
        return "❌ " + ", ".join(failed)
    passed = sum(1 for c in budget if c.status == "pass")
    if passed == 0:
        return "⚪ not evaluated"
    return f"✅ {passed}/{len(budget)}"


def check_value(c: Check) -> str:
    if c.value is None:
        return MISSING
    unit = f" {c.unit}" if c.unit else ""
    return f"{num(c.value, 4)}{unit}{tag(c.provenance)}"


def ci(lat: LatencyFigures | None) -> str:
    if lat is None or lat.ci_median_ms is None:
        return MISSING
    lo, hi = lat.ci_median_ms
    level = f"{lat.ci_level:.0%} " if lat.ci_level else ""
    return f"{level}[{num(lo)}, {num(hi)}] ms{tag(lat.provenance)}"
