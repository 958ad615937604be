"""What the CLI, the widgets and the Python API do on top of a build: profile it layer by layer,
measure per-layer drift, search for the layers to keep in FP32. One place, called by every face."""
