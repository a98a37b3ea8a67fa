"""The report's layout, measured on the real matplotlib figures and the rendered Markdown/HTML: log-axis tick labels
that do not collide, one panel per latency provenance, DSI/GG/CDTR lines in order of compression, legends outside the
data, rows fastest-first with failed/skipped last, and the size / speed-up / accuracy-delta / headroom columns and the
Netron link (over real benchmark runs of tiny ONNX files)."""

from __future__ import annotations

import json
import os
import re
from itertools import combinations
from pathlib import Path

import pytest
from reportdata import add_bench_run, lognormal, populate, run_main
from test_sweeps import FAST, matmul_onnx

from edgekit.export.artifact import Artifact, Manifest, path_size
from edgekit.files import file_sha256
from edgekit.report import Selection, build_report, open_store
from edgekit.report.html import render_html
from edgekit.report.markdown import render_markdown
from edgekit.report.plots import latency_distribution, latency_vs_accuracy, metrics_vs_compression
from edgekit.report.records import AccuracyFigures, LatencyFigures, MetricPoint, ReportRow
from edgekit.specs import TensorSpec
from edgekit.store import ResultsStore


def db() -> Path:
    return Path(os.environ["EDGEKIT_DB"])


def build():
    store = open_store(None)
    try:
        return build_report(store, Selection())
    finally:
        store.close()


def row(run_id: int, precision: str, median: float, provenance: str = "measured", target: str = "local",
        accuracy: float | None = None) -> ReportRow:
    xs = lognormal(median, 40, run_id)
    lat = LatencyFigures(provenance=provenance, p50_ms=median, p90_ms=max(xs), samples_ms=xs)
    acc = AccuracyFigures("macro_f1", accuracy, 8, "variant") if accuracy is not None else None
    return ReportRow(run_id=run_id, model="m", format="onnx", precision=precision, target=target, status="ok",
                     latency=lat, accuracy=acc)


def drawn(plot):
    fig = plot.figure
    fig.canvas.draw()
    return fig, fig.canvas.get_renderer()


def tick_labels(ax, renderer, which: str = "x"):
    axis = ax.xaxis if which == "x" else ax.yaxis
    ticks = axis.get_major_ticks() + axis.get_minor_ticks()
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    out = []
    for t in ticks:
        label = t.label1
        if label.get_visible() and label.get_text() and lo <= t.get_loc() <= hi:
            out.append((label.get_text(), label.get_window_extent(renderer)))
    return out


@pytest.mark.parametrize("medians", [(0.9, 140.0), (0.05, 3000.0), (3.0, 300.0), (2.0, 90.0), (3.1, 6.8)])
def test_log_axis_tick_labels_do_not_overlap(medians):
    rows = [row(i + 1, p, m) for i, (p, m) in enumerate(zip(("fp16", "fp32"), medians, strict=True))]
    fig, renderer = drawn(latency_distribution(rows, "local"))
    (ax,) = fig.axes
    labels = tick_labels(ax, renderer)
    assert 2 <= len(labels) <= 8, [t for t, _ in labels]
    for (ta, a), (tb, b) in combinations(labels, 2):
        assert not a.overlaps(b), f"tick labels {ta!r} and {tb!r} overlap"
    assert not any("10^" in t or "times" in t or "$" in t for t, _ in labels), [t for t, _ in labels]
    assert ax.get_xscale() == ("log" if max(medians) / min(medians) > 30 else "linear")


def test_fastest_artifact_is_on_top_of_the_distribution():
    fig, renderer = drawn(latency_distribution([row(1, "fp32", 12.0), row(2, "int8", 4.0), row(3, "fp16", 8.0)],
                                               "local"))
    (ax,) = fig.axes
    labels = sorted(ax.get_yticklabels(), key=lambda t: -t.get_window_extent(renderer).y0)  # top first
    assert [t.get_text() for t in labels] == ["onnx/int8 #2", "onnx/fp16 #3", "onnx/fp32 #1"]


def test_emulated_measured_and_predicted_never_share_an_axis():
    rows = [row(1, "fp32", 900.0, "emulated", "rpi4", 0.9), row(2, "int8", 60.0, "predicted", "rpi4", 0.85),
            row(3, "fp16", 30.0, "measured", "rpi4", 0.88)]
    for plot, values in ((latency_distribution(rows, "rpi4"), lambda lat: lat.samples_ms),
                         (latency_vs_accuracy(rows, "rpi4", {"m": {"p90_ms": 100}}), lambda lat: [lat.p90_ms])):
        fig, _ = drawn(plot)
        axes = [a for a in fig.axes if a.get_xlabel()]
        assert [re.search(r"ms, (\w+)\)", a.get_xlabel()).group(1) for a in axes] == ["measured", "emulated",
                                                                                      "predicted"]
        for ax in axes:  # each panel holds the points of its own provenance only, on its own axis
            prov = re.search(r"ms, (\w+)\)", ax.get_xlabel()).group(1)
            xs = {round(float(x), 9) for c in ax.collections for x, _y in c.get_offsets()}
            own = {round(x, 9) for r in rows if r.latency.provenance == prov for x in values(r.latency)}
            assert xs and xs <= own, (plot.id, prov)
        assert not any(a.get_shared_x_axes().joined(a, b) for a, b in combinations(axes, 2))


def test_legends_sit_outside_the_data():
    rows = [row(1, "fp32", 20.0, accuracy=0.9), row(2, "int8", 8.0, accuracy=0.85),
            row(3, "fp16", 12.0, accuracy=0.89)]
    points = [MetricPoint("m", "PyTorch fp32 (reference)", 0.0, 0.02, 0.0, 1.0),
              MetricPoint("m", "onnx/int8", 0.75, 0.05, 0.1, 0.9), MetricPoint("m", "onnx/fp16", 0.5, 0.03, 0.04, 0.95)]
    for plot in (latency_vs_accuracy(rows, "local", {"m": {"p90_ms": 100, "macro_f1": 0.89}}),
                 metrics_vs_compression(points)):
        fig, renderer = drawn(plot)
        legends = fig.legends + [a.get_legend() for a in fig.axes if a.get_legend() is not None]
        assert len(legends) == 1 and legends[0] in fig.legends
        box = legends[0].get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), plot.id


def test_metric_lines_run_in_order_of_compression():
    """Variants given out of order, two formats, and two variants at one c: every line runs left to right."""
    points = [MetricPoint("m", "onnx/int4", 0.875, 0.09, 0.3, 0.7), MetricPoint("m", "tflite/int8", 0.75, 0.05, 0.2, 0.8),
              MetricPoint("m", "onnx/int8", 0.75, 0.06, 0.1, 0.9), MetricPoint("m", "onnx/int8-static", 0.75, 0.04,
                                                                                0.15, 0.85),
              MetricPoint("m", "PyTorch fp32 (reference)", 0.0, 0.02, 0.0, 1.0),
              MetricPoint("m", "onnx/fp16", 0.5, 0.03, 0.05, 0.95), MetricPoint("m", "tflite/fp16", 0.5, 0.01, 0.02, 0.97)]
    fig, _ = drawn(metrics_vs_compression(points))
    for ax in fig.axes:
        lines = [ln for ln in ax.get_lines() if ln.get_label() and not ln.get_label().startswith("_")]
        assert {ln.get_label() for ln in lines} == {"m onnx", "m tflite"}
        for ln in lines:
            xs = list(ln.get_xdata())
            assert xs == sorted(set(xs)) and xs[0] == 0.0, (ln.get_label(), xs)  # from the reference, rising
    gg = {ln.get_label(): list(ln.get_ydata()) for ln in fig.axes[1].get_lines() if ln.get_label() == "m onnx"}
    assert gg["m onnx"][2] == pytest.approx((0.1 + 0.15) / 2)  # int8 and int8-static joined at their mean


def test_rows_fastest_first_skipped_last_with_headroom_speedup_and_accuracy_delta(tmp_path):
    ids = populate(db(), tmp_path / "arts")
    with ResultsStore(db()) as store:
        skipped = add_bench_run(store, fmt="coreml", status="skipped", error="CoreML runs only on macOS")
        fp16 = add_bench_run(store, precision="fp16", samples=lognormal(6.0, 40, 11))
    report = build()
    md = render_markdown(report)
    section = md.split("## gem-tiny")[1].split("\n## ")[0]
    head = [c.strip() for c in section.splitlines()[2].strip("|").split("|")]
    body = [dict(zip(head, (c.strip() for c in ln.strip("|").split("|")), strict=True))
            for ln in section.splitlines()[4:] if ln.startswith("|")]
    assert [b["run"] for b in body] == [f"#{i}" for i in (fp16, ids["fp32"], ids["int8"], ids["pred"],
                                                         ids["failed"], skipped)]
    by = {b["run"]: b for b in body}
    assert 1.5 < float(by[f"#{fp16}"]["speed-up vs fp32"].rstrip("×")) < 3  # 6 ms vs 12 ms
    assert by[f"#{ids['fp32']}"]["speed-up vs fp32"] == "1.00× (baseline)"
    assert float(by[f"#{ids['int8']}"]["speed-up vs fp32"].rstrip("×")) < 0.2  # 12 ms vs 140 ms
    assert re.fullmatch(r"p90: [\d.]+ ms \(8\d%\) left", by[f"#{ids['fp32']}"]["latency budget headroom"])
    assert re.fullmatch(r"p90: [\d.]+ ms \(\d+%\) over", by[f"#{ids['int8']}"]["latency budget headroom"])
    assert by[f"#{ids['int8']}"]["Δ macro-F1 vs fp32"] == "-0.100"  # its own 0.835 vs PyTorch fp32's 0.935
    assert by[f"#{ids['fp32']}"]["Δ macro-F1 vs fp32"] == "—"  # model-level scores only: no delta claimed
    assert by[f"#{ids['fp32']}"]["open"] == "[Netron](https://netron.app) `gem-tiny-onnx-fp32.onnx`"
    html = render_html(report)
    order = [int(m) for m in re.findall(r'<td class="num">#(\d+)</td>\s*</tr>', html)]
    assert order == [fp16, ids["fp32"], ids["int8"], ids["pred"], ids["failed"], skipped]
    assert html.count('class="netron" href="https://netron.app"') == 2  # the two rows with an artifact file
    assert 'class="over">p90:' in html and 'class="left">p90:' in html


def test_size_and_speedup_from_real_benchmarks(tmp_path):
    """Two real ONNX files in one export (fp32 and a 'fp16' twin), benchmarked by real child processes: the report's
    size column is each file's size and the speed-up is computed against the fp32 twin of the same sweep point."""
    exp = tmp_path / "export"
    exp.mkdir()
    manifest = Manifest(model="mm", source="tests", edgekit_version="test", created="now", inputs=[], outputs=["y"])
    for precision in ("fp32", "fp16"):
        path = matmul_onnx(exp / f"mm.{precision}.onnx")
        manifest.upsert(Artifact(model="mm", format="onnx", precision=precision, path=path.name,
                                 size_bytes=path_size(path), sha256=file_sha256(path),
                                 inputs=[TensorSpec("x", (1, 16)).to_dict()]))
    manifest.write(exp)
    proc = run_main("bench", str(exp), "--threads", "1,2", *FAST, "--group", "real")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "rep"
    assert run_main("report", "--group", "real", "--out", str(out), "--format", "md,json").returncode == 0
    rows = json.loads(Path(f"{out}.json").read_text())["rows"]
    assert {r["size_bytes"] for r in rows} == {path_size(exp / "mm.fp32.onnx")} and len(rows) == 4
    md = Path(f"{out}.md").read_text()
    section = md.split("## mm")[1].split("\n## ")[0]
    head = [c.strip() for c in section.splitlines()[2].strip("|").split("|")]
    body = [dict(zip(head, (c.strip() for c in ln.strip("|").split("|")), strict=True))
            for ln in section.splitlines()[4:] if ln.startswith("|")]
    assert {b["size"] for b in body} == {f"{path_size(exp / 'mm.fp32.onnx') / 2**20:.2f} MiB"}
    assert sorted(b["threads"] for b in body) == ["1", "1", "2", "2"]
    for b in body:
        twin = next(x for x in body if x["threads"] == b["threads"] and x["precision"] == "fp32")
        p50 = float(b["p50 / p90 / p99 (ms)"].split(" / ")[0])
        t50 = float(twin["p50 / p90 / p99 (ms)"].split(" / ")[0])
        if b["precision"] == "fp16":
            assert float(b["speed-up vs fp32"].rstrip("×")) == pytest.approx(t50 / p50, rel=0.02)
    p50s = [float(b["p50 / p90 / p99 (ms)"].split(" / ")[0]) for b in body]
    assert p50s == sorted(p50s)  # fastest first


def test_top1_columns_only_when_a_row_has_top1(tmp_path):
    """Evaluations store top-1 (`accuracy`) beside macro-F1: the table shows top-1 and its delta vs fp32 (same
    variant-then-model lookup as macro-F1); a report without any top-1 figure keeps the table as it was."""
    with ResultsStore(db()) as store:  # no evaluations: no top-1 columns in the Markdown or HTML
        add_bench_run(store, samples=lognormal(12, 40, 1), group="plain")
    report = build()
    assert "top-1" not in render_markdown(report) and "top-1" not in render_html(report)

    ids = populate(db(), tmp_path / "arts")  # PyTorch eval (model-level) and the int8 artifact's own eval
    report = build()
    section = render_markdown(report).split("## gem-tiny")[1].split("\n## ")[0]
    head = [c.strip() for c in section.splitlines()[2].strip("|").split("|")]
    assert head[head.index("Δ macro-F1 vs fp32") + 1:][:2] == ["top-1", "Δ top-1 vs fp32"]
    by = {b["run"]: b for b in (dict(zip(head, (c.strip() for c in ln.strip("|").split("|")), strict=True))
                                for ln in section.splitlines()[4:] if ln.startswith("|"))}
    assert by[f"#{ids['int8']}"]["top-1"] == "0.835 (variant)" and by[f"#{ids['fp32']}"]["top-1"] == "0.935 (model)"
    assert by[f"#{ids['int8']}"]["Δ top-1 vs fp32"] == "-0.100" and by[f"#{ids['fp32']}"]["Δ top-1 vs fp32"] == "—"
    html = render_html(report)
    assert "<th>top-1</th>" in html and html.count('<td class="num">-0.100</td>') == 2  # macro-F1 and top-1 deltas
