"""What each model output is (class logits, dense per-pixel logits, token logits, embeddings, regression, boxes),
so that parity judges it with the right metric.

Declared by `edgekit export --task` or a card (`task`, and `[output_kinds]` per output); inferred from the output's
shape when nothing is declared, and the table says which. Grammar of a declaration (comma-separated):

    segmentation                      a task: every output follows it (see TASKS)
    logits=dense:1,boxes=boxes        per output: KIND[:AXIS]; AXIS is the class axis of class/dense/tokens
    class:1                           a KIND for every output
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from edgekit.errors import EdgekitError

# kind -> (words for the table, default class axis or None for kinds without classes)
KINDS: dict[str, tuple[str, int | None]] = {
    "class": ("class logits", -1),
    "dense": ("dense per-pixel logits", 1),
    "tokens": ("token logits", -1),
    "embedding": ("embedding", None),
    "regression": ("regression values", None),
    "boxes": ("boxes", None),
}
CLASS_KINDS = ("class", "dense", "tokens")

# task -> kind of its outputs ("detection" splits by name: outputs named *box* are boxes, the others class scores)
TASKS: dict[str, str] = {
    "classification": "class",
    "segmentation": "dense",
    "dense": "dense",
    "lm": "tokens",
    "token-classification": "tokens",
    "embedding": "embedding",
    "regression": "regression",
    "super_resolution": "regression",
    "ctr": "regression",
    "detection": "class",
}


@dataclass(frozen=True)
class OutputKind:
    """One output's kind; `axis` (non-negative) is the class axis of class/dense/tokens outputs."""

    name: str
    kind: str
    axis: int | None = None
    source: str = "inferred"  # "inferred from shape 1x21x16x16" | "declared (--task segmentation)" | ...

    def describe(self) -> str:
        words = KINDS[self.kind][0]
        return f"{words}, classes on axis {self.axis}" if self.axis is not None else words

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _check_kind(kind: str, where: str) -> str:
    if kind not in KINDS:
        raise EdgekitError(f"unknown output kind {kind!r} in {where}",
                           f"use a task ({', '.join(TASKS)}) or a kind ({', '.join(KINDS)}), e.g. logits=dense:1")
    return kind


def parse_task(text: str) -> tuple[str | None, str | None, dict[str, tuple[str, int | None]]]:
    """`--task` text -> (task, kind for every output, {output: (kind, axis)}). Bad text is one EdgekitError."""
    task: str | None = None
    every: str | None = None
    per: dict[str, tuple[str, int | None]] = {}
    for item in (x.strip() for x in text.split(",") if x.strip()):
        name, eq, spec = item.rpartition("=")
        kind, _, axis_text = spec.partition(":")
        kind = kind.strip().lower()
        try:
            axis = int(axis_text) if axis_text.strip() else None
        except ValueError:
            raise EdgekitError(f"class axis {axis_text!r} in --task {text!r} is not an integer",
                               "write KIND:AXIS, e.g. logits=dense:1") from None
        if not eq and not axis_text and kind in TASKS:
            task = kind
            continue
        _check_kind(kind, f"--task {text!r}")
        if axis is not None and kind not in CLASS_KINDS:
            raise EdgekitError(f"output kind {kind!r} has no class axis (--task {text!r})",
                               f"give an axis only to {', '.join(CLASS_KINDS)}")
        if eq:
            per[name.strip()] = (kind, axis)
        else:
            every = f"{kind}:{axis}" if axis is not None else kind
    return task, every, per


def _norm_axis(axis: int | None, ndim: int, name: str) -> int | None:
    if axis is None:
        return None
    if not -ndim <= axis < ndim:
        raise EdgekitError(f"class axis {axis} is outside output {name!r} ({ndim} axes)",
                           f"give an axis from 0 to {ndim - 1} in --task or the card's [output_kinds]")
    return axis % ndim


def infer_kind(name: str, shape: Sequence[int]) -> OutputKind:
    """A guess from the shape, said as such: NxC -> class logits on axis 1; NxCxHxW with C >= 2 (and not an RGB
    image, C = 3) -> dense per-pixel logits on axis 1; *box* -> boxes; anything else (sequences of hidden states,
    images, scalars) -> embedding/regression values, judged by cosine, relative error and SNR."""
    shape = tuple(int(d) for d in shape)
    where = f"inferred from shape {'x'.join(map(str, shape)) or 'scalar'}"
    if "box" in name.lower():
        return OutputKind(name, "boxes", None, f"inferred from the name {name!r}")
    if len(shape) == 2 and shape[1] >= 2:
        return OutputKind(name, "class", 1, where)
    if len(shape) == 4 and shape[1] >= 2 and shape[1] != 3 and shape[2] * shape[3] > 1:
        return OutputKind(name, "dense", 1, where)
    if len(shape) == 3:
        return OutputKind(name, "embedding", None, where)
    return OutputKind(name, "regression", None, where)


def _from_task(task: str, name: str, index: int, shape: Sequence[int], source: str) -> OutputKind:
    kind = TASKS[task]
    if task == "detection" and "box" in name.lower():
        kind = "boxes"
    elif task == "classification" and index > 0:  # a classifier's extra outputs (features, aux) are guessed
        return infer_kind(name, shape)
    axis = _norm_axis(KINDS[kind][1], len(shape), name) if len(shape) else None
    return OutputKind(name, kind, axis, source)


def resolve_kinds(
    names: Sequence[str],
    shapes: Sequence[Sequence[int]],
    task: str | None = None,
    declared: Mapping[str, str] | None = None,
    declared_by: str = "card [output_kinds]",
) -> list[OutputKind]:
    """Each output's kind: per-output declarations (card `[output_kinds]`, `--task name=kind`) first, then the task
    (`--task` or the card's), then the shape. `task` uses the `--task` grammar."""
    task_name, every, per = parse_task(task) if task else (None, None, {})
    per_all: dict[str, tuple[str, int | None, str]] = {}
    for name, spec in (declared or {}).items():
        k, _, a = str(spec).partition(":")
        per_all[name] = (_check_kind(k.strip().lower(), declared_by), int(a) if a.strip() else None, declared_by)
    for name, (k, a) in per.items():
        per_all[name] = (k, a, f"declared (--task {task})")
    unknown = [n for n in per_all if n not in names]
    if unknown:
        raise EdgekitError(f"output kinds are declared for {unknown}, but the model's outputs are {list(names)}",
                           "name outputs as the model returns them (see the manifest's outputs)")
    kinds = []
    for i, (name, shape) in enumerate(zip(names, shapes, strict=True)):
        ndim = len(shape)
        if name in per_all:
            k, a, src = per_all[name]
            a = a if a is not None else KINDS[k][1]
            kinds.append(OutputKind(name, k, _norm_axis(a, ndim, name) if ndim else None, src))
        elif every:
            k, _, a_text = every.partition(":")
            a = int(a_text) if a_text else KINDS[k][1]
            kinds.append(OutputKind(name, k, _norm_axis(a, ndim, name) if ndim else None, f"declared (--task {task})"))
        elif task_name:
            kinds.append(_from_task(task_name, name, i, shape, f"task {task_name}"))
        else:
            kinds.append(infer_kind(name, shape))
    return kinds
