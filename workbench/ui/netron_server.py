"""Serve a model to Netron on 127.0.0.1 only, and the URL a browser should use to reach it.

Netron's own server binds where it is told; it is told 127.0.0.1, never 0.0.0.0. On a remote
Jupyter server the browser cannot reach 127.0.0.1 of that machine, so where
``jupyter-server-proxy`` is installed the page goes through Jupyter's ``/proxy/<port>/`` route.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

import netron

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def has_server_proxy() -> bool:
    return importlib.util.find_spec("jupyter_server_proxy") is not None


def serve(path: str | Path, previous_port: int | None = None) -> int:
    """Serve ``path`` (stopping the previous model's server) and return the port."""
    if previous_port is not None:
        netron.stop((HOST, previous_port))
    address = netron.start(str(path), address=(HOST, free_port()), browse=False)
    return int(address[1])


def browser_url(port: int) -> str:
    """Through Jupyter's proxy where available (remote servers), else the direct local address."""
    if has_server_proxy():
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        return f"{prefix.rstrip('/')}/proxy/{port}/"
    return f"http://{HOST}:{port}/"
