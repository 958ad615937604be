"""A place in a panel where one figure function's output appears, or the reason it cannot.

Each slot calls exactly one function (runs -> plotly figure) and shows the figure as a
``FigureWidget``; a slot never computes anything itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as W
import plotly.graph_objects as go

from workbench.errors import WorkbenchError
from workbench.runs.run import Run
from workbench.ui.messages import error_html, heading_html, note_html

FigureMaker = Callable[[Sequence[Run]], go.Figure | str]


class PlotSlot:
    """Title plus either a FigureWidget or one line saying why there is no plot yet."""

    def __init__(self, title: str, make: FigureMaker) -> None:
        self.title = title
        self.make = make
        self.figure: go.FigureWidget | None = None
        self.message = W.HTML()
        self.body = W.Box()
        self.widget = W.VBox([W.HTML(heading_html(title)), self.message, self.body])

    def update(self, runs: Sequence[Run]) -> None:
        """Redraw from the given runs; a string result is the reason there is nothing to draw."""
        try:
            result = self.make(runs)
        except WorkbenchError as exc:
            self.show_text(error_html(exc))
            return
        if isinstance(result, str):
            self.show_text(note_html(result))
            return
        self.figure = go.FigureWidget(result)
        self.message.value = ""
        self.body.children = (self.figure,)

    def show_text(self, html: str) -> None:
        self.figure = None
        self.message.value = html
        self.body.children = ()
