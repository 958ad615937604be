"""Backends by name, and which of them this machine can run (with the reason for the others)."""

from __future__ import annotations

from collections.abc import Mapping

from workbench.backends.base import Availability, Backend
from workbench.backends.onnxruntime_cpu import OnnxruntimeCpuBackend
from workbench.backends.onnxruntime_cuda import OnnxruntimeCudaBackend
from workbench.backends.openvino_backend import OpenvinoBackend, OpenvinoGpuBackend, OpenvinoNpuBackend
from workbench.backends.tensorrt_backend import TensorrtBackend
from workbench.build_options import DEFAULT_BACKEND
from workbench.errors import BackendUnavailable

_BACKENDS: dict[str, type[Backend]] = {
    backend.name: backend
    for backend in (OnnxruntimeCpuBackend, OpenvinoBackend, OnnxruntimeCudaBackend, TensorrtBackend,
                    OpenvinoGpuBackend, OpenvinoNpuBackend)
}


def backend_names() -> list[str]:
    return list(_BACKENDS)


def availability() -> dict[str, Availability]:
    """Every known backend with whether it runs here; shown in the CLI and the Build panel."""
    return {name: cls.availability() for name, cls in _BACKENDS.items()}


def get_backend(name: str = DEFAULT_BACKEND, options: Mapping[str, str] | None = None) -> Backend:
    """The named backend set up with ``options``, or BackendUnavailable explaining how to get it."""
    if name not in _BACKENDS:
        raise BackendUnavailable(f"Unknown backend '{name}'.", f"Choose one of: {', '.join(_BACKENDS)}.")
    cls = _BACKENDS[name]
    status = cls.availability()
    if not status.available:
        raise BackendUnavailable(f"Backend '{name}' cannot run on this machine.", status.reason)
    return cls.from_options(options or {})
