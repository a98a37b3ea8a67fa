"""Profile an .onnx file with onnxruntime's own profiler (SessionOptions.enable_profiling), in this process.

Two sessions of the same file: one plain, one profiling. Their runs alternate (plain, profiled, plain, ...) so both
see the same disturbance from other work on the machine. The plain runs give the measured p50; the profiled runs'
trace gives one `<node>_kernel_time` event per operator call, assigned to its run by time stamp. Each node's time
is its median over the profiled runs: on a shared machine the scheduler takes whole time slices (milliseconds) from
some runs, and the median leaves those out node by node. The p50 leaves them out run by run: it is taken over the
plain runs during which the process was not preempted (its involuntary context switches, getrusage), with more
plain runs on a busy machine until there are enough such runs (else over all of them, with a note). Without this,
one other busy process on the same core makes a 3 ms model's p50 7 ms while its operators still sum to 3 ms.

onnxruntime counts part of its profiler's own work inside every kernel event (it builds the event's shape and size
arguments before it stops the clock): about 1-2 µs per operator call on a desktop CPU, which for a small model with
hundreds of nodes is 20-50 % of a run. That cost is measured here, on a chain of trivial Add nodes, as (mean
profiled time per node) - (unprofiled time per node, from the chain's p50 minus a one-node graph's p50), and taken
off every operator call.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import time
from bisect import bisect_right
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.profile.model import NodeTime, OperatorProfile, module_of

CHAIN_NODES = 200
EXTRA_RUNS_FACTOR = 4  # a busy machine: up to this many times `runs` more unprofiled runs to find undisturbed ones
_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
               "all": "ORT_ENABLE_ALL"}


def _chain_model(n: int) -> bytes:
    """n Add nodes in a chain on a one-element tensor: the cheapest operators there are."""
    from onnx import TensorProto, helper

    vi = helper.make_tensor_value_info
    nodes, prev = [], "x"
    for i in range(n):
        nodes.append(helper.make_node("Add", [prev, "x"], [f"y{i}"], name=f"chain{i}"))
        prev = f"y{i}"
    graph = helper.make_graph(nodes, "chain", [vi("x", TensorProto.FLOAT, [1])], [vi(prev, TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _session(source: str | bytes, threads: int | None, optimization: str, provider: str | None,
             profile_prefix: str | None = None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[optimization])
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    providers = [provider or "CPUExecutionProvider"]
    if providers[0] not in ort.get_available_providers():
        raise EdgekitError(f"onnxruntime execution provider {providers[0]!r} is not available here",
                           f"use one of {', '.join(ort.get_available_providers())}")
    return ort.InferenceSession(source, so, providers=providers)


def _trace(session: Any) -> list[dict[str, Any]]:
    """End a profiling session and read its trace (the file is removed)."""
    path = Path(session.end_profiling())
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    finally:
        try:
            path.unlink()
        except OSError:
            pass


def _per_run(events: list[dict[str, Any]]) -> tuple[list[float], list[list[dict[str, Any]]]]:
    """(the duration of each `model_run` in ms, the kernel events of each), in run order."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    starts = [r["ts"] for r in runs]
    out: list[list[dict[str, Any]]] = [[] for _ in runs]
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        k = bisect_right(starts, e["ts"]) - 1
        if 0 <= k < len(runs) and e["ts"] <= runs[k]["ts"] + runs[k]["dur"]:
            out[k].append(e)
    return [r["dur"] / 1000.0 for r in runs], out


def _shapes(arg: Any) -> list[list[int]]:
    """onnxruntime's `input_type_shape` / `output_type_shape`: [{"float": [1, 128]}, ...] -> [[1, 128], ...]."""
    out = []
    for item in arg or []:
        if isinstance(item, dict):
            for dims in item.values():
                out.append([int(d) for d in dims] if isinstance(dims, list) else [])
    return out


def _timed(call: Any) -> float:
    t0 = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - t0) / 1e6


def _preemptions() -> int:
    """Involuntary context switches of this process so far (another task took the CPU from one of its threads);
    0 where the OS does not count them."""
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw)
    except (ImportError, AttributeError, OSError):
        return 0


def _timed_run(call: Any) -> tuple[float, bool]:
    """(wall ms of one call, whether the process was preempted during it). On a loaded machine a preempted run's
    wall time includes waiting for a CPU (a scheduler time slice: milliseconds), which no operator accounts for."""
    before = _preemptions()
    ms = _timed(call)
    return ms, _preemptions() != before


def undisturbed(times: list[float], preempted: list[bool], need: int) -> list[float]:
    """The times of the runs during which the process was not preempted, when there are at least `need` of them;
    else every time (the machine never left this process alone long enough)."""
    clean = [t for t, p in zip(times, preempted, strict=True) if not p]
    return clean if len(clean) >= need else list(times)


class ChainProbe:
    """The profiler's cost per operator call, from a chain of CHAIN_NODES trivial Add nodes: (mean profiled time per
    node) - (unprofiled time per node, from the chain's p50 minus a one-node graph's p50). `step()` runs each of
    the three sessions once; call it between the model's runs so both see the same disturbance."""

    def __init__(self, threads: int | None, provider: str | None, folder: str) -> None:
        self.plain_n = _session(_chain_model(CHAIN_NODES), threads, "disable", provider)
        self.plain_1 = _session(_chain_model(1), threads, "disable", provider)
        self.prof_n = _session(_chain_model(CHAIN_NODES), threads, "disable", provider, os.path.join(folder, "chain"))
        self.feeds = {"x": np.ones(1, dtype=np.float32)}
        self.t_n: list[tuple[float, bool]] = []
        self.t_1: list[tuple[float, bool]] = []
        for _ in range(3):
            self.plain_n.run(None, self.feeds)
            self.plain_1.run(None, self.feeds)
            self.prof_n.run(None, self.feeds)

    def step(self) -> None:
        self.t_n.append(_timed_run(lambda: self.plain_n.run(None, self.feeds)))
        self.t_1.append(_timed_run(lambda: self.plain_1.run(None, self.feeds)))
        self.prof_n.run(None, self.feeds)

    def result(self) -> tuple[float, float]:
        """(the profiler's cost per operator call in µs, an unprofiled one-node call in ms)."""
        runs = _per_run(_trace(self.prof_n))[1][3:]
        t_n = undisturbed([t for t, _ in self.t_n], [p for _, p in self.t_n], 3)
        t_1 = undisturbed([t for t, _ in self.t_1], [p for _, p in self.t_1], 3)
        per_node_plain_us = (float(np.median(t_n)) - float(np.median(t_1))) * 1000.0 / (CHAIN_NODES - 1)
        per_run = [float(np.mean([e["dur"] for e in run])) for run in runs if run]
        per_node_prof_us = float(np.median(per_run)) if per_run else 0.0
        call_ms = max(float(np.median(t_1)) - per_node_plain_us / 1000.0, 0.0)
        return max(per_node_prof_us - per_node_plain_us, 0.0), call_ms


def profile_onnx(path: Path, feeds: Mapping[str, np.ndarray], *, runs: int = 50, warmup: int = 5,
                 threads: int | None = None, provider: str | None = None, optimization: str = "all",
                 model: str = "", precision: str = "fp32") -> OperatorProfile:
    """Profile one .onnx file: `runs` unprofiled and `runs` profiled runs, alternating, after `warmup` of each."""
    import onnx
    import onnxruntime as ort

    from edgekit.runtime.onnxruntime import load_error

    path = Path(path)
    try:
        graph_names = frozenset(n.name for n in onnx.load(str(path), load_external_data=False).graph.node)
    except Exception:  # noqa: BLE001 - onnxruntime below says what is wrong with the file
        graph_names = None
    with tempfile.TemporaryDirectory(prefix="edgekit-profile-") as tmp:
        try:
            plain = _session(str(path), threads, optimization, provider)
            prof = _session(str(path), threads, optimization, provider, os.path.join(tmp, "ort"))
        except EdgekitError:
            raise
        except Exception as exc:  # onnxruntime's own Fail / InvalidProtobuf / ...
            raise load_error(path, exc, ort.__version__) from exc
        names = [i.name for i in plain.get_inputs()]
        bound = dict(zip(names, [feeds[n] for n in names] if all(n in feeds for n in names) else list(feeds.values()),
                         strict=True))
        try:
            for _ in range(warmup):
                plain.run(None, bound)
                prof.run(None, bound)
        except Exception as exc:  # the engine rejected the feeds
            shapes = ", ".join(f"{k}:{'x'.join(map(str, v.shape))}:{v.dtype}" for k, v in bound.items())
            raise EdgekitError(f"the model rejected the inputs {shapes} ({type(exc).__name__}: "
                               f"{str(exc).strip().splitlines()[0][:200]})",
                               "give the model's real input shapes with --input NAME:DIMxDIM:DTYPE") from exc
        probe = ChainProbe(threads, provider, tmp)
        times: list[float] = []
        preempted: list[bool] = []
        run_plain = functools.partial(plain.run, None, bound)
        for _ in range(runs):
            t, p = _timed_run(run_plain)
            times.append(t)
            preempted.append(p)
            prof.run(None, bound)
            probe.step()
        # the p50 is taken over the unprofiled runs the process was not preempted in (the node times are medians
        # that leave such interruptions out node by node); a loaded machine gets more plain runs, up to a budget
        need = max(5, runs // 4)
        extra = 0
        while preempted.count(False) < need and extra < EXTRA_RUNS_FACTOR * runs:
            t, p = _timed_run(run_plain)
            times.append(t)
            preempted.append(p)
            extra += 1
        samples = undisturbed(times, preempted, need)
        run_ms, per_run = _per_run(_trace(prof))
        run_ms, per_run = run_ms[warmup:], per_run[warmup:]
        overhead_us, call_ms = probe.result()
    if not per_run or not any(per_run):
        raise EdgekitError(f"onnxruntime's profiler recorded no operator events for {path.name}",
                           "check that the onnxruntime build has profiling (the CPU wheels from PyPI do)")
    acc: dict[str, dict[str, Any]] = {}
    for k, run in enumerate(per_run):
        for e in run:
            name = str(e["name"])[: -len("_kernel_time")]
            args = e.get("args") or {}
            d = acc.setdefault(name, {"op": args.get("op_name") or "?", "us": {}, "calls": 0,
                                      "in": _shapes(args.get("input_type_shape")),
                                      "out": _shapes(args.get("output_type_shape"))})
            d["us"][k] = d["us"].get(k, 0.0) + float(e["dur"])
            d["calls"] += 1
    n = len(per_run)
    nodes = []
    for name, d in acc.items():
        calls = d["calls"] / n
        # the median over runs: a run the scheduler interrupted (a time slice lost to other work) shows up as one
        # long node, which the median leaves out
        raw_ms = float(np.median([d["us"].get(k, 0.0) for k in range(n)])) / 1000.0
        nodes.append(NodeTime(name=name, op_type=d["op"], module=module_of(name, graph_names), calls=calls,
                              ms=max(raw_ms - overhead_us * calls / 1000.0, 0.0), raw_ms=raw_ms,
                              inputs=d["in"], outputs=d["out"]))
    return OperatorProfile(
        model=model or path.stem, format="onnx", precision=precision, artifact=str(path),
        runtime="onnxruntime", runtime_version=ort.__version__, threads=plain_threads(threads), runs=len(per_run),
        used_runs=n, p50_ms=float(np.median(samples)), profiled_p50_ms=float(np.median(run_ms)) if run_ms else None,
        raw_ops_ms=sum(x.raw_ms for x in nodes), ops_ms=sum(x.ms for x in nodes),
        node_overhead_us=overhead_us, call_overhead_ms=call_ms, nodes=nodes, samples_ms=samples,
        plain_runs=len(times), preempted_runs=sum(preempted) if len(samples) < len(times) else 0,
        notes=[] if len(samples) < len(times) or not any(preempted) else [
            f"the process was preempted in {sum(preempted)} of {len(times)} unprofiled runs (a busy machine): the "
            "p50 includes time spent waiting for a CPU"])


def plain_threads(threads: int | None) -> int:
    """The intra-op threads onnxruntime uses: the given count, else one per physical core (its default)."""
    if threads:
        return threads
    import psutil

    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
