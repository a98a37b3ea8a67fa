"""edgekit: export PyTorch models to ONNX, TFLite and CoreML, prove parity, benchmark on edge targets."""

__version__ = "0.1.0"
SCHEMA_VERSION = 1
