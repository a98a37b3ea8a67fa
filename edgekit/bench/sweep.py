"""Sweeps: `edgekit bench --threads 1,2,4 --batch 1,8 --seq-len 64,128` expands into one run per artifact and point
of the cross product, all in one group. A point's values are stored in each run's config (`config.sweep`), so the
report can draw latency against them.

Batch resizes dim 0 of every input. Sequence length resizes the sequence axis of each sequence input: the axis whose
symbolic name says seq/sequence/token, else dim 1 of an integer input of rank 2 (token ids, attention masks).
An artifact whose input declares a fixed size there (an ONNX/TFLite static shape) cannot take another value: that
run is skipped with the reason and the fix (re-export with a dynamic axis)."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace

from edgekit.bench.runner import BenchJob
from edgekit.errors import EdgekitError
from edgekit.specs import TensorSpec, check_input_memory

SWEEP_AXES = ("threads", "batch", "seq_len")
AXIS_LABEL = {"threads": "threads", "batch": "batch size", "seq_len": "sequence length"}
_SEQ_NAME = re.compile(r"seq|token", re.IGNORECASE)


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep; None = not swept (the runtime's default threads, the artifact's own shapes)."""

    threads: int | None = None
    batch: int | None = None
    seq_len: int | None = None

    def values(self) -> dict[str, int]:
        """The swept values of this point, as stored in a run's config (`sweep`)."""
        return {k: v for k, v in (("threads", self.threads), ("batch", self.batch), ("seq_len", self.seq_len))
                if v is not None}

    def label(self) -> str:
        return " ".join(f"{k.replace('_', '-')}={v}" for k, v in self.values().items())


def sweep_points(threads: list[int] | None = None, batch: list[int] | None = None,
                 seq_len: list[int] | None = None) -> list[SweepPoint]:
    """The cross product of the given values, in the order given (threads outermost); one point of Nones when
    nothing is swept."""
    return [SweepPoint(t, b, s) for t, b, s in itertools.product(threads or [None], batch or [None], seq_len or [None])]


def seq_axis(spec: TensorSpec) -> int | None:
    """The sequence axis of an input: the axis whose symbolic name says seq/sequence/token, else dim 1 of an integer
    input of rank 2; None when it has none."""
    for axis, name in sorted(spec.dynamic.items()):
        if _SEQ_NAME.search(name) and axis < len(spec.shape):
            return axis
    if spec.dtype.startswith("int") and len(spec.shape) == 2:
        return 1
    return None


def _declared(job: BenchJob) -> list[TensorSpec] | None:
    """What the file itself declares (static vs dynamic axes), when its format can be read without loading it."""
    from edgekit.bench.inputs import model_input_specs

    try:
        return model_input_specs(job.path, job.format)
    except EdgekitError:
        return None  # an unreadable file: the run itself reports it


def _fixed(declared: dict[str, TensorSpec], spec: TensorSpec, axis: int) -> int | None:
    """The fixed size the file declares for `spec`'s axis, or None when that axis is dynamic (or unknown)."""
    d = declared.get(spec.name)
    if d is None or axis >= len(d.shape) or axis in d.dynamic:
        return None
    return d.shape[axis]


def resize_job(job: BenchJob, point: SweepPoint, declared: list[TensorSpec] | None = None) -> BenchJob:
    """`job` with its inputs resized to `point`'s batch and sequence length. When the artifact cannot take them (a
    fixed batch or sequence size that differs, or no sequence input at all), the job comes back with a skip reason
    that names the input, its declared shape and the fix. `declared`: the file's own input specs (read from the
    file when not given)."""
    if (point.batch is None and point.seq_len is None) or job.skip_reason or job.error:
        return job
    if declared is None:
        declared = _declared(job)
    known = {d.name: d for d in (declared or [])}
    if declared and not all(s.name in known for s in job.inputs):  # matched by position, as check_inputs does
        known = {s.name: d for s, d in zip(job.inputs, declared, strict=False)}
    if not declared:  # torch / coreml: only what the job's specs say about dynamic axes
        known = {s.name: s for s in job.inputs if s.dynamic}
    art = f"{job.path.name} ({job.format}/{job.precision})"
    specs: list[TensorSpec] = []
    seq_inputs = 0
    for spec in job.inputs:
        shape = list(spec.shape)
        if point.batch is not None and point.batch != shape[0]:
            fixed = _fixed(known, spec, 0)
            if fixed is not None:
                return replace(job, skip_reason=(
                    f"--batch {point.batch}: input {spec.name!r} of {art} has a fixed batch size {fixed} (a static "
                    "shape) — re-export it with a dynamic batch axis (e.g. `dynamic = {\"0\" = \"batch\"}` in the "
                    "model card), or leave this batch size out"))
            shape[0] = point.batch
        axis = seq_axis(spec) if point.seq_len is not None else None
        if axis is not None:
            seq_inputs += 1
            if point.seq_len != shape[axis]:
                fixed = _fixed(known, spec, axis)
                if fixed is not None:
                    return replace(job, skip_reason=(
                        f"--seq-len {point.seq_len}: input {spec.name!r} of {art} has a fixed sequence length "
                        f"{fixed} (a static shape) — re-export it with a dynamic sequence axis, or leave this "
                        "length out"))
                shape[axis] = point.seq_len  # type: ignore[assignment]
        specs.append(check_input_memory(replace(spec, shape=tuple(shape))) if tuple(shape) != spec.shape else spec)
    if point.seq_len is not None and not seq_inputs:
        have = ", ".join(f"{s.name}:{'x'.join(map(str, s.shape))}:{s.dtype}" for s in job.inputs)
        return replace(job, skip_reason=(
            f"--seq-len {point.seq_len}: {art} has no sequence input (its inputs: {have}; a sequence axis is named "
            "seq/sequence/tokens, or is dim 1 of an integer input of rank 2) — drop --seq-len for this artifact"))
    return replace(job, inputs=specs)


def expand(jobs: list[BenchJob], points: list[SweepPoint], repeat: int = 1) -> list[tuple[int, SweepPoint, BenchJob]]:
    """(repetition, point, job) for every run, interleaved like --repeat: every point of every artifact once, then
    again. A (job, point) the artifact cannot take is kept as a skipped run with the reason, when another artifact
    takes that point; a point that no artifact can take (say, --batch 8 for one artifact with a fixed batch of 1)
    is refused in one error line before anything runs."""
    live = [j for j in jobs if not j.skip_reason and not j.error]
    declared = {id(j): _declared(j) for j in live if any(p.batch or p.seq_len for p in points)}
    sized = [(p, [resize_job(j, p, declared.get(id(j))) for j in jobs]) for p in points]
    for _p, row in sized:
        resized = [r for j, r in zip(jobs, row, strict=True) if j in live]
        if resized and all(r.skip_reason for r in resized):
            what, _, fix = str(resized[0].skip_reason).partition(" — ")
            raise EdgekitError(what, fix or "change the sweep values")
    return [(rep, p, j) for rep in range(repeat) for p, row in sized for j in row]
