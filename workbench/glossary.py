"""The words the workbench shows, explained once: the app's "?" tooltips, the notebooks' glossary cells
and the human column names of every runs table come from here, so they never disagree."""

from __future__ import annotations

from html import escape

import pandas as pd

from workbench.runs.format import shown_table

#: term -> one or two plain sentences.
TERMS: dict[str, str] = {
    "FP32": "32-bit floating point: how the model was trained and stored. The reference every variant is "
            "compared with.",
    "FP16": "16-bit floating point: half the memory. Fast on GPUs; most CPUs have no FP16 arithmetic and "
            "convert back to FP32, so it is rarely faster there.",
    "BF16": "bfloat16: 16 bits with FP32's range and less precision. Needs CPU or GPU support (AVX-512 BF16, "
            "AMX, recent GPUs) to be faster.",
    "INT8": "8-bit integers plus one scale per tensor or channel (static INT8 also quantizes activations, "
            "using calibration data). 4x fewer bytes and integer arithmetic: the usual CPU speed-up.",
    "int8-dynamic": "INT8 weights only for MatMul-type layers; activation scales are computed while running. "
                    "No calibration data needed; pays off on transformer-like models, not on CNNs.",
    "int8-weights": "Weight-only INT8: MatMul/Gemm weights stored in 8 bits per block with a scale, activations "
                    "in floating point. About 4x smaller matrix weights; the embeddings and last layer stay FP32.",
    "int4-weights": "Weight-only INT4: MatMul/Gemm weights in 4 bits per block (ratio: the share in 4 bits, the "
                    "rest 8). Up to 8x smaller weights and faster memory-bound layers; costs some accuracy.",
    "FP8": "8-bit floating point (E4M3) weights and activations of the convolutions and matrix products, "
           "scaled from calibration data. Runs on FP8 tensor cores (NVIDIA Ada, Hopper, Blackwell): refused "
           "elsewhere, where it could only be simulated.",
    "calibration": "Sample inputs run through the FP32 model to learn each activation's range, from which "
                   "INT8 picks its scales. Use data like the real inputs, never the evaluation set.",
    "minmax": "Calibration method: the scale covers the largest value seen. Exact for the extremes, coarse "
              "for everything else when one value is far out.",
    "entropy": "Calibration method: the range that keeps the distribution's information (KL divergence), "
               "clipping rare large values.",
    "percentile": "Calibration method: the range covers 99.999% of the values seen, clipping the rest.",
    "per-channel": "One INT8 scale per output channel of a weight tensor instead of one for the whole "
                   "tensor, so small channels are not rounded on the grid of the largest.",
    "batch": "Inputs run together in one call. Latency is per batch; larger batches amortise fixed costs.",
    "latency": "Time for one batch, median of many timed runs (ms). In tables it is on the shared FP32 "
               "reference's scale: the stored reference time divided by the speed-up.",
    "p90": "90th percentile latency: 9 runs in 10 were at least this fast. Shows the slow tail.",
    "speed-up": "FP32 reference time divided by the variant's, both timed in the same interleaved rounds. "
                "Above 1 is faster.",
    "spread": "Half the interquartile range of the per-round speed-ups. Where it is larger than the "
              "distance from 1, the variant is not measurably faster or slower than FP32.",
    "accuracy": "Share of the evaluation samples whose predicted class matches the label.",
    "top-1 agreement": "Share of samples where the variant picks the same class as FP32 (needs no labels).",
    "cosine": "Cosine similarity of the variant's outputs with FP32's: 1 means the same direction.",
    "max abs error": "Largest absolute difference between any output value of the variant and FP32's.",
    "SQNR": "Signal-to-quantization-noise ratio in dB: 10·log10(signal power / error power). Every 6 dB "
            "is about one bit; below ~20 dB a layer's output is badly damaged.",
    "local error": "The error a layer adds by itself, computed on exact FP32 inputs.",
    "accumulated error": "The error at a tensor of the whole variant against FP32: everything up to there.",
    "pruning": "Removing weights. Magnitude zeroes small weights (no speed-up on dense kernels); 2:4 keeps 2 "
               "of every 4 (sparse tensor cores); channel removes whole channels (a smaller, faster model).",
    "repair": "After channel pruning, layers that lost inputs are refitted by least squares on the "
              "calibration data, with no training.",
    "Pareto front": "The runs nothing else beats on both speed and accuracy at once.",
    "file size": "The variant's size on disk in MB (10^6 bytes): the .onnx file with its external data, or an "
                 "OpenVINO IR's .xml and .bin. FP32 file MB is the original model's.",
    "RSS": "The memory (resident set) the engine added when it loaded the file and ran one batch, in MB: the "
           "weights as the engine holds them plus one batch's buffers. FP32 RSS MB is the original model's, "
           "measured the same way in the same process.",
    "confidence": "The level of every interval and verdict: a variant meets the budget when its whole interval "
                  "at this level lies at or above it, misses when the whole interval lies below, and otherwise "
                  "the data cannot tell. Higher levels ask for more samples to settle a verdict.",
    "search samples": "How many samples of the search's part each trial is judged on first (0: all of it). "
                      "Only a trial whose interval straddles the budget is evaluated on more of the rest.",
    "Q/DQ": "QuantizeLinear/DequantizeLinear node pairs: how an ONNX file says where values are INT8. The "
            "runtime fuses them with their layer into an integer kernel.",
}

#: column shown -> glossary term its "?" explains.
COLUMN_TERMS = {
    "latency (ms/batch)": "latency", "p90 (ms/batch)": "p90", "speed-up vs FP32, same engine (×)": "speed-up",
    "spread (±×)": "spread",
    "accuracy (%)": "accuracy", "top-1 agreement (%)": "top-1 agreement", "cosine": "cosine",
    "max abs error": "max abs error", "pruning": "pruning", "batch": "batch", "precision": "FP32",
    "file MB": "file size", "FP32 file MB": "file size", "RSS MB (load + 1 batch)": "RSS",
    "FP32 RSS MB (load + 1 batch)": "RSS",
}


def human_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The same table as every face shows it: human names with units, cells written by the shared formatter."""
    return shown_table(frame, list(frame.columns))


def help_icon(term: str) -> str:
    """A small "?" whose tooltip explains ``term`` (HTML)."""
    return (f'<span class="wb-help" title="{escape(TERMS[term], quote=True)}" '
            f'style="cursor:help;color:#1565c0;font-weight:bold;font-size:0.85em;margin-left:2px">?</span>')


def with_help(label: str, term: str | None = None) -> str:
    """``label`` followed by the "?" of its term (HTML)."""
    term = term or COLUMN_TERMS.get(label, label)
    return f"{escape(label)}{help_icon(term)}" if term in TERMS else escape(label)


def glossary_html(terms: list[str] | None = None) -> str:
    rows = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{escape(t)}</th>"
                   f"<td style='text-align:left'>{escape(TERMS[t])}</td></tr>" for t in (terms or TERMS))
    return f"<table class='wb-glossary'>{rows}</table>"


def glossary(terms: list[str] | None = None) -> object:
    """The glossary as a notebook output (all terms, or the ones named)."""
    from IPython.display import HTML

    return HTML(glossary_html(terms))
