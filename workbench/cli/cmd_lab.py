"""`workbench lab`: JupyterLab on the workbench notebooks, on 127.0.0.1 only."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.lab import DEFAULT_DIR, start_lab


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("lab", help="open the workbench notebooks in JupyterLab (127.0.0.1 only)")
    parser.add_argument("--dir", default=DEFAULT_DIR,
                        help=f"writable folder the notebooks are copied to (default: ./{DEFAULT_DIR})")
    parser.add_argument("--port", type=int, help="port for JupyterLab (default: the first free one from 8888)")
    parser.add_argument("--no-browser", action="store_true", help="print the URL instead of opening a browser")
    parser.add_argument("--refresh", action="store_true",
                        help="overwrite copies in --dir with the packaged notebooks (your edits there are lost)")
    parser.add_argument("--allow-root", action="store_true", help="let JupyterLab run as root (automatic as root)")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    extra = ["--allow-root"] if args.allow_root else []
    return start_lab(Path(args.dir), port=args.port, browser=not args.no_browser, refresh=args.refresh, extra=extra)
