"""The package's version, in a module of its own: the report and the CLI read it without importing the package's
public API (``workbench/__init__.py``), which sits above them."""

__version__ = "0.1.0"
