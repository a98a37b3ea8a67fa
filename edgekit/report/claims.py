"""The report's "Paper claims" section: per fragility study of the selection (kind "study", read through
edgekit.study.record.StudyRecord), each claim with the paper's figure, the measured figure (with its CI, as the study
wrote it) and the verdict, and a headline table: the model's cross-domain macro-F1 (measured) vs the paper's, and the
deployed pipeline's latency p50/p90 (ms per inference) per target vs the paper's bound — `local` measured here, the
paper's seed devices predicted (with the predictor's stated error) where the study stored a prediction, else
"not predicted: <reason>". No figure is invented: every one carries its provenance."""

from __future__ import annotations

from typing import Any

SEED_DEVICES = ("rpi4", "pixel6", "iphone13", "npu")  # targets/*.toml: the paper's four devices
NOT_PREDICTED = ("the study stored no graph cost of its pipeline (backbone.onnx -> top.onnx paths or MACs), so "
                 "edgekit.targets.predictor cannot cost it")


def _f(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _bound_verdict(p90: float | None, bound: float | None) -> str:
    if p90 is None or bound is None:
        return "not checked"
    return f"p90 < {bound:g} ms" if p90 < bound else f"p90 ≥ {bound:g} ms (misses the bound)"


def claim_sections(companions: list[Any]) -> list[dict[str, Any]]:
    """One plain dict per ok study run (JSON-ready): its claims, and — where it stored a headline — the
    cross-domain F1 rows and the latency rows per target (each with value, provenance and source)."""
    from edgekit.study.record import StudyRecord

    out: list[dict[str, Any]] = []
    for run in sorted((r for r in companions if r.kind == "study" and r.status == "ok"), key=lambda r: r.id):
        study = StudyRecord.from_row(run)
        sec: dict[str, Any] = {
            "run_id": study.run_id, "study": study.group or f"study run {study.run_id}", "reference": study.reference,
            "claims": [{"claim": c.claim, "paper": c.paper, "measured": c.measured, "verdict": c.verdict}
                       for c in study.claims],
            "f1": [], "latency": [], "headline": study.headline is not None, "not_computed": []}
        h = study.headline
        if h is None:
            if sec["claims"]:
                out.append(sec)
            continue
        sec["not_computed"] = list(h.not_computed)
        paper_f1 = _f(h.paper_f1, 2) if h.paper_f1 is not None else "—"
        seeds = ", ".join(f"seed {k}: {v:.3f}" for k, v in sorted(h.base_f1_per_seed.items()))
        verdict = next((c.verdict for c in study.claims if "cross-domain f1" in c.claim.lower()), None)
        if verdict is None and h.base_f1 is not None and h.paper_f1 is not None:
            verdict = "reached" if h.base_f1 >= h.paper_f1 else "not reached"
        sec["f1"].append({"figure": f"cross-domain macro-F1, {h.reference or study.reference} (mean over seeds)",
                          "value": h.base_f1, "measured": f"{_f(h.base_f1)} (measured; {seeds or 'no seeds'})",
                          "provenance": "measured", "paper": paper_f1, "verdict": verdict or "not checked"})
        if h.deployed_f1:
            best = max(h.deployed_f1, key=lambda k: h.deployed_f1[k])
            v = h.deployed_f1[best]
            sec["f1"].append({"figure": f"cross-domain macro-F1, best deployed variant ({best}, ONNX, mean over seeds)",
                              "value": v, "measured": f"{v:.3f} (measured)", "provenance": "measured",
                              "paper": paper_f1, "verdict": "reached" if h.paper_f1 is not None and v >= h.paper_f1
                              else "not reached" if h.paper_f1 is not None else "not checked"})
        bound = h.paper_latency_ms_below
        for x in sorted(h.latency, key=lambda x: (x.target, x.p90_ms if x.p90_ms is not None else 1e300)):
            src = h.pipelines.get(x.target, "")
            if x.target in h.threads:
                src += f", {h.threads[x.target]} thread(s)"
            if x.runs is not None:
                src += f", {x.runs} runs, batch {x.batch}, {x.tokens} tokens"
            if x.error:
                src += f"; expected error {x.error}"
            sec["latency"].append({
                "target": x.target, "compression": x.compression, "p50_ms": x.p50_ms, "p90_ms": x.p90_ms,
                "provenance": x.provenance, "figure": f"{_f(x.p50_ms, 1)} / {_f(x.p90_ms, 1)} ({x.provenance})",
                "source": src.strip(", ") or x.provenance,
                "paper": f"< {bound:g} ms" if bound is not None else "—",
                "verdict": _bound_verdict(x.p90_ms, bound) + ("" if x.target in SEED_DEVICES or x.target !=
                                                              "local" else " (this machine, not a paper device)")})
        have = {x.target for x in h.latency}
        for device in h.paper_targets or list(SEED_DEVICES):
            if device not in have:
                sec["latency"].append({"target": device, "compression": "—", "p50_ms": None, "p90_ms": None,
                                       "provenance": "not predicted", "figure": f"not predicted: {NOT_PREDICTED}",
                                       "source": "—", "paper": f"< {bound:g} ms" if bound is not None else "—",
                                       "verdict": "not checked"})
        out.append(sec)
    return out


def markdown_lines(sections: list[dict[str, Any]]) -> list[str]:
    """## Paper claims — per study: the claims table, then the headline F1 and latency tables."""
    from edgekit.report.markdown import table, text

    if not sections:
        return []
    lines = ["## Paper claims", "",
             "Each claim of the GEM paper beside what the study measured (95% CI in brackets) and its verdict; "
             "measured = run here, predicted = edgekit's cost model with its stated error.", ""]
    for s in sections:
        lines += [f"### {text(s['study'])} (run #{s['run_id']}, reference {text(s['reference'] or '—')})", ""]
        if s["claims"]:
            lines += table(["claim", "paper", "measured (95% CI)", "verdict"],
                           [[c["claim"], c["paper"], c["measured"], c["verdict"]] for c in s["claims"]])
            lines.append("")
        if s["f1"]:
            lines += table(["figure", "measured", "paper", "verdict"],
                           [[r["figure"], r["measured"], r["paper"], r["verdict"]] for r in s["f1"]])
            lines.append("")
        if s["latency"]:
            lines += table(["target", "compression", "p50 / p90 (ms)", "source", "paper", "verdict"],
                           [[r["target"], r["compression"], r["figure"], r["source"], r["paper"], r["verdict"]]
                            for r in s["latency"]])
            lines.append("")
        if s["not_computed"]:
            lines += ["Not computed by the study: " + "; ".join(text(n) for n in s["not_computed"]) + ".", ""]
    return lines
