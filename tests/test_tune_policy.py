"""The search policy against a scripted trial runner: no ONNX model, no engine, every outcome chosen here.

The end-to-end searches on real models are in test_tune.py; these pin down the policy's own decisions
(which recipe comes next, which nodes stay in FP32, when a search is skipped or stops) in well under a second.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial

import pytest

from workbench.runs.run import Run
from workbench.runs.spec import RunSpec
from workbench.tasks.base import TaskScore
from workbench.workflows import tune_policy
from workbench.workflows.tune import search_missed
from workbench.workflows.tune_batch import in_turn, side_by_side
from workbench.workflows.tune_policy import ALTERNATIVES, Search, refine, screen
from workbench.workflows.tune_trials import NamedRecipe, Trial

NODES = [f"n{i}" for i in range(16)]
BUDGET = 0.85
#: (recipe, every node kept in FP32) -> (speed-up, metric value)
Script = Callable[[NamedRecipe, frozenset], "tuple[float, float]"]


class ScriptedRunner:
    """A runner whose trials are what ``script`` says; one tick of a clock per trial built."""

    def __init__(self, script: Script, fragile: dict[str, list[str]] | None = None, budget_trials: int = 1000,
                 activation_fed: Sequence[str] = ()):
        self.script = script
        self._fragile = fragile or {}
        self._activation_fed = list(activation_fed)
        self.trials: list[Trial] = []
        self.notes: list[str] = []
        self.clock = 0
        self.budget_trials = budget_trials
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def out_of_time(self, until: float) -> bool:
        return self.clock >= until

    def time_left(self) -> float:
        return max(0.0, self.budget_trials - self.clock)

    def share_until(self, parts: int) -> float:
        return self.clock + self.time_left() / max(parts, 1)

    def screens(self, backend: str, precisions: Sequence[str] | None) -> list[str]:
        return list(precisions or ["int8"])

    def quantized_nodes(self, trial: Trial) -> list[str]:
        return list(NODES)

    def fragile(self, trial: Trial) -> dict[str, list[str]]:
        return self._fragile

    def activation_fed(self, trial: Trial) -> list[str]:
        return [name for name in self._activation_fed if name not in trial.kept_nodes]

    def add(self, trial: Trial) -> Trial:
        self.trials.append(trial)
        return trial

    def baseline(self, backend: str) -> Run | None:
        return None

    together = staticmethod(in_turn)

    def mixes_bf16(self, backend: str) -> bool:
        return backend == "openvino"  # as where OpenVINO runs BF16: the other backend compiles no mix

    def ranking_subset(self, trial: Trial) -> None:
        return None  # the scripted trials have no samples: the groups are ranked on their whole score

    def trial(self, backend: str, until: float, step: str, description: str, recipe: NamedRecipe,
              kept: Sequence[str] = (), subset: None = None) -> Trial | None:
        if self.out_of_time(until):
            self.notes.append("time budget reached")
            return None
        nodes = tuple(dict.fromkeys(recipe.recipe.exclude_nodes + tuple(kept)))
        self.asked.append((recipe.name, nodes))
        run = _run(recipe, nodes, *self.script(recipe, frozenset(nodes)), backend)
        known = next((t for t in self.trials if t.run.run_id == run.run_id), None)
        if known is not None:
            return known
        self.clock += 1
        return self.add(Trial(step, description, recipe, tuple(kept), run, 0.0))


def _run(recipe: NamedRecipe, nodes: tuple[str, ...], speedup: float, value: float, backend: str) -> Run:
    spec = RunSpec("m", "m", recipe.precision, backend=backend, exclude_nodes=nodes,
                   calib_method=recipe.recipe.calib_method, quantizer=recipe.recipe.quantizer,
                   per_channel=recipe.recipe.per_channel, quant_options=tuple(sorted(recipe.recipe.options().items())))
    score = TaskScore("classification", "top1_agreement", value, BUDGET, value >= BUDGET, f">= {BUDGET}")
    key = hashlib.sha256(repr((spec.artifact_key, backend, recipe.backend_options)).encode()).hexdigest()[:8]
    return Run(key, spec, "", "", {"median": 1.0 / speedup}, {"median": 1.0}, speedup, {"task": score.to_dict()})


def _search(runner: ScriptedRunner, until: float = 1000) -> Search:
    return Search(runner, "onnxruntime-cpu", until)


def _plain(runner: ScriptedRunner) -> Trial:
    trial = _search(runner).trial("recipe", "static INT8, MinMax, per-channel", NamedRecipe("default", "int8"))
    assert trial is not None and not trial.met
    return trial


def test_fragile_nodes_that_do_not_pay_go_back_to_int8() -> None:
    """Keeping the fragile n3 and n5 passes; only n3 is needed, so n5 is sent back."""
    runner = ScriptedRunner(lambda recipe, kept: (2.0 - 0.1 * len(kept), 0.9 if "n3" in kept else 0.5),
                            fragile={"fragile op types": ["n3", "n5"]})
    search = _search(runner)
    found = refine(search, _plain(runner))
    assert found is not None and found.met and found.kept_nodes == ["n3"]
    assert any("kept FP32: fragile op types (2)" in step for step in search.steps)
    assert any("with n5 back in INT8 the budget still holds" in step for step in search.steps)


def test_a_calibration_recipe_that_pays_ends_the_recipe_search() -> None:
    runner = ScriptedRunner(lambda recipe, kept: (1.5, 0.9 if recipe.recipe.calib_method == "percentile" else 0.5))
    found = refine(_search(runner), _plain(runner))
    assert found is not None and found.recipe.recipe.calib_method == "percentile"
    assert [name for name, _ in runner.asked] == ["default", "compute ops only", "percentile calibration"]


def test_side_by_side_the_ladder_reaches_the_pick_it_reaches_in_turn() -> None:
    """Over several nodes every calibration recipe starts at once; the answers are read in order, so the pick
    is the first that pays, as in turn, though the recipes after it ran too."""
    def script(recipe: NamedRecipe, kept: frozenset) -> tuple[float, float]:
        return 1.5, 0.9 if recipe.recipe.calib_method in ("percentile", "entropy") else 0.5

    picks = []
    for together in (in_turn, lambda jobs, enough=None: side_by_side(jobs, enough, width=4)):
        runner = ScriptedRunner(script)
        runner.together = together
        found = refine(_search(runner), _plain(runner))
        assert found is not None
        picks.append((found.recipe.name, [name for name, _ in runner.asked]))
    assert picks[0] == ("percentile calibration", ["default", "compute ops only", "percentile calibration"])
    assert picks[1][0] == "percentile calibration"


def test_side_by_side_runs_its_jobs_at_once_and_answers_in_their_order() -> None:
    """Three jobs that each wait for the other two finish only if they run at the same time."""
    meeting = threading.Barrier(3, timeout=30)

    def job(answer: int) -> int:
        meeting.wait()
        time.sleep(0.01 * (3 - answer))  # the last job ends first: the answers still come in the jobs' order
        return answer

    assert side_by_side([partial(job, i) for i in range(3)], None, width=3) == [0, 1, 2]
    assert in_turn([partial(int, i) for i in range(5)], enough=lambda answer: answer == 2) == [0, 1, 2]


def test_fall_back_keeps_only_the_nodes_that_are_needed() -> None:
    """n9 and n10 (in two different groups) are both needed: the groups are kept greedily, then halved."""
    def script(recipe: NamedRecipe, kept: frozenset) -> tuple[float, float]:
        value = 0.5 + 0.2 * ("n9" in kept) + 0.2 * ("n10" in kept)
        return 3.0 - 0.05 * len(kept), value if recipe.name == "default" else 0.4

    runner = ScriptedRunner(script)
    found = refine(_search(runner), _plain(runner))
    assert found is not None and found.met and sorted(found.kept_nodes) == ["n10", "n9"]
    ranked = [nodes for name, nodes in runner.asked if name == "default" and len(nodes) == 2]
    assert ranked[:8] == [tuple(NODES[i:i + 2]) for i in range(0, 16, 2)]  # eight contiguous groups


def test_fall_back_starts_from_no_recipe_slower_than_fp32() -> None:
    runner = ScriptedRunner(lambda recipe, kept: (1.02, 0.5))
    assert refine(_search(runner), _plain(runner)) is None
    assert any("node fall-back skipped" in note for note in runner.notes)
    assert not any(len(nodes) for _, nodes in runner.asked)


def test_a_search_out_of_time_stops_between_trials() -> None:
    runner = ScriptedRunner(lambda recipe, kept: (2.0, 0.5))
    plain = _plain(runner)
    assert refine(_search(runner, until=runner.clock + 2), plain) is None
    assert runner.clock == 3 and "time budget reached" in runner.notes


def test_the_screen_counts_a_faster_alternative_as_the_search_s_promise() -> None:
    runner = ScriptedRunner(lambda recipe, kept: (2.5 if recipe.recipe.ops == "compute" else 1.5, 0.5))
    ((plain, potential),) = screen(_search(runner), None)
    assert plain.recipe.name == "default" and potential == pytest.approx(2.5)
    assert ALTERNATIVES["int8"] == [tune_policy.compute_only]


def test_an_alternative_is_screened_even_where_the_plain_trial_passes_and_may_be_the_pick() -> None:
    """NNCF's placement on a detector passes but runs slower than its compute layers alone: the screen tries the
    compute-only variant all the same, and it is the fastest trial that pays; OpenVINO's own variant has one too."""
    runner = ScriptedRunner(lambda recipe, kept: (2.5 if recipe.recipe.ops == "compute" else 1.5, 0.95))
    assert screen(_search(runner), None) == []  # nothing missed: no recipe search
    assert [name for name, _ in runner.asked] == ["default", "compute ops only"]
    assert max((t for t in runner.trials if t.pays), key=lambda t: t.speedup).recipe.recipe.ops == "compute"
    native = tune_policy.compute_only(tune_policy.NATIVE_RECIPE)
    assert native.recipe.quantizer == tune_policy.NATIVE_RECIPE.recipe.quantizer and native.recipe.ops == "compute"
    assert native.name == "OpenVINO-native + compute ops only"
    assert ALTERNATIVES[tune_policy.NATIVE] == [tune_policy.compute_only]
    # each plain trial and its alternative, and the native one's repair (run only where the plain native trial misses)
    assert tune_policy.screen_size(["int8", tune_policy.NATIVE, "bf16"]) == 6


def test_a_search_that_cannot_beat_the_best_pass_is_skipped() -> None:
    runner = ScriptedRunner(lambda recipe, kept: (3.0, 0.9) if recipe.precision == "fp16" else (1.5, 0.5))
    best = _search(runner).trial("recipe", "FP16", NamedRecipe("fp16", "fp16"))
    assert best is not None and best.pays
    plain = _plain(runner)
    search_missed(runner, [(plain, 2.0)], [])
    assert any("not searched" in note and "3.00x found" in note for note in runner.notes)
    assert len(runner.trials) == 2


def test_the_fastest_pass_is_compiled_as_a_bf16_mix_only_where_the_backend_runs_one() -> None:
    """The fastest INT8 trial that meets the budget, with its kept nodes, is tried once more with int8_hint=bf16 (no
    new file); a slower pass, a backend without the mix, or a trial that already is a mix gets none."""
    def script(recipe: NamedRecipe, kept: frozenset) -> tuple[float, float]:
        mixed = recipe.backend_options == tune_policy.BF16_MIX
        return (2.6 if mixed else 2.0) if recipe.name.startswith("fast") else 1.5, 0.9
    runner = ScriptedRunner(script)
    assert tune_policy.mix_fastest_pass(partial(Search, runner, until=1000), runner) is None  # nothing passes yet
    on = {backend: Search(runner, backend, 1000) for backend in ("openvino", "onnxruntime-cpu")}
    on["onnxruntime-cpu"].trial("recipe", "static INT8, fast", NamedRecipe("fast", "int8"), ("n1",))
    assert tune_policy.mix_fastest_pass(partial(Search, runner, until=1000), runner) is None  # no mix on ORT
    on["openvino"].trial("recipe", "static INT8, slow", NamedRecipe("slow", "int8"))
    fast = on["openvino"].trial("recipe", "static INT8, fast", NamedRecipe("fast", "int8"), ("n1",))
    steps: list[str] = []
    mix = tune_policy.mix_fastest_pass(lambda backend: Search(runner, backend, 1000, steps), runner)
    assert mix is not None and mix.backend == "openvino" and mix.kept == fast.kept == ("n1",)
    assert mix.recipe.backend_options == tune_policy.BF16_MIX and mix.recipe.recipe == fast.recipe.recipe
    assert mix.speedup == pytest.approx(2.6) and "BF16 where not INT8" in steps[-1]
    asked = len(runner.asked)
    assert tune_policy.mix_fastest_pass(partial(Search, runner, until=1000), runner) is mix  # the same trial again
    assert len(runner.asked) == asked + 1 and len(runner.trials) == 4


def test_a_search_its_share_of_the_time_stopped_is_resumed_with_the_time_the_others_left() -> None:
    """Two INT8 searches share 28 trials: the first needs more than its 14 (its fall-back is cut after ranking, two
    groups are needed), the second ends after one; the first then resumes, finds its earlier trials again without
    building them, and meets the budget."""
    def script(recipe: NamedRecipe, kept: frozenset) -> tuple[float, float]:
        if recipe.precision == "int8-dynamic":
            return 1.02, 0.5  # too slow for a fall-back: its search ends after its one recipe
        return (3.0 if recipe.name == "default" else 2.9) - 0.01 * len(kept), 0.5 + 0.2 * len({"n3", "n9"} & kept)
    runner = ScriptedRunner(script, budget_trials=30)
    slow = Search(runner, "openvino", 1000).trial("recipe", "static INT8", NamedRecipe("default", "int8"))
    quick = Search(runner, "onnxruntime-cpu", 1000).trial("recipe", "dynamic INT8",
                                                          NamedRecipe("dynamic", "int8-dynamic"))
    search_missed(runner, [(slow, 3.0), (quick, 1.02)], [])
    order = [t.recipe.name for t in runner.trials]
    assert order.index("dynamic per-tensor") < [t.step for t in runner.trials].index("greedy")  # kept after the resume
    assert any("1 search(es) stopped by their share of the time budget resumed" in note for note in runner.notes)
    passed = [t for t in runner.trials if t.pays]
    assert passed and all({"n3", "n9"} <= set(t.kept_nodes) for t in passed) and runner.clock <= 30
    names = [name for name, _ in runner.asked]
    assert len(names) > len(runner.trials)  # the resumed search asked again for trials it had: none built twice


def test_a_native_variant_that_misses_keeps_its_ffn_outputs_first_and_sends_back_those_it_does_not_need() -> None:
    """A BERT-style encoder: OpenVINO's INT8 misses until the FFN outputs n3 and n7 stay in FP32 (n11 is one too, but
    harmless); one build finds it, n11 goes back to INT8, and NNCF's slower accuracy control is never run."""
    def script(recipe: NamedRecipe, kept: frozenset) -> tuple[float, float]:
        return 3.0 - 0.1 * len(kept), 0.9 if {"n3", "n7"} <= kept else 0.6
    runner = ScriptedRunner(script, activation_fed=["n3", "n7", "n11"])
    search = _search(runner)
    plain = search.trial("recipe", "static INT8, OpenVINO-native", tune_policy.NATIVE_RECIPE)
    assert plain is not None and not plain.met
    found = refine(search, plain)
    assert found is not None and found.met and found.kept_nodes == ["n3", "n7"]
    assert runner.asked[1] == ("OpenVINO-native + FFN outputs kept FP32", ("n3", "n7", "n11"))
    assert not any("accuracy control" in name for name, _ in runner.asked)
    assert any("the 3 matrix products an activation feeds" in step for step in search.steps)


def test_a_native_variant_without_ffn_outputs_goes_to_the_accuracy_control() -> None:
    runner = ScriptedRunner(lambda recipe, kept: (3.0, 0.9 if "accuracy control" in recipe.name else 0.6))
    search = _search(runner)
    plain = search.trial("recipe", "static INT8, OpenVINO-native", tune_policy.NATIVE_RECIPE)
    found = refine(search, plain)
    assert found is not None and found.recipe.name == tune_policy.NATIVE_AC_RECIPE.name
    assert [name for name, _ in runner.asked] == [tune_policy.NATIVE_RECIPE.name, tune_policy.NATIVE_AC_RECIPE.name]


def test_the_screen_repairs_a_native_variant_that_misses_before_its_alternatives() -> None:
    """A large model's budget admits a handful of trials: the likeliest pass comes right after the plain miss."""
    runner = ScriptedRunner(lambda recipe, kept: (3.0 - 0.1 * len(kept), 0.9 if "n3" in kept else 0.6),
                            activation_fed=["n3"])
    missed = screen(_search(runner), [tune_policy.NATIVE])
    assert [name for name, _ in runner.asked] == [
        tune_policy.NATIVE_RECIPE.name, "OpenVINO-native + FFN outputs kept FP32", "OpenVINO-native + compute ops only"]
    assert runner.trials[1].pays and [plain for plain, _ in missed] == [runner.trials[0]]


def test_where_the_hardware_runs_bf16_the_ffn_outputs_are_kept_in_bf16() -> None:
    """In FP32 the kept products cost more than INT8 saves elsewhere: the repair compiles as the BF16+INT8 mix."""
    runner = ScriptedRunner(lambda recipe, kept: (3.0, 0.9 if "n3" in kept else 0.6), activation_fed=["n3"])
    search = Search(runner, "openvino", 1000)
    plain = search.trial("recipe", "static INT8, OpenVINO-native", tune_policy.NATIVE_RECIPE)
    repaired = tune_policy.activation_fed_trial(search, plain)
    assert repaired is not None and repaired.recipe.name == "OpenVINO-native + FFN outputs kept BF16"
    assert repaired.recipe.backend_options == tune_policy.BF16_MIX and repaired.kept_nodes == ["n3"]
