"""Shareable output: the runs table as a frame, reproduce commands, and the one-file HTML report."""
