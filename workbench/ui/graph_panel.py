"""Graph tab: the original model or any built variant, opened in Netron inside the notebook."""

from __future__ import annotations

from html import escape
from pathlib import Path

import ipywidgets as W
from IPython.display import HTML

from workbench.runs.run import Run
from workbench.ui import netron_server
from workbench.ui.messages import error_html, note_html


class GraphPanel:
    """Variant picker + Show button; the view is an iframe plus a plain link to open it in a tab."""

    def __init__(self) -> None:
        self.server: netron_server.GraphServer | None = None
        self.url: str | None = None
        self.variant = W.Dropdown(description="Variant", options=[], layout=W.Layout(width="520px"))
        self.show_button = W.Button(description="Show graph", icon="project-diagram")
        self.message = W.HTML(note_html("Open a model in the Model tab, then choose the variant to view."))
        self.view = W.Output(layout=W.Layout(width="100%"))
        self.show_button.on_click(lambda _: self.show())
        self.widget = W.VBox([W.HBox([self.variant, self.show_button]), self.message, self.view],
                             layout=W.Layout(width="100%"))

    def set_variants(self, model_path: Path, runs: list[Run]) -> None:
        self.message.value = note_html("Choose the original model or one of its built variants, then click Show.")
        options = [(f"original · {model_path.name}", str(model_path))]
        options += [(f"{r.label} · {r.run_id[:8]}", r.artifact) for r in reversed(runs) if r.artifact_exists]
        current = self.variant.value
        self.variant.options = options
        self.variant.value = current if current in dict(options).values() else options[0][1]

    def show(self) -> str | None:
        """Serve the chosen file on 127.0.0.1 and embed it; returns the URL the page uses."""
        if not self.variant.value:
            self.message.value = error_html("No model is open. Open one in the Model tab first.")
            return None
        try:
            self.server = netron_server.serve(self.variant.value, self.server)
        except OSError as exc:
            self.message.value = error_html(f"Netron could not start: {exc}. Close other Netron windows and retry.")
            return None
        self.url = netron_server.browser_url(self.server)
        url = escape(self.url, quote=True)
        shown = dict((v, k) for k, v in self.variant.options).get(self.variant.value, Path(self.variant.value).name)
        self.message.value = (f"<a href='{url}' target='_blank'>Open {escape(shown)} "
                              f"in a new tab</a> (served on 127.0.0.1 only, behind a private link; Netron may ask once "
                              "about cookies: its analytics are switched off and blocked here)")
        self.view.clear_output()
        self.view.append_display_data(HTML(
            f"<iframe src='{url}' style='display:block;width:100%;max-width:100%;box-sizing:border-box;"
            f"height:640px;border:1px solid #ddd'></iframe>"))
        return self.url
