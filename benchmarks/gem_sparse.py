"""Static vs sparse SCAR export of GEM: onnxruntime latency through the bench engine and the MACs each executes.

    .venv/bin/python benchmarks/gem_sparse.py                  # seq 32,128,512 x widths 64/128/256/384 and 4x that
    .venv/bin/python benchmarks/gem_sparse.py --seq 32,128 --widths 64/128/256/384 --runs 30 --db runs.sqlite

For each unit-width set and sequence length, one GEM (gem-tiny's encoder: d=128, 4 layers, top-2, threshold 0.25;
max_len = the longest --seq; seeded, untrained weights) is exported twice to ONNX (opset 18): `scar_export="static"`
(every unit on every token) and `scar_export="sparse"` (per unit: NonZero, Gather of its rows, FFN, ScatterND-add).
Each artifact is measured by edgekit.bench.runner.run_benchmark in its own process (batch 1, --threads 1), on the
engine's seeded random token ids; p50 with its bootstrap CI (ms). Parity: both artifacts against the eager sparse path
on that same input (max abs error).

MACs per token (matrix products, edgekit.zoo.flops.count_macs): static = the static graph's; sparse = what the sparse
graph executes, which is what the eager sparse path executes for the same routing (each unit on the rows that chose
it). They are counted on the bench input (random tokens) and on real text: the evaluation suite's test split (all
eight domains, hashed tokenizer), packed into full rows of --seq tokens (no padding), `--text-rows` rows per domain.
Without the suite's data the real-text column says "n/a" and says why. Weights are untrained: the routing is that of a
seed-0 router, not a trained one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgekit.bench.runner import BenchConfig, BenchJob, run_benchmark
from edgekit.errors import EdgekitError
from edgekit.export.onnx import export_onnx
from edgekit.files import file_sha256
from edgekit.modelsource import LoadedModel
from edgekit.specs import TensorSpec
from edgekit.zoo.flops import count_macs
from edgekit.zoo.gem import GEM, TINY

FORMS = ("static", "sparse")


def parse_widths(text: str) -> list[tuple[int, ...]]:
    """'64/128/256/384,256/512/1024/1536' -> [(64, 128, 256, 384), (256, 512, 1024, 1536)]."""
    return [tuple(int(w) for w in part.split("/")) for part in text.split(",") if part.strip()]


def real_text_rows(seq: int, rows_per_domain: int) -> tuple[np.ndarray | None, str]:
    """Test-split text of the eight suite domains, packed into [N, seq] rows without padding; or None and why not."""
    try:
        from edgekit.evalsuite import SuiteConfig, load_suite

        suite = load_suite(None, SuiteConfig(seed=0, vocab_size=TINY.vocab_size, seq_len=seq))
    except (EdgekitError, OSError) as exc:
        return None, f"suite data not available ({str(exc).splitlines()[0][:120]})"
    chunks = []
    for data in suite.values():
        stream = data.test_ids[data.test_ids > 0]  # the texts' tokens in order, padding dropped
        n = min(rows_per_domain, len(stream) // seq)
        if n:
            chunks.append(stream[: n * seq].reshape(n, seq))
    if not chunks:
        return None, "suite data too short"
    return np.concatenate(chunks).astype(np.int64), f"{len(suite)} domains"


def macs_per_token(model: GEM, ids: np.ndarray, static: bool) -> tuple[float, float | None]:
    """(MACs per token position, mean units per token) of one forward pass on `ids` [N, T]."""
    model.static = static
    try:
        cost = count_macs(model, (torch.from_numpy(ids),))
        units = None if static else model.units_per_token()
    finally:
        model.static = False
    return cost.macs / ids.size, units


def bench_point(model: GEM, seq: int, tag: str, out: Path, args, store, group) -> dict:
    spec = TensorSpec("input_ids", (1, seq), "int64", {0: "batch"}, low=0, high=TINY.vocab_size)
    feed = spec.random(np.random.default_rng(args.seed))  # what the bench child feeds (same seed, same spec)
    with torch.no_grad():
        ref = model(torch.from_numpy(feed)).numpy()  # the eager sparse path
    row: dict = {"widths": tag, "seq": seq}
    import onnxruntime as ort

    for form in FORMS:
        model.scar_export = form
        name = f"gem-w{tag.replace('/', '-')}-s{seq}-{form}"
        path = out / f"{name}.onnx"
        loaded = LoadedModel(name=name, module=model, inputs=[spec], outputs=["logits"],
                             source="benchmarks/gem_sparse.py", task="classification", examples=[{"input_ids": feed}])
        export_onnx(loaded, path)
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input_ids": feed})[0]
        row[f"{form}_err"] = float(np.abs(got - ref).max())
        job = BenchJob(model=name, format="onnx", precision="fp32", path=path, inputs=[spec], runtime="onnxruntime",
                       sha256=file_sha256(path), size_bytes=path.stat().st_size)
        config = BenchConfig(warmup=args.warmup, runs=args.runs, min_time_s=args.min_time, threads=args.threads,
                             energy="none", seed=args.seed)
        res = run_benchmark(job, config, store=store, group=group)
        if not res.ok or res.latency is None:
            raise SystemExit(f"error: benchmarking {name} failed: {res.error}")
        row[f"{form}_p50"], row[f"{form}_ci"] = res.latency.p50, list(res.latency.ci_median)
        row[f"{form}_n"] = res.latency.n
    model.scar_export = "static"
    row["static_macs"], _ = macs_per_token(model, feed, static=True)
    row["sparse_macs_random"], row["units_random"] = macs_per_token(model, feed, static=False)
    text, why = real_text_rows(seq, args.text_rows)
    row["text"] = why
    if text is not None:
        row["sparse_macs_text"], row["units_text"] = macs_per_token(model, text, static=False)
        row["text_tokens"] = int(text.size)
    return row


def verdict(row: dict) -> str:
    """'sparse 1.23x faster' only when the two bootstrap CIs of the median do not overlap; else 'no clear difference'."""
    s_lo, s_hi = row["static_ci"]
    p_lo, p_hi = row["sparse_ci"]
    ratio = row["static_p50"] / row["sparse_p50"]
    if p_hi < s_lo:
        return f"sparse {ratio:.2f}x faster"
    if s_hi < p_lo:
        return f"sparse {1 / ratio:.2f}x slower"
    return "no clear difference"


def table(rows: list[dict]) -> str:
    head = ("| unit widths | seq | static p50 ms [CI] | sparse p50 ms [CI] | result | static MMACs/tok | "
            "sparse MMACs/tok (random ids) | sparse MMACs/tok (suite text) | units/tok (text) | max abs err s/sp |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        text = (f"{r['sparse_macs_text'] / 1e6:.3f}" if "sparse_macs_text" in r else f"n/a ({r['text']})")
        units = f"{r['units_text']:.2f}" if r.get("units_text") is not None else "n/a"
        lines.append(
            f"| {r['widths']} | {r['seq']} | {r['static_p50']:.3f} [{r['static_ci'][0]:.3f}, {r['static_ci'][1]:.3f}]"
            f" | {r['sparse_p50']:.3f} [{r['sparse_ci'][0]:.3f}, {r['sparse_ci'][1]:.3f}] | {verdict(r)} | "
            f"{r['static_macs'] / 1e6:.3f} | {r['sparse_macs_random'] / 1e6:.3f} | {text} | {units} | "
            f"{r['static_err']:.1e} / {r['sparse_err']:.1e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seq", default="32,128,512", help="sequence lengths, comma-separated")
    ap.add_argument("--widths", default="64/128/256/384,256/512/1024/1536",
                    help="SCAR unit-width sets, comma-separated, widths separated by '/'")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--text-rows", type=int, default=16, help="rows of packed suite text per domain for MACs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="keep the ONNX files here (default: a temporary folder)")
    ap.add_argument("--db", type=Path, default=None, help="also record the runs in this results store")
    ap.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    seqs = [int(s) for s in args.seq.split(",")]
    store = group = None
    if args.db is not None:
        from edgekit.bench.runner import new_group
        from edgekit.store import ResultsStore

        store, group = ResultsStore(args.db), new_group()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for widths in parse_widths(args.widths):
            torch.manual_seed(args.seed)
            model = GEM(replace(TINY, max_len=max(seqs), unit_widths=widths)).eval()
            tag = "/".join(map(str, widths))
            for seq in seqs:
                print(f"# widths {tag}, seq {seq} ...", file=sys.stderr, flush=True)
                rows.append(bench_point(model, seq, tag, out, args, store, group))
    print(f"threads {args.threads}, batch 1, onnxruntime CPU; p50 over >= {args.runs} runs (bench engine, random "
          "token ids); MMACs = millions of multiply-accumulates per token")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
