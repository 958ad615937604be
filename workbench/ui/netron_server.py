"""Serve a model to Netron's page on 127.0.0.1 only, privately, and the URL a browser should use.

Netron's own server (``netron.start``) hands the page and the model to any local process and any
``Host`` (a DNS-rebinding page could read the model), and its page reports to Google Analytics
unless its version reads ``0.0.0``. So the workbench serves Netron's static files itself:

- bound to 127.0.0.1; every path starts with a random token, and a request whose ``Host`` is not
  this server's own address is refused, so neither another site nor a guessing process gets in;
- the page's version meta set to ``0.0.0`` (Netron's switch for "not a packaged release": no
  analytics), and a Content-Security-Policy that lets the page reach only its own origin, so the
  consent check's IP-lookup and any beacon are blocked in the browser, not merely unused;
- Netron's consent prompt is left to the user, never answered for them. Two lines of the page's
  ``browser.js`` are changed as served: the prompt's IP-lookup (``ipinfo.io``, to skip the prompt
  outside Europe) is not attempted, and the answer is stored for a numeric host like 127.0.0.1
  too (Netron's cookie names ``.0.1`` as its domain there, so the browser drops it and asks again).

On a remote Jupyter server the browser cannot reach 127.0.0.1 of that machine, so where
``jupyter-server-proxy`` is installed the page goes through Jupyter's ``/proxy/<port>/`` route.
"""

from __future__ import annotations

import http.server
import importlib.util
import os
import re
import secrets
import threading
import urllib.parse
from pathlib import Path

import onnx

HOST = "127.0.0.1"
#: The page may load and fetch from its own origin only; Netron's inline styles and worker blobs are its own.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
                           "worker-src 'self' blob:; frame-src 'none'; object-src 'none'; base-uri 'none'; "
                           "form-action 'none'")
#: (what, pattern, replacement, required) applied to the served browser.js; a required one that no
#: longer matches a newer Netron stops the server rather than let the page reach out.
_BROWSER_JS_PATCHES = (
    ("the consent prompt's IP lookup", r"this\._fetch\('https://ipinfo\.io/json'[^;]*\)",
     "Promise.reject(new Error('no outside requests from the workbench'))", True),
    ("the consent cookie on a numeric host", r"location\.hostname\.indexOf\('\.'\) !== -1 \?",
     "location.hostname.indexOf('.') !== -1 && !/^[0-9.]+$/.test(location.hostname) ?", False),
)
_MIME = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css",
         ".png": "image/png", ".ico": "image/x-icon", ".json": "application/json"}


def netron_static_dir() -> Path:
    spec = importlib.util.find_spec("netron")
    if spec is None or spec.origin is None:
        raise OSError("the netron package is not installed (pip install 'onnx-workbench[lab]')")
    return Path(spec.origin).parent


def _external_files(model: Path) -> set[str]:
    """The files beside the model that its weights live in (external data), which the page must also read."""
    proto = onnx.load(str(model), load_external_data=False)
    names = set()
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                names.add(entry.value)
    return {name for name in names if (model.parent / name).resolve().parent == model.parent.resolve()}


def _private_browser_js(path: Path) -> bytes:
    """Netron's browser.js with its outside request removed and its consent answer kept (see above)."""
    script = path.read_text(encoding="utf-8")
    for what, pattern, replacement, required in _BROWSER_JS_PATCHES:
        script, found = re.subn(pattern, lambda _, text=replacement: text, script)
        if required and found == 0:
            raise OSError(f"this netron release changed {what}, so its page cannot be served without "
                          "outside requests; install the netron version the workbench names")
    if "ipinfo.io" in script:
        raise OSError("this netron release still looks up the viewer's IP address; it cannot be served privately")
    return script.encode("utf-8")


class GraphServer:
    """One model served to Netron's page behind a random token; ``stop()`` ends it."""

    def __init__(self, model: str | Path) -> None:
        self.model = Path(model).resolve()
        self.token = secrets.token_urlsafe(24)
        self.static = netron_static_dir()
        self.files = {self.model.name: self.model} | {name: self.model.parent / name
                                                      for name in _external_files(self.model)}
        self._index = self._page()
        self._browser_js = _private_browser_js(self.static / "browser.js")
        self._httpd = http.server.ThreadingHTTPServer((HOST, 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="workbench-netron", daemon=True)
        self._thread.start()

    @property
    def allowed_hosts(self) -> set[str]:
        return {f"{HOST}:{self.port}", f"localhost:{self.port}"}

    def _page(self) -> bytes:
        """Netron's index.html with the version that switches analytics off and the model to open."""
        page = (self.static / "index.html").read_text(encoding="utf-8")
        name = urllib.parse.quote(self.model.name)
        meta = ('<meta name="type" content="Python">\n<meta name="version" content="0.0.0">\n'
                f'<meta name="file" content="data/{name}">\n<meta name="identifier" content="{name}">')
        page, found = re.subn(r'<meta name="version" content="[^"]*">', lambda _: meta, page)
        if found != 1:
            raise OSError("this netron release's page has no version meta to switch its analytics off")
        return page.encode("utf-8")

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def host_allowed(self, host: str | None, proxy_context: str | None) -> bool:
        """This server's own address; through Jupyter's proxy (which keeps the browser's Host), its route."""
        if host in self.allowed_hosts:
            return True
        return bool(proxy_context) and proxy_context.rstrip("/").endswith(f"/proxy/{self.port}") and has_server_proxy()

    def answer(self, host: str | None, raw_path: str, proxy_context: str | None = None) -> tuple[int, str, bytes]:
        """Status, content type and body for a GET: refused unless the Host and the token are right."""
        if not self.host_allowed(host, proxy_context):
            return 403, "text/plain", b"Forbidden: this server answers only to its own address."
        path = urllib.parse.unquote(urllib.parse.urlsplit(raw_path).path)
        prefix = f"/{self.token}/"
        if not path.startswith(prefix) and path != prefix.rstrip("/"):
            return 404, "text/plain", b"Not found."
        rest = path[len(prefix):]
        if rest in ("", "index.html"):
            return 200, _MIME[".html"], self._index
        if rest.startswith("data/"):
            target = self.files.get(rest[len("data/"):])
            return (200, "application/octet-stream", target.read_bytes()) if target else (404, "text/plain", b"")
        if rest == "browser.js":
            return 200, _MIME[".js"], self._browser_js
        target = (self.static / rest).resolve()
        if target.parent != self.static.resolve() or target.suffix not in _MIME or not target.is_file():
            return 404, "text/plain", b"Not found."
        return 200, _MIME[target.suffix], target.read_bytes()


def _handler_for(server: GraphServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, content_type, body = server.answer(self.headers.get("Host"), self.path,
                                                       self.headers.get("X-ProxyContextPath"))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def log_message(self, format: str, *args: object) -> None:
            """Silent: a notebook's output is no place for an access log."""

    return Handler


def has_server_proxy() -> bool:
    return importlib.util.find_spec("jupyter_server_proxy") is not None


def serve(path: str | Path, previous: GraphServer | None = None) -> GraphServer:
    """Serve ``path`` (stopping the previous model's server) and return its server."""
    if previous is not None:
        previous.stop()
    return GraphServer(path)


def browser_url(server: GraphServer) -> str:
    """Through Jupyter's proxy where available (remote servers), else the direct local address."""
    if has_server_proxy():
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        return f"{prefix.rstrip('/')}/proxy/{server.port}/{server.token}/"
    return f"http://{HOST}:{server.port}/{server.token}/"
