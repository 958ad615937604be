"""ONNX workbench: make a trained ONNX model run faster, and see why."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``from workbench import Workbench`` without importing ipywidgets for CLI-only use."""
    if name == "Workbench":
        from workbench.ui.app import Workbench

        return Workbench
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
