"""How much memory this machine has for a step, and whether a step will fit before it starts.

Low in the layers: the data loaders, calibration and the pipeline all ask before they allocate.
"""
