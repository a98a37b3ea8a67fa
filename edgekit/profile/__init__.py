"""Per-operator profiles mapped back to PyTorch modules (`edgekit profile ARTIFACT`).

The runtime's own profiler times every operator (onnxruntime: `SessionOptions.enable_profiling`, a Chrome-trace
JSON with one `<node>_kernel_time` event per operator call). Each node name carries the PyTorch module scope the
exporter wrote (`blocks.0.attn.qkv/node_MatMul_2` -> module `blocks.0.attn.qkv`; the TorchScript exporter's
`/encoder/layers.0/attn/MatMul` -> `encoder.layers.0.attn`), so per-operator times add up per module.

- edgekit.profile.model: the data model (NodeTime, ModuleRow, OperatorProfile) and the module aggregation;
- edgekit.profile.ort: profiling an .onnx file with onnxruntime (in this process);
- edgekit.profile.run: one artifact -> a profile run in the results store (kind "profile").
"""

from edgekit.profile.model import ModuleRow, NodeTime, OperatorProfile, module_of

__all__ = ["ModuleRow", "NodeTime", "OperatorProfile", "module_of"]
