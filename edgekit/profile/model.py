"""The data model of an operator profile and its aggregation per PyTorch module. Times in ms per inference.

A node's `ms` is the profiler's own time for it (`raw_ms`, its median over the profiled runs) less the
profiler's cost per operator call, which onnxruntime counts inside each kernel event (building the event's
shape/size arguments): `node_overhead_us`, measured in the same process on a chain of trivial operators as
(profiled time per node) - (unprofiled time per node). So the nodes' `ms` add up to what an unprofiled run spends in
its operators, which `edgekit profile` compares with the measured p50 (`coverage`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

TOP_LEVEL = "(top level)"
RUNTIME_MADE = "(made by the runtime)"
PROFILE_SCHEMA = 1


def module_of(name: str, graph_names: frozenset[str] | set[str] | None = None) -> str:
    """The PyTorch module a node belongs to, from its name: the dynamo exporter writes `scope/node_x`
    (`blocks.0.attn.qkv/node_MatMul_2` -> `blocks.0.attn.qkv`; onnxruntime's fusions keep that prefix:
    `blocks.0.attn/node_matmul/MatMulScaleFusion/`), the TorchScript exporter `/encoder/layers.0/attn/MatMul`
    (-> `encoder.layers.0.attn`). A name without a scope is TOP_LEVEL, or RUNTIME_MADE when `graph_names` (the
    exported graph's node names) is given and does not hold it (a node onnxruntime fused or inserted, e.g.
    SkipLayerNormalization, ReorderInput)."""
    if name.startswith("/"):
        parts = [p for p in name.split("/")[1:-1] if p]
        return ".".join(parts) or TOP_LEVEL
    if "/" in name:
        return name.split("/", 1)[0] or TOP_LEVEL
    if graph_names is not None and name not in graph_names:
        return RUNTIME_MADE
    return TOP_LEVEL


def at_depth(module: str, depth: int | None) -> str:
    """`blocks.0.attn.qkv` at depth 2 -> `blocks.0`; labels in brackets and depth None/0 stay as they are."""
    if not depth or module.startswith("("):
        return module
    return ".".join(module.split(".")[:depth])


@dataclass
class NodeTime:
    """One operator of the executed graph: its time per inference (ms, profiler overhead removed), the profiler's
    own figure (raw_ms), how often it ran per inference, and the shapes it ran on."""

    name: str
    op_type: str
    module: str
    calls: float
    ms: float
    raw_ms: float
    inputs: list[list[int]] = field(default_factory=list)
    outputs: list[list[int]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NodeTime:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class ModuleRow:
    """One line of the table: a module (or an operator type), its nodes, calls per inference, ms, share."""

    module: str
    ops: int
    calls: float
    total_ms: float
    share: float
    op_types: list[str] = field(default_factory=list)  # the costliest operator types in it, costliest first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rows(groups: dict[str, list[NodeTime]], total: float) -> list[ModuleRow]:
    rows = []
    for key, nodes in groups.items():
        ms = sum(n.ms for n in nodes)
        by_type: dict[str, float] = {}
        for n in nodes:
            by_type[n.op_type] = by_type.get(n.op_type, 0.0) + n.ms
        rows.append(ModuleRow(key, len(nodes), sum(n.calls for n in nodes), ms, ms / total if total > 0 else 0.0,
                              [t for t, _ in sorted(by_type.items(), key=lambda kv: -kv[1])][:3]))
    return sorted(rows, key=lambda r: -r.total_ms)


@dataclass
class OperatorProfile:
    """Per-operator times of one artifact on one target, with the measured p50 of unprofiled runs beside them."""

    model: str
    format: str
    precision: str
    artifact: str
    target: str = "local"
    runtime: str = ""
    runtime_version: str = ""
    threads: int | None = None
    sha256: str | None = None
    runs: int = 0  # profiled runs timed
    used_runs: int = 0  # profiled runs the node medians are taken over (after warm-up)
    p50_ms: float | None = None  # measured p50 of unprofiled runs, interleaved with the profiled ones
    profiled_p50_ms: float | None = None  # p50 of the profiled runs (the profiler slows a run down)
    raw_ops_ms: float = 0.0  # the profiler's operator times, summed
    ops_ms: float = 0.0  # the same with the profiler's own cost removed (sum of the nodes' ms)
    node_overhead_us: float = 0.0  # the profiler's cost per operator call that was removed
    call_overhead_ms: float | None = None  # an unprofiled call of a one-operator graph (binding, feeds, fetches)
    nodes: list[NodeTime] = field(default_factory=list)
    samples_ms: list[float] = field(default_factory=list)  # the unprofiled runs' latencies the p50 is taken over
    plain_runs: int = 0  # unprofiled runs timed (more than `runs` on a busy machine)
    preempted_runs: int = 0  # of them, left out of the p50: the process was preempted during them
    notes: list[str] = field(default_factory=list)
    schema: int = PROFILE_SCHEMA

    @property
    def coverage(self) -> float | None:
        """Sum of the operators' times / measured p50 (1.0 = the operators account for the whole run)."""
        return self.ops_ms / self.p50_ms if self.p50_ms else None

    def modules(self, depth: int | None = None) -> list[ModuleRow]:
        """Per module (at `depth` dotted levels; None = the full scope), costliest first. Each node counts in
        exactly one module, so the rows add up to ops_ms."""
        groups: dict[str, list[NodeTime]] = {}
        for n in self.nodes:
            groups.setdefault(at_depth(n.module, depth), []).append(n)
        return _rows(groups, self.ops_ms)

    def op_types(self) -> list[ModuleRow]:
        """Per operator type (as the runtime ran it, fused kernels included), costliest first."""
        groups: dict[str, list[NodeTime]] = {}
        for n in self.nodes:
            groups.setdefault(n.op_type, []).append(n)
        return _rows(groups, self.ops_ms)

    def summary_line(self) -> str:
        """`operators 2.51 ms = 98 % of the measured p50 2.56 ms (...)`."""
        if not self.p50_ms:
            return f"operators {self.ops_ms:.3g} ms (no unprofiled runs measured)"
        left_out = (f"; {self.preempted_runs} of {self.plain_runs} unprofiled runs left out of the p50: the process "
                    "was preempted during them" if self.preempted_runs else "")
        return (f"operators {self.ops_ms:.3g} ms = {self.coverage:.0%} of the measured p50 {self.p50_ms:.3g} ms "
                f"(profiler's own {self.raw_ops_ms:.3g} ms less {self.node_overhead_us:.2g} µs per operator call; "
                f"profiled runs p50 {self.profiled_p50_ms or 0:.3g} ms; node times are medians over "
                f"{self.used_runs} profiled runs{left_out})" + "".join(f"; {n}" for n in self.notes))

    def to_dict(self, depth: int | None = None) -> dict[str, Any]:
        d = asdict(self)
        d["coverage"] = self.coverage
        d["modules"] = [r.to_dict() for r in self.modules(depth)]
        d["op_type_totals"] = [r.to_dict() for r in self.op_types()]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OperatorProfile:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["nodes"] = [NodeTime.from_dict(n) for n in d.get("nodes") or []]
        return cls(**kw)
