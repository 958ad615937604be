"""The notebook face of the workbench: ipywidgets panels that lay out and call the one pipeline."""
