"""`workbench show RUN_ID`: one run in full, with its environment and the command that rebuilds it."""

from __future__ import annotations

import argparse

from workbench.cli.cmd_run import format_run
from workbench.cli.common import add_workspace_option, print_json
from workbench.report.reproduce import reproduce_command
from workbench.runs.store import missing_files
from workbench.runs.workspace import Workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("show", help="print one run (an id or a unique prefix of one)")
    parser.add_argument("run_id")
    add_workspace_option(parser)
    parser.add_argument("--json", action="store_true", help="print the run object as JSON")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    workspace = Workspace(args.workspace)
    run = workspace.load_run(workspace.store.resolve(args.run_id))
    gone = missing_files(run)
    if args.json:
        print_json({**run.to_dict(), "missing": gone, "reproduce": reproduce_command(run)})
        return 0
    lines = [format_run(run)]
    if "artifact" in gone:
        lines.append("  artifact      MISSING (the file was removed; `workbench run --force` rebuilds it)")
    for name, path in sorted(run.tables.items()):
        lines.append(f"  table {name:<8}{path}" + ("  (missing)" if name in gone else ""))
    env = run.environment
    versions = ", ".join(f"{k} {v}" for k, v in sorted(env.get("versions", {}).items()))
    lines += [f"  machine       {env.get('cpu', '?')} ({env.get('cpu_count', '?')} cores), {env.get('os', '?')}",
              f"  versions      python {env.get('python', '?')}, {versions}",
              f"  reproduce     {reproduce_command(run)}"]
    print("\n".join(lines))
    return 0
