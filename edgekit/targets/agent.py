#!/usr/bin/env python3
# ruff: noqa: UP031, B904, B905  -- this file runs on device Pythons down to 3.7 (no zip(strict=)), stdlib only
"""edgekit's device agent: one self-contained file copied to a device and run there with the device's own Python.

It needs only the standard library, numpy and the runtime that executes the artifact (onnxruntime, tflite_runtime,
ai_edge_litert or tensorflow.lite, coremltools on macOS). It never imports edgekit, so nothing else has to be
installed on the board. Python >= 3.7.

Usage:
    python3 agent.py check
    python3 agent.py bench --model FILE --format onnx|tflite|coreml|executorch --inputs JSON [--runtime auto] [--threads N]
                     [--warmup 5] [--runs 50] [--min-time 1] [--max-time 150] [--seed 0] [--provider P]
                     [--compute-units ALL|CPU_ONLY|CPU_AND_GPU|CPU_AND_NE] [--return-outputs]

Output: JSON lines on stdout. `check` prints one {"event": "check", ...}. `bench` prints {"event": "phase", ...}
lines as it goes and ends with exactly one {"event": "result", ...} or {"event": "error", "problem", "fix"}.
Latencies are in ms (time.perf_counter_ns around each run), memory in bytes. Exit code 0 on a result, 2 on an error
event; anything else (a signal, a traceback) is a crash.

--inputs is a JSON list of {"name", "shape", "dtype", "low", "high"}; inputs are drawn from
numpy.random.default_rng(seed) exactly as edgekit's TensorSpec.random does, so a device run sees the same data as a
local one.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import platform
import sys
import time

AGENT_VERSION = "1"
RUNTIMES = ("onnxruntime", "ai_edge_litert", "tflite_runtime", "tensorflow", "coremltools", "executorch")


def emit(stream, event, **fields):
    """One JSON line. NaN and Infinity are not JSON (json.dumps would print them anyway): an event holding one is
    replaced by an error event naming the field, so the host never has to guess what `NaN` meant."""
    payload = dict(event=event, **fields)
    try:
        line = json.dumps(payload, allow_nan=False)
    except ValueError:
        line = json.dumps(dict(event="error", problem="the agent's %s event holds %s, which JSON cannot carry"
                               % (event, _first_nonfinite(payload, "") or "a non-finite number"),
                               fix=BUG_FIX), allow_nan=False)
    stream.write(line + "\n")
    stream.flush()


def _first_nonfinite(value, name):
    """`name[i].key = nan` for the first NaN/Infinity inside value, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return "%s = %r" % (name or "a value", value)
    if isinstance(value, dict):
        items = [("%s.%s" % (name, k) if name else str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [("%s[%d]" % (name, i), v) for i, v in enumerate(value)]
    else:
        return None
    for sub, v in items:
        found = _first_nonfinite(v, sub)
        if found:
            return found
    return None


# -- what an answer may hold ---------------------------------------------------------------------------------------
# One rule set for both ends: the agent checks its result before printing it, and the host
# (edgekit/targets/transports/base.py) checks every answer it reads with these same functions, so the agent is exactly
# as strict as the host. A schema maps each field to a kind (or to a nested schema); None means "not reported".

FINITE = "a finite number"
POSITIVE = "a finite number > 0"
NON_NEGATIVE = "a finite number >= 0"
POSITIVES = "a list of finite numbers > 0"
WHOLE = "a whole number >= 0 (below 2**63)"
TEXT = "text"
SCALARS = "a table of text, numbers or true/false"
VERSIONS = "a table of name = version text (or null)"
OUTPUTS = 'a list of {"shape": [whole numbers], "dtype": text, "values": [finite numbers]}'
BUG_FIX = ("the device produced an impossible value: check its runtime with `edgekit targets check`, "
           "and re-run with --debug")

MEMORY = {"rss_before_load": WHOLE, "rss_after_load": WHOLE, "peak_rss_load": WHOLE, "peak_rss_inference": WHOLE,
          "peak_rss_scope": TEXT, "rss_after_runs": WHOLE}
DESCRIBE = {"runtime": TEXT, "version": TEXT, "threads": WHOLE, "provider": TEXT}
HOST = {"machine": TEXT, "system": TEXT, "release": TEXT, "platform": TEXT, "cpu_model": TEXT, "cpu_count": WHOLE,
        "memory_total_bytes": WHOLE, "python": TEXT, "numpy": TEXT, "agent": TEXT}
RESULT = {"event": TEXT, "load_ms": NON_NEGATIVE, "first_ms": POSITIVE, "warmup_ms": POSITIVES,
          "samples_ms": POSITIVES, "timed_wall_s": NON_NEGATIVE, "memory": MEMORY, "describe": DESCRIBE,
          "host": HOST, "outputs": OUTPUTS}
CHECK = {"event": TEXT, "host": HOST, "runtimes": VERSIONS}
# event -> (schema, fields that must be present and non-empty). An "error" event is free text, passed on as is.
SCHEMAS = {"result": (RESULT, ("samples_ms",)), "check": (CHECK, ())}


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _finite(x):
    """A number that is not NaN or +-Infinity (a Python int always is, however large)."""
    return _is_number(x) and (isinstance(x, int) or math.isfinite(x))


def _show(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind_problem(kind, value, name):
    """What is wrong with one value of a kind (None: nothing; a None value means "not reported")."""
    if value is None:
        return None
    if isinstance(kind, dict):
        if not isinstance(value, dict):
            return "%s is %s, not a table" % (name, _show(value))
        return fields_problem(value, kind, name)
    if kind in (FINITE, POSITIVE, NON_NEGATIVE, WHOLE):
        if not _finite(value) or (kind != FINITE and value < 0) or (kind == POSITIVE and value == 0) or (
                kind == WHOLE and (value >= 2 ** 63 or isinstance(value, float) and not value.is_integer())):
            return "%s is %s, not %s" % (name, _show(value), kind)
        return None
    if kind == POSITIVES:
        return _list_problem(value, POSITIVE, name)
    if kind == TEXT:
        return None if isinstance(value, str) else "%s is %s, not text" % (name, _show(value))
    if kind in (SCALARS, VERSIONS):
        if not isinstance(value, dict):
            return "%s is %s, not %s" % (name, _show(value), kind)
        for k, v in value.items():
            ok = isinstance(v, str) or v is None if kind == VERSIONS else (
                v is None or isinstance(v, (str, bool)) or _finite(v))
            if not ok:
                return "%s.%s is %s, not %s" % (name, k, _show(v), "version text" if kind == VERSIONS
                                                else "text, a finite number or true/false")
        return None
    if kind == OUTPUTS:
        if not isinstance(value, list):
            return "%s is %s, not %s" % (name, _show(value), kind)
        for i, out in enumerate(value):
            sub = "%s[%d]" % (name, i)
            if not isinstance(out, dict):
                return "%s is %s, not a table" % (sub, _show(out))
            found = (fields_problem(out, {"shape": None, "dtype": TEXT, "values": None}, sub)
                     or _list_problem(out.get("shape"), WHOLE, sub + ".shape")
                     or _list_problem(out.get("values"), FINITE, sub + ".values"))
            if found:
                return found
        return None
    raise ValueError("unknown kind %r" % (kind,))


def _list_problem(value, kind, name):
    """What is wrong with a list whose every item is of `kind` (a missing list is wrong too)."""
    if not isinstance(value, list):
        return "%s is %s, not a list" % (name, _show(value))
    for i, x in enumerate(value):
        found = _kind_problem(kind, x, "%s[%d]" % (name, i)) if x is not None else "%s[%d] is null" % (name, i)
        if found:
            return found
    return None


def fields_problem(d, schema, name="", required=(), strict=True):
    """The first thing wrong with table `d` against `schema`, as text naming the field (`memory.peak_rss_load`,
    `samples_ms[3]`), or None. strict: a field the schema does not name is wrong too (with the nearest known one)."""
    prefix = name + "." if name else ""
    if strict:
        for key in d:
            if key not in schema:
                near = difflib.get_close_matches(str(key), list(schema), n=1)
                return "unknown field %s%s%s" % (prefix, key, " (did you mean %s%s?)" % (prefix, near[0])
                                                 if near else "")
    for key in required:
        if d.get(key) is None or d.get(key) == []:
            return "%s%s is %s" % (prefix, key, "missing" if d.get(key) is None else "empty")
    for key, kind in schema.items():
        if kind is None:  # checked by the caller
            continue
        found = _kind_problem(kind, d.get(key), prefix + key)
        if found:
            return found
    return None


def event_problem(event, schemas=None):
    """What is wrong with a final event (`result`, `check` or `error`) under `schemas` (default: the agent's)."""
    schemas = SCHEMAS if schemas is None else schemas
    if not isinstance(event, dict):
        return "the answer is %s, not a JSON object" % _show(event)
    kind = event.get("event")
    if kind not in schemas:
        return "unknown event %s (expected %s)" % (_show(kind), " or ".join(sorted(schemas)))
    schema, required = schemas[kind]
    return fields_problem(event, schema, "", required)


def _module_version(name):
    try:
        mod = __import__(name)
    except Exception:  # ImportError, or a broken native library
        return None
    version = getattr(mod, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as pkg_version  # Python >= 3.8

            version = pkg_version(name.replace("_", "-"))
        except Exception:
            version = "unknown"
    return str(version)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            found = {}
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and value.strip():
                    found.setdefault(key.strip(), value.strip())
        for key in ("model name", "Model", "Hardware", "cpu model"):
            if key in found:
                return found[key]
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def host_info():
    numpy_version = _module_version("numpy")
    return {"machine": platform.machine(), "system": platform.system(), "release": platform.release(),
            "platform": platform.platform(), "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
            "memory_total_bytes": _mem_total(), "python": platform.python_version(), "numpy": numpy_version,
            "agent": AGENT_VERSION}


def check():
    return {"host": host_info(), "runtimes": {name: _module_version(name) for name in RUNTIMES}}


# -- memory ----------------------------------------------------------------------------------------------------------

def _status_kb(key):
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def memory():
    """RSS now and its high-water mark (bytes)."""
    import resource

    rss = _status_kb("VmRSS")
    hwm = _status_kb("VmHWM")
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = hwm * 1024 if hwm is not None else (ru if sys.platform == "darwin" else ru * 1024)
    return {"rss": rss * 1024 if rss is not None else None, "hwm": peak}


# -- inputs ----------------------------------------------------------------------------------------------------------

def make_feeds(specs, seed):
    """Seeded random inputs, the same as edgekit.specs.TensorSpec.random with numpy.random.default_rng(seed)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for s in specs:
        shape = tuple(int(d) for d in s["shape"])
        dtype = s.get("dtype", "float32")
        low, high = float(s.get("low", 0.0)), float(s.get("high", 1.0))
        if dtype.startswith("int"):
            hi = max(int(high), int(low) + 1)
            feeds[s["name"]] = rng.integers(int(low), hi, size=shape).astype(dtype)
        elif dtype == "bool":
            feeds[s["name"]] = rng.random(shape) < 0.5
        else:
            feeds[s["name"]] = rng.standard_normal(shape).astype(dtype)
    return feeds


def _ordered(names, feeds):
    if all(n in feeds for n in names):
        return [feeds[n] for n in names]
    values = list(feeds.values())
    if len(values) != len(names):
        raise AgentError("the model takes %d inputs %s, got %d" % (len(names), names, len(values)),
                         "pass one input spec per model input")
    return values


class AgentError(Exception):
    def __init__(self, problem, fix=""):
        Exception.__init__(self, problem)
        self.problem = problem
        self.fix = fix


# -- runtimes --------------------------------------------------------------------------------------------------------

def load_onnx(path, args):
    try:
        import onnxruntime as ort
    except ImportError:
        raise AgentError("onnxruntime is not installed on this device",
                         "pip install onnxruntime on the device (aarch64 wheels exist on PyPI)")
    so = ort.SessionOptions()
    if args.threads:
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    provider = args.provider or "CPUExecutionProvider"
    try:
        sess = ort.InferenceSession(path, so, providers=[provider])
    except Exception as exc:
        raise AgentError("onnxruntime cannot load %s (%s: %s)" % (os.path.basename(path), type(exc).__name__,
                                                                  str(exc).splitlines()[0][:200] if str(exc) else ""),
                         "export the model again, or check the device's onnxruntime supports its opset")
    names = [i.name for i in sess.get_inputs()]

    def run(feeds_list):
        return sess.run(None, dict(zip(names, feeds_list)))

    describe = {"runtime": "onnxruntime", "version": ort.__version__, "threads": args.threads, "provider": provider}
    return names, run, describe


def _tflite_interpreter():
    for mod_name, label in (("ai_edge_litert.interpreter", "ai-edge-litert"),
                            ("tflite_runtime.interpreter", "tflite-runtime"),
                            ("tensorflow.lite", "tensorflow")):
        try:
            mod = __import__(mod_name, fromlist=["Interpreter"])
            return mod, label, _module_version(mod_name.split(".")[0])
        except ImportError:
            continue
    raise AgentError("no TFLite interpreter is installed on this device",
                     "pip install ai-edge-litert (or tflite-runtime, which needs numpy < 2) on the device")


def load_tflite(path, args):
    mod, label, version = _tflite_interpreter()
    try:
        interp = mod.Interpreter(model_path=path, num_threads=args.threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise AgentError("the TFLite interpreter (%s) cannot load %s (%s)" % (label, os.path.basename(path),
                                                                              str(exc).splitlines()[0][:200]),
                         "export again, or install a newer interpreter on the device")
    details = interp.get_input_details()
    sigs = interp.get_signature_list() if hasattr(interp, "get_signature_list") else {}
    names = [d["name"] for d in details]
    if sigs:
        key = next(iter(sigs))
        runner = interp.get_signature_runner(key)
        sig_names = list(sigs[key]["inputs"])
        sig_details = runner.get_input_details()

        def run(feeds_list):
            kwargs = {}
            for n, v in zip(sig_names, feeds_list):
                kwargs[n] = _quantize(v, sig_details[n])
            return list(runner(**kwargs).values())

        names = sig_names
    else:
        def run(feeds_list):
            for d, v in zip(details, feeds_list):
                interp.set_tensor(d["index"], _quantize(v, d))
            interp.invoke()
            return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]

    describe = {"runtime": label, "version": version, "threads": args.threads, "provider": "default"}
    return names, run, describe


def _quantize(value, detail):
    import numpy as np

    dtype = np.dtype(detail["dtype"])
    if dtype.kind in "iu" and value.dtype.kind == "f":
        scale, zero = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(value / scale + zero), info.min, info.max).astype(dtype)
    return value if value.dtype == dtype else value.astype(dtype)


def load_coreml(path, args):
    if platform.system() != "Darwin":
        raise AgentError("CoreML models run only on macOS, and this device is %s" % platform.system(),
                         "use the macos transport with a Mac as the host")
    try:
        import coremltools as ct
    except ImportError:
        raise AgentError("coremltools is not installed on this Mac", "pip install coremltools on the Mac")
    units = args.compute_units or "ALL"
    try:
        model = ct.models.MLModel(path, compute_units=getattr(ct.ComputeUnit, units))
    except Exception as exc:
        raise AgentError("CoreML cannot load %s (%s)" % (os.path.basename(path), str(exc)[:200]),
                         "export the model again")
    spec = model.get_spec()
    names = [i.name for i in spec.description.input]
    out_names = [o.name for o in spec.description.output]

    def run(feeds_list):
        out = model.predict(dict(zip(names, feeds_list)))
        return [out[n] for n in out_names]

    describe = {"runtime": "coreml", "version": ct.__version__, "threads": None, "provider": units}
    return names, run, describe


def load_executorch(path, args):
    """A .pte with the device's `executorch` Python runtime (it needs torch there). The `executor_runner` binary
    and Android through adb are not wired up yet: without the Python runtime this is one clear error."""
    try:
        import torch
        from executorch.runtime import Runtime
    except Exception as exc:  # ImportError, or pybindings built for another torch (undefined symbol)
        raise AgentError("the ExecuTorch Python runtime is not usable on this device (%s: %s)"
                         % (type(exc).__name__, str(exc).splitlines()[0][:160] if str(exc) else "not installed"),
                         "pip install executorch (with the torch it was built for) on the device, or leave "
                         "executorch out with --format")
    if args.threads:
        from executorch.extension.pybindings import portable_lib

        portable_lib._unsafe_reset_threadpool(int(args.threads))
    try:
        method = Runtime.get().load_program(path).load_method("forward")
    except Exception as exc:
        raise AgentError("the ExecuTorch runtime cannot load %s (%s)" % (os.path.basename(path), str(exc)[:200]),
                         "export the model again with --format executorch")
    names = ["input_%d" % i for i in range(method.metadata.num_inputs())]

    def run(feeds_list):
        outs = method.execute([torch.from_numpy(v) for v in feeds_list])
        return [o.numpy() if hasattr(o, "numpy") else o for o in outs]

    describe = {"runtime": "executorch", "version": _module_version("executorch"), "threads": args.threads,
                "provider": "xnnpack"}
    return names, run, describe


LOADERS = {"onnx": load_onnx, "tflite": load_tflite, "coreml": load_coreml, "executorch": load_executorch}


# -- the timed loop --------------------------------------------------------------------------------------------------

def bench(args, out):
    import numpy as np

    if args.format not in LOADERS:
        raise AgentError("unknown artifact format %r" % args.format, "use one of %s" % ", ".join(LOADERS))
    if not os.path.exists(args.model):
        raise AgentError("artifact %s is not on the device" % args.model, "copy it first (edgekit does this)")
    specs = json.loads(args.inputs)
    feeds = make_feeds(specs, args.seed)
    mem_before = memory()
    emit(out, "phase", phase="load")
    t0 = time.perf_counter_ns()
    names, run, describe = LOADERS[args.format](args.model, args)
    load_ns = time.perf_counter_ns() - t0
    mem_loaded = memory()
    values = _ordered(names, feeds)
    emit(out, "phase", phase="first")
    t0 = time.perf_counter_ns()
    try:
        outputs = run(values)
    except AgentError:
        raise
    except Exception as exc:
        raise AgentError("the model rejected the inputs (%s: %s)" % (type(exc).__name__, str(exc)[:200]),
                         "give the model's real input shapes")
    first_ns = time.perf_counter_ns() - t0
    emit(out, "phase", phase="warmup")
    warm = []
    for _ in range(args.warmup):
        t0 = time.perf_counter_ns()
        run(values)
        warm.append(time.perf_counter_ns() - t0)
    emit(out, "phase", phase="timed")
    samples = []
    pc = time.perf_counter_ns
    min_ns, max_ns = int(args.min_time * 1e9), int(args.max_time * 1e9)
    start = pc()
    while True:
        t0 = pc()
        run(values)
        samples.append(pc() - t0)
        elapsed = pc() - start
        if (len(samples) >= args.runs and elapsed >= min_ns) or elapsed >= max_ns:
            break
    wall = (pc() - start) / 1e9
    mem_after = memory()
    result = {
        "load_ms": load_ns / 1e6, "first_ms": first_ns / 1e6,
        "warmup_ms": [x / 1e6 for x in warm], "samples_ms": [x / 1e6 for x in samples], "timed_wall_s": wall,
        "memory": {"rss_before_load": mem_before["rss"], "rss_after_load": mem_loaded["rss"],
                   "peak_rss_load": mem_loaded["hwm"], "peak_rss_inference": mem_after["hwm"],
                   "peak_rss_scope": "process", "rss_after_runs": mem_after["rss"]},
        "describe": describe, "host": host_info(),
    }
    if args.return_outputs:
        result["outputs"] = [{"shape": list(np.shape(o)), "dtype": str(np.asarray(o).dtype),
                              "values": np.asarray(o, dtype=np.float64).ravel().tolist()} for o in outputs]
    problem = event_problem(dict(result, event="result"))
    if problem:  # the host would refuse it: say why here, on the device, instead of printing it
        raise AgentError("the agent's result is not valid: %s" % problem,
                         "the model computes NaN or Infinity on this device (check its inputs and precision)"
                         if problem.startswith("outputs") else BUG_FIX)
    emit(out, "result", **result)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="edgekit-agent", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("check")
    b = sub.add_parser("bench")
    b.add_argument("--model", required=True)
    b.add_argument("--format", required=True)
    b.add_argument("--inputs", required=True)
    b.add_argument("--runtime", default="auto")
    b.add_argument("--threads", type=int, default=None)
    b.add_argument("--provider", default=None)
    b.add_argument("--compute-units", default=None)
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--runs", type=int, default=50)
    b.add_argument("--min-time", type=float, default=1.0)
    b.add_argument("--max-time", type=float, default=150.0)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--return-outputs", action="store_true")
    args = parser.parse_args(argv)
    out = sys.stdout
    if args.cmd == "check":
        emit(out, "check", **check())
        return 0
    if args.cmd != "bench":
        parser.print_help(sys.stderr)
        return 2
    try:
        bench(args, out)
    except AgentError as exc:
        emit(out, "error", problem=exc.problem, fix=exc.fix)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
