"""Resolve a MODEL reference into a live nn.Module with its input signature.

A reference is one of:
- a built-in model card name (`gem-tiny`, see `edgekit models list`) or a zoo entry name (then `--input` is needed);
- a model card file (`models/NAME.toml` or any path ending in .toml);
- a user's own module, `path/to/file.py:factory`, where `factory()` returns an nn.Module. Input shapes come from
  `--input name:1x3x224x224:float32` (repeatable) or from a function `example_inputs()` beside the factory that returns
  a tuple of tensors (named after forward()'s parameters) or a dict name -> tensor.
  This runs the user's code, by design: only point it at files you trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.specs import ModelCard, TensorSpec, check_input_memory, find_card, load_card, parse_input_option


@dataclass
class LoadedModel:
    """A model ready to export: module (eval mode), inputs, output names, and examples to check parity on."""

    name: str
    module: nn.Module
    inputs: list[TensorSpec]
    outputs: list[str]
    source: str
    task: str = ""  # "" = undeclared: parity infers each output's kind from its shape (export.outputs)
    card: ModelCard | None = None
    examples: list[dict[str, np.ndarray]] = field(default_factory=list)
    weights: dict[str, str] = field(default_factory=dict)  # {"checkpoint": path, "sha256": ...} when loaded from one

    def example_tensors(self, feeds: dict[str, np.ndarray] | None = None) -> tuple[torch.Tensor, ...]:
        feeds = feeds or self.examples[0]
        return tuple(torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in self.inputs)

    def fingerprint(self) -> str:
        """Content hash of weights + signature: the export cache key (sha256 hex)."""
        h = hashlib.sha256()
        h.update(self.source.encode())
        for spec in self.inputs:
            h.update(repr(spec.to_dict()).encode())
        for name, tensor in sorted(self.module.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


def _forward_params(module: nn.Module) -> list[str]:
    sig = inspect.signature(module.forward)
    return [
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
    ]


def _spec_from_tensor(name: str, t: torch.Tensor) -> TensorSpec:
    dtype = str(t.dtype).removeprefix("torch.")
    if dtype not in ("float32", "float16", "int64", "int32", "bool"):
        raise EdgekitError(f"example input {name!r} has dtype {dtype}", "use float32, float16, int64, int32 or bool")
    high = float(t.max().item()) + 1 if dtype.startswith("int") and t.numel() else 1.0
    return TensorSpec(name=name, shape=tuple(t.shape), dtype=dtype, low=0.0, high=high)


@contextlib.contextmanager
def _folder_on_path(path: Path):
    """The model file's folder first on sys.path, as `python file.py` has it, so `from mynet import Net` beside the
    file imports (while the file is imported and its factory runs)."""
    folder = str(path.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def _import_user_file(path: Path):
    if not path.is_file():
        raise EdgekitError(f"model file {path} does not exist", "check the path in FILE.py:FACTORY")
    mod_name = f"edgekit_user_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise EdgekitError(f"cannot import {path}", "point at a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        with _folder_on_path(path):
            spec.loader.exec_module(module)
    except Exception as exc:
        raise EdgekitError(
            f"importing {path} failed: {type(exc).__name__}: {exc}", "fix the error in that file (run it with python)"
        ) from exc
    return module


def _load_user_model(ref: str, input_specs: list[TensorSpec]) -> LoadedModel:
    file_part, _, factory_name = ref.rpartition(":")
    path = Path(file_part)
    user_mod = _import_user_file(path)
    factory = getattr(user_mod, factory_name, None)
    if factory is None or not callable(factory):
        names = [n for n, v in vars(user_mod).items() if callable(v) and not n.startswith("_")]
        raise EdgekitError(
            f"{path} has no callable {factory_name!r}",
            f"name a factory that returns an nn.Module (callables there: {', '.join(names) or 'none'})",
        )
    try:
        with _folder_on_path(path):
            module = factory()
    except Exception as exc:
        raise EdgekitError(f"{ref}() raised {type(exc).__name__}: {exc}", "fix the factory") from exc
    if not isinstance(module, nn.Module):
        raise EdgekitError(
            f"{ref}() returned {type(module).__name__}, not a torch.nn.Module", "make the factory return an nn.Module"
        )
    module.eval()
    examples: list[dict[str, np.ndarray]] = []
    if not input_specs:
        example_fn = getattr(user_mod, "example_inputs", None)
        if example_fn is None:
            raise EdgekitError(
                f"no input shapes for {ref}",
                "pass --input NAME:1x3x224x224:float32 (once per input) or define example_inputs() in the file",
            )
        ex = example_fn()
        if isinstance(ex, torch.Tensor):
            ex = (ex,)
        if isinstance(ex, dict):
            named = dict(ex)
        else:
            params = _forward_params(module)
            if len(params) < len(ex):
                params += [f"input_{i}" for i in range(len(params), len(ex))]
            named = dict(zip(params, ex, strict=False))
        input_specs = [_spec_from_tensor(n, t) for n, t in named.items()]
        examples.append({n: t.detach().numpy() for n, t in named.items()})
    name = f"{path.stem}-{factory_name}"
    return LoadedModel(name=name, module=module, inputs=input_specs, outputs=[], source=f"file:{ref}", examples=examples)


def _config_params(model: str) -> dict[str, object] | None:
    """What a zoo factory's keyword configuration accepts: name -> type annotation (a string, as written), read from
    the factory's signature, else from the class it returns (its __init__, or the config dataclass that __init__
    takes). None when it cannot be told (then the factory itself judges the config)."""
    import dataclasses
    import typing

    from edgekit.zoo.registry import REGISTRY

    factory = REGISTRY.get(model).factory
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return {n: p.annotation for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    try:
        cls = typing.get_type_hints(factory).get("return")
        init = {n: p for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self"}
        if any(p.kind is p.VAR_KEYWORD for p in init.values()):
            return None
        if len(init) == 1:  # GEM(cfg: GEMConfig): the dataclass fields are the keys
            arg = typing.get_type_hints(cls.__init__).get(next(iter(init)))
            if dataclasses.is_dataclass(arg):
                return {f.name: f.type for f in dataclasses.fields(arg)}
        return {n: p.annotation for n, p in init.items()}
    except Exception:
        return None


def _type_problem(value: object, annotation: object) -> str | None:
    """None when a TOML value fits a simple annotation ('int', 'float', 'bool', 'str', 'tuple[int, ...]',
    'Sequence[int]', 'int | None'); else the expected type in words. Annotations it does not know pass."""
    text = str(getattr(annotation, "__name__", annotation)).replace("typing.", "")
    arms = [a.strip() for a in text.split("|")]
    if "None" in arms and len(arms) == 2:
        text = next(a for a in arms if a != "None")
    scalar = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
              "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str)}
    if text in scalar:
        return None if scalar[text](value) else text
    m = re.match(r"^(?:tuple|list|Sequence|collections\.abc\.Sequence)\[(\w+)(?:, \.\.\.)?(?:, \w+)*\]$", text)
    if m and m[1] in scalar:
        ok = isinstance(value, list | tuple) and all(scalar[m[1]](v) for v in value)
        return None if ok else f"list of {m[1]}"
    return None


def check_card_config(card: ModelCard) -> None:
    """Every [config] key is a parameter of the card's zoo model, with a value of its type; else one clear error
    naming the key and the nearest known one (or the expected type)."""
    import difflib

    params = _config_params(card.model)
    if params is None:
        return
    for key, value in card.config.items():
        if key not in params:
            near = difflib.get_close_matches(key, list(params), n=1)
            hint = f"did you mean {near[0]!r}?" if near else "remove it"
            raise EdgekitError(f"model card {card.source}: [config] key {key!r} is not a parameter of {card.model}",
                               f"{hint} (known: {', '.join(sorted(params))})")
        expected = _type_problem(value, params[key])
        if expected is not None:
            raise EdgekitError(f"model card {card.source}: [config] {key} = {value!r} has the wrong type, "
                               f"expected {expected}", f"write {key} as a TOML {expected}")


def _load_from_card(card: ModelCard, input_specs: list[TensorSpec]) -> LoadedModel:
    from edgekit.zoo import create_model

    check_card_config(card)
    try:
        module = create_model(card.model, **card.config)
    except EdgekitError:
        raise
    except Exception as exc:  # a value of the right type the model still rejects (top_k larger than the units)
        raise EdgekitError(f"model card {card.source}: building {card.model} with [config] {card.config} failed "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})",
                           "fix that [config] value (see the model's parameters in edgekit/zoo)") from exc
    return LoadedModel(
        name=card.name,
        module=module,
        inputs=input_specs or list(card.inputs),
        outputs=list(card.outputs),
        source=f"card:{card.source}",
        task=card.task,
        card=card,
    )


def _few(names, n: int = 3) -> str:
    names = list(names)
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def load_checkpoint(module: nn.Module, path: Path, fix: str = "") -> dict[str, str]:
    """Load a state_dict file (torch.load with weights_only=True: tensors only, nothing unpickled) into `module`,
    strictly. A missing file, an unreadable one, or keys/shapes that do not fit are one EdgekitError naming a few of
    them. Returns {"checkpoint": path, "sha256": ...} for the manifest."""
    from edgekit.files import file_sha256

    path = Path(path).expanduser()
    fix = fix or "load the checkpoint into the model it was saved from (same card and config)"
    if not path.is_file():
        raise EdgekitError(f"checkpoint {path} does not exist", "check the path (edgekit eval --save-checkpoint "
                           "writes one)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EdgekitError(f"cannot read checkpoint {path} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})",
                           "give a state_dict saved with torch.save(model.state_dict(), path)") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EdgekitError(f"checkpoint {path} is not a state_dict (name -> tensor)",
                           "save it with torch.save(model.state_dict(), path)")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {'x'.join(map(str, state[k].shape))} vs {'x'.join(map(str, own[k].shape))}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = ([f"{len(shapes)} of other shapes (checkpoint vs model: {_few(shapes)})"] if shapes else []) \
            + ([f"{len(missing)} missing ({_few(missing)})"] if missing else []) \
            + ([f"{len(unexpected)} unexpected ({_few(unexpected)})"] if unexpected else [])
        raise EdgekitError(f"checkpoint {path} does not fit {type(module).__name__}: tensors " + "; ".join(parts), fix)
    module.load_state_dict(state)
    module.eval()
    return {"checkpoint": str(path), "sha256": file_sha256(path)}


def load_model(ref: str, input_options: list[str] | None = None, seed: int = 0,
               checkpoint: Path | None = None) -> LoadedModel:
    """Resolve MODEL (card name, card file, zoo name or file.py:factory) and check it runs on its inputs.
    `checkpoint` (else a card's `checkpoint`) is a state_dict loaded into the model: the trained weights."""
    torch.manual_seed(seed)  # untrained zoo weights are deterministic for a given seed
    specs = [parse_input_option(o) for o in (input_options or [])]
    if ".py:" in ref or ref.endswith(".py"):
        if not ref.rpartition(":")[2] or ref.endswith(".py"):
            raise EdgekitError(f"{ref!r} names no factory", "write it as path/to/file.py:factory")
        loaded = _load_user_model(ref, specs)
    elif ref.endswith(".toml"):
        loaded = _load_from_card(load_card(Path(ref)), specs)
    else:
        card = find_card(ref)
        if card is not None:
            loaded = _load_from_card(card, specs)
        else:
            from edgekit.zoo import create_model

            module = create_model(ref)  # raises "unknown model" with the list of names
            if not specs:
                raise EdgekitError(f"zoo model {ref!r} has no model card", "pass --input NAME:SHAPE:DTYPE for its inputs")
            loaded = LoadedModel(name=ref, module=module, inputs=specs, outputs=[], source=f"zoo:{ref}")
    ckpt = checkpoint or (loaded.card.checkpoint_path() if loaded.card is not None else None)
    if ckpt is not None:
        fix = ("load it into the card it was trained for (`edgekit eval CARD --save-checkpoint` builds the card with "
               "the suite's head: export a card like gem-tiny-suite whose config matches)")
        loaded.weights = load_checkpoint(loaded.module, ckpt, fix)
        loaded.source += f"+checkpoint:{loaded.weights['sha256'][:16]}"
    for spec in loaded.inputs:  # card inputs too: refuse before the examples are drawn
        check_input_memory(spec)
    _check_forward(loaded, seed)
    return loaded


def _check_forward(loaded: LoadedModel, seed: int) -> None:
    """Run the module once on its inputs; a shape/dtype mismatch becomes one clear error. Fills output names."""
    rng = np.random.default_rng(seed)
    if not loaded.examples:
        loaded.examples.append({s.name: s.random(rng) for s in loaded.inputs})
    params = _forward_params(loaded.module)
    unknown = [s.name for s in loaded.inputs if params and s.name not in params]
    if unknown and len(loaded.inputs) <= len(params):
        raise EdgekitError(
            f"input name(s) {unknown} are not parameters of {type(loaded.module).__name__}.forward{tuple(params)}",
            "name each --input after a forward() parameter",
        )
    try:
        with torch.inference_mode():
            out = loaded.module(*loaded.example_tensors())
    except Exception as exc:
        shapes = ", ".join(f"{s.name}:{'x'.join(map(str, s.shape))}:{s.dtype}" for s in loaded.inputs)
        raise EdgekitError(
            f"{loaded.name} failed on inputs [{shapes}]: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            "check the --input shapes and dtypes against what forward() expects",
        ) from exc
    n_out = len(flatten_outputs(out))
    names = list(loaded.outputs)[:n_out] or (["output"] if n_out == 1 else [])
    loaded.outputs = names + [f"output_{i}" for i in range(len(names), n_out)]


def flatten_outputs(out) -> list[torch.Tensor]:
    """A model's output as a flat list of tensors (tuples, lists, dicts, ModelOutput, caches in order; None skipped);
    what cannot be flattened is one EdgekitError (export.capture.flatten_model_outputs)."""
    from edgekit.export.capture import flatten_model_outputs

    return flatten_model_outputs(out)
