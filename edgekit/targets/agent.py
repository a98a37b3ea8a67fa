#!/usr/bin/env python3
# ruff: noqa: UP031, B904, B905  -- this file runs on device Pythons down to 3.7 (no zip(strict=)), stdlib only
"""edgekit's device agent: one self-contained file copied to a device and run there with the device's own Python.

It needs only the standard library, numpy and the runtime that executes the artifact (onnxruntime, tflite_runtime,
ai_edge_litert or tensorflow.lite, coremltools on macOS). It never imports edgekit, so nothing else has to be
installed on the board. Python >= 3.7.

Usage:
    python3 agent.py check
    python3 agent.py bench --model FILE --format onnx|tflite|coreml --inputs JSON [--runtime auto] [--threads N]
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
import json
import os
import platform
import sys
import time

AGENT_VERSION = "1"
RUNTIMES = ("onnxruntime", "ai_edge_litert", "tflite_runtime", "tensorflow", "coremltools")


def emit(stream, event, **fields):
    stream.write(json.dumps(dict(event=event, **fields)) + "\n")
    stream.flush()


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


LOADERS = {"onnx": load_onnx, "tflite": load_tflite, "coreml": load_coreml}


# -- the timed loop --------------------------------------------------------------------------------------------------

def bench(args, out):
    import numpy as np

    if args.format not in LOADERS:
        raise AgentError("unknown artifact format %r" % args.format, "use onnx, tflite or coreml")
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
