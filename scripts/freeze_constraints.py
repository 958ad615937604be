"""Write constraints.txt: the installed version of every package pyproject.toml names (all extras).

`make install` installs with ``-c constraints.txt``, so a fresh machine gets the versions the test
suite last passed with, not whatever was released since (a new ONNX Runtime minor arrived unnoticed
once, with new telemetry). To move to newer releases: upgrade in the venv
(``pip install -U onnxruntime``), run ``make test``, then run this script and commit the file.
Transitive dependencies are left free: pinning them would fight each platform's wheels.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
#: Installed beside the extras with --no-deps (its own requirements pull torch); pinned all the same.
EXTRA_PACKAGES = ("silero-vad",)


def project_requirements(pyproject: Path) -> list[str]:
    """Every distribution named in the dependencies and the extras, the project itself left out."""
    project = tomllib.loads(pyproject.read_text())["project"]
    specs = [*project["dependencies"], *(s for extra in project["optional-dependencies"].values() for s in extra)]
    names = {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].strip() for spec in specs}
    return sorted((names - {project["name"]}) | set(EXTRA_PACKAGES), key=str.lower)


def main() -> int:
    lines = ["# The versions `make test` last passed with (scripts/freeze_constraints.py writes this file).",
             "# `make install` installs with -c constraints.txt; see the README's Dependencies section to move on."]
    for name in project_requirements(ROOT / "pyproject.toml"):
        try:
            lines.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            lines.append(f"# {name}: not installed here (an optional engine), left free")
    (ROOT / "constraints.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {ROOT / 'constraints.txt'} ({len(lines) - 2} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
