"""The one CLI option group for ``BuildOptions``: it declares every flag, builds the dataclass, and
writes a dataclass back as flags.

As with Polygraphy's argument groups, a command calls ``add_parser_args(parser)`` when it
registers and ``parse(args)`` when it runs, so run, profile, drift, sweep and tune accept the
same flags with the same meaning. ``to_args`` is ``parse``'s inverse: the reproduce command is
``to_args`` of the options a run was built with, so it cannot drop a flag that ``parse`` reads.
``sweep=True`` turns precision and pruning into comma-separated
grid axes (``--precisions``, ``--prune-methods``, ``--prune-ratios``); every other flag stays a
single value shared by the whole grid.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from workbench.build_options import DEFAULT_BACKEND, BuildOptions
from workbench.errors import WorkbenchError
from workbench.recipe import QUANT_OPTIONS, Recipe
from workbench.tasks import TASKS
from workbench.tasks.custom import metric_name
from workbench.vocabulary import (
    CALIBRATION_METHODS,
    CONFIDENCE,
    DEFAULT_QUANTIZER,
    PRECISIONS,
    PRUNE_EFFECTS,
    PRUNE_METHODS,
    QUANTIZERS,
)


def _flag(flag: str, value: object) -> list[str]:
    return [] if value is None else [flag, str(value)]


def _text(value: object) -> str:
    """A quantization option's value as ``--quant-option`` reads it back."""
    return str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, float) else str(value)


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def comma_floats(text: str) -> list[float]:
    try:
        return [float(item) for item in comma_list(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of numbers") from exc


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE (e.g. prefer_nhwc=1)")
    return key.strip(), value.strip()


def quant_options_help() -> str:
    """Every quantization option with its choices and meaning, read from the recipe's fields."""
    parts = []
    for name, spec in QUANT_OPTIONS.items():
        values = "|".join(str(c).lower() for c in spec["choices"]) or spec["kind"].__name__
        parts.append(f"{name}={values} ({spec['help']})")
    return "; ".join(parts).replace("%", "%%")


def add_task_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """How a variant is judged: the task (guessed from the outputs when not given), a metric, the budget."""
    parser.add_argument("--task", choices=list(TASKS),
                        help="judge variants as this task (default: guessed from the model's outputs)")
    parser.add_argument("--metric", metavar="MODULE:FUNCTION",
                        help="your own metric fn(reference_outputs, variant_outputs, labels) -> float "
                        "(higher is better); like a plugin, this imports MODULE, which runs that module's code, "
                        "once the build starts after every other check")
    parser.add_argument("--budget", type=budget_value, help="lowest passing metric value (default: the task's; "
                        + "; ".join(f"{t.name} {t.rule.format(b=t.budget)}" for t in TASKS.values())
                        + "; with labels, classification allows 1 point of accuracy lost); tune also takes "
                        "'stable': the budget at FP32's own stability on the evaluation data")
    parser.add_argument("--confidence", type=confidence_value, default=CONFIDENCE, metavar="LEVEL",
                        help=f"confidence of every interval and verdict (meets / misses / cannot tell), in [0.5, 1), "
                        f"default {CONFIDENCE:g}")


def confidence_value(text: str) -> float:
    """A number; whether it is a level an interval can be drawn at is ``BuildOptions``' check, said in its words."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"confidence {text!r} is not a number (e.g. 0.95)") from None


def budget_value(text: str) -> float | str:
    """A number, or 'stable' (tune sets the budget at FP32's own stability)."""
    if text.strip().lower() == "stable":
        return "stable"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"budget {text!r} is neither a number nor 'stable'") from None


class BuildOptionsArgs:
    """Flags for every ``BuildOptions`` field; ``parse`` returns the dataclass.

    ``precision``, ``warmup`` and ``repeats`` set the defaults a command shows (profiling wants more runs than a
    build's timing); ``eval_help`` says what the command does without ``--eval``. ``searched`` leaves out the
    flags a search sets itself (precision, quantization choices, kept nodes, the backend).
    """

    def __init__(self, *, sweep: bool = False, searched: bool = False, precision: str = BuildOptions.precision,
                 warmup: int = BuildOptions.warmup, repeats: int = BuildOptions.repeats,
                 eval_help: str = "evaluation data (default: eval.npz beside the model); "
                 "'random' or 'random:N' for timing on synthetic data, with one sample's shape for "
                 "dynamic dims (random:32,state=2x1x128) or a scalar input's value (sr=16000)") -> None:
        self.sweep = sweep
        self.searched = searched
        self.precision = precision
        self.warmup = warmup
        self.repeats = repeats
        self.eval_help = eval_help

    def add_parser_args(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("build options")
        if self.sweep:
            group.add_argument("--precisions", type=comma_list, default=["fp32", "fp16", "int8"],
                               help=f"comma-separated, from {', '.join(PRECISIONS)} (default fp32,fp16,int8)")
            group.add_argument("--prune-methods", type=comma_list, default=[],
                               help=f"comma-separated, from {', '.join(PRUNE_METHODS)}")
            group.add_argument("--prune-ratios", type=comma_floats, default=[0.0],
                               help="comma-separated; 0 means unpruned")
            group.add_argument("--backends", type=comma_list, default=[], metavar="NAMES",
                               help="backends as a grid axis, e.g. onnxruntime-cpu,openvino; every run is also "
                               "timed against FP32 on the default backend, and the pick is the fastest (backend, "
                               "variant) by that baseline")
        else:
            if not self.searched:
                group.add_argument("--precision", default=self.precision, choices=PRECISIONS)
            group.add_argument("--prune-method", choices=PRUNE_METHODS,
                               help="; ".join(f"{name}: {effect}" for name, effect in PRUNE_EFFECTS.items())
                               .replace("%", "%%"))
            group.add_argument("--prune-ratio", type=float, default=0.0, help="fraction to remove, in [0, 1)")
        group.add_argument("--no-repair", action="store_true",
                           help="skip the no-training repair of a pruned model on calibration data")
        group.add_argument("--calib", help="calibration data: .npz, folder of .npy or images "
                           "(default: calib.npz beside the model, for int8 and pruning repair)")
        group.add_argument("--eval", help=self.eval_help)
        if not self.searched:
            self.add_variant_args(group)
        group.add_argument("--backend-option", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                           help="a backend setting, e.g. prefer_nhwc=1 for onnxruntime-cuda (repeatable)")
        group.add_argument("--batch", type=int, default=1)
        group.add_argument("--warmup", type=int, default=self.warmup,
                           help=f"untimed runs before timing (default {self.warmup})")
        group.add_argument("--repeats", type=int, default=self.repeats, help=f"timed runs (default {self.repeats})")
        add_task_options(group)

    @staticmethod
    def add_variant_args(group: argparse._ArgumentGroup) -> None:
        """The choices that shape the variant's file and where it runs: what ``workbench tune`` searches."""
        group.add_argument("--calib-method", default="minmax", choices=sorted(CALIBRATION_METHODS))
        group.add_argument("--per-tensor", action="store_true", help="INT8 scales per tensor instead of per channel")
        group.add_argument("--quant-option", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                           help="a static INT8 choice, the recipes `workbench tune` tries (repeatable): "
                           + quant_options_help())
        group.add_argument("--quantizer", default=DEFAULT_QUANTIZER, choices=QUANTIZERS,
                           help="who writes static INT8 files: onnxruntime (default) or nncf (Q/DQ ONNX; transformer "
                           "preset with SmoothQuant on attention models, fast bias correction), or openvino-native "
                           "(NNCF on OpenVINO's own model, stored as OpenVINO IR; --backend openvino only), or "
                           "openvino-accuracy-control (the same by NNCF's quantize_with_accuracy_control, the task "
                           "metric on the calibration data within the budget, at most 300 s)")
        group.add_argument("--backend", default=DEFAULT_BACKEND, metavar="NAME",
                           help=f"execution backend (default {DEFAULT_BACKEND}; `workbench backends` lists them "
                           "and says which work here)")
        group.add_argument("--exclude", action="append", default=[], metavar="NODE",
                           help="keep this node in FP32 (repeatable)")

    def parse(self, args: argparse.Namespace) -> BuildOptions:
        """The options the flags describe; for a sweep, the base every grid cell replaces."""
        single = {} if self.sweep else {"prune_method": args.prune_method, "prune_ratio": args.prune_ratio}
        if not self.sweep and not self.searched:
            single["precision"] = args.precision
        variant = {} if self.searched else {"backend": args.backend, "recipe": Recipe(
            quantizer=args.quantizer, calib_method=args.calib_method, per_channel=not args.per_tensor,
            exclude_nodes=tuple(args.exclude)).with_options(dict(args.quant_option))}
        return BuildOptions(
            **single,
            **variant,
            repair=not args.no_repair,
            calib=args.calib,
            eval=args.eval,
            backend_options=dict(args.backend_option),
            batch=args.batch,
            warmup=args.warmup,
            repeats=args.repeats,
            task=args.task,
            metric=args.metric,
            budget=self.budget(args),
            confidence=args.confidence,
        )

    def to_args(self, options: BuildOptions) -> list[str]:
        """The flags that ``parse`` turns back into ``options`` (a single build's group, not a sweep's).

        Only choices away from their defaults are written, except the precision, batch and backend, which
        a reader of the command wants to see."""
        recipe, default = options.recipe, Recipe()
        args = ["--precision", options.precision]
        if options.prune_method:
            args += ["--prune-method", options.prune_method, "--prune-ratio", repr(options.prune_ratio)]
        args += ["--no-repair"] if not options.repair else []
        args += _flag("--calib", options.calib) + _flag("--eval", options.eval)
        if recipe.calib_method != default.calib_method:
            args += ["--calib-method", recipe.calib_method]
        args += ["--per-tensor"] if not recipe.per_channel else []
        if recipe.quantizer != default.quantizer:
            args += ["--quantizer", recipe.quantizer]
        for name, value in recipe.options().items():
            args += ["--quant-option", f"{name}={_text(value)}"]
        for node in recipe.exclude_nodes:
            args += ["--exclude", node]
        args += ["--backend", options.backend]
        for key, value in options.backend_options.items():
            args += ["--backend-option", f"{key}={value}"]
        args += ["--batch", str(options.batch)]
        args += ["--warmup", str(options.warmup)] if options.warmup != self.warmup else []
        args += ["--repeats", str(options.repeats)] if options.repeats != self.repeats else []
        args += _flag("--task", options.task)
        args += _flag("--metric", metric_name(options.metric) if options.metric is not None else None)
        args += _flag("--budget", repr(options.budget) if options.budget is not None else None)
        args += ["--confidence", repr(options.confidence)] if options.confidence != CONFIDENCE else []
        return args

    def budget(self, args: argparse.Namespace) -> float | None:
        """The numeric budget; 'stable' is the search's to resolve (it measures FP32's stability first)."""
        if args.budget != "stable":
            return args.budget
        if not self.searched:
            raise WorkbenchError("--budget stable is set by tune, which measures FP32's stability first.",
                                 "Give a number here, or run workbench tune --budget stable.")
        return None

    @staticmethod
    def grid_axes(args: argparse.Namespace) -> tuple[Sequence[str], Sequence[str], Sequence[float]]:
        """A sweep's axes: precisions, pruning methods and ratios (``args.backends`` is the fourth)."""
        return args.precisions, args.prune_methods, args.prune_ratios
