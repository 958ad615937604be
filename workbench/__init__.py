"""ONNX workbench: make a trained ONNX model run faster, and see why."""

__version__ = "0.1.0"
