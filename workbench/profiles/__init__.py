"""Per-layer profiles in one table schema: ONNX Runtime traces, TensorRT layer information and
trtexec exports, OpenVINO performance counters. Below the backends, which use these parsers to
turn what their profiled engines recorded into layer tables."""
