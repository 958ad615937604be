"""The tuning search's policy: which trial to run next, as functions over a trial runner.

Nothing here builds or times a model: every trial is asked of a ``Runner`` (in ``tune`` the
``TrialRunner``; in the policy's tests a scripted one), and each function gets the state it reads
(the ``Search``: runner, backend, deadline, the log of steps) and returns what it found. The steps:
the **screen** (``SCREEN``: per screen key, a precision or the backend's own quantizer, the plain recipes,
the first that builds; ``ALTERNATIVES``: cheap variants whose speed-up also counts as the search's promise),
the **recipes** (``RECIPES``: per screen key, the search run from a plain trial that missed), then **node
fall-back** from the closest recipe: groups ranked on the samples it errs most on (``tune_ranking``), kept
greedily, then halving. A new screen candidate is
one entry in ``SCREEN`` (and the runner's ``screens`` naming its key); a new recipe search one entry in
``RECIPES``; a step after the pick (a confirmation) a function over the trials in ``tune``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from workbench.precision.quantizers import NATIVE_LABEL
from workbench.recipe import Recipe
from workbench.runs.run import Run
from workbench.vocabulary import NATIVE_AC_QUANTIZER, NATIVE_QUANTIZER, NATIVE_QUANTIZERS, WEIGHT_PRECISIONS
from workbench.workflows.tune_batch import T
from workbench.workflows.tune_ranking import RankingSubset
from workbench.workflows.tune_trials import NamedRecipe, Trial
from workbench.workflows.tune_weights import kept_precision, weight_recipes

#: Candidates are first measured in this many contiguous groups.
GROUPS = 8
#: Calibration methods tried after MinMax, in this order.
CALIBRATION_METHODS = ("percentile", "entropy")
#: An INT8 search is worth its time only where its screened variants are this much faster than the best
#: passing variant already found: recipes and fall-back keep or lose speed, they rarely add it.
PROMISE = 1.05


class Runner(Protocol):
    """What the policy asks of whoever runs its trials."""

    trials: list[Trial]
    notes: list[str]

    def trial(self, backend: str, until: float, step: str, description: str, recipe: NamedRecipe,
              kept: Sequence[str] = (), subset: RankingSubset | None = None) -> Trial | None: ...
    def ranking_subset(self, trial: Trial) -> RankingSubset | None: ...
    def baseline(self, backend: str) -> Run | None: ...
    def add(self, trial: Trial) -> Trial: ...
    def out_of_time(self, until: float) -> bool: ...
    def screens(self, backend: str, precisions: Sequence[str] | None) -> list[str]: ...
    def quantized_nodes(self, trial: Trial) -> list[str]: ...
    def fragile(self, trial: Trial) -> dict[str, list[str]]: ...
    def activation_fed(self, trial: Trial) -> list[str]: ...
    def mixes_bf16(self, backend: str) -> bool: ...
    def together(self, jobs: Sequence[Callable[[], T]], enough: Callable[[T], bool] | None = None) -> list[T]: ...


@dataclass(frozen=True)
class Search:
    """One search: the runner, the backend it runs on, its deadline, and the log of what each step bought."""

    runner: Runner
    backend: str
    until: float
    steps: list[str] = field(default_factory=list)

    def trial(self, step: str, description: str, recipe: NamedRecipe, kept: Sequence[str] = (),
              subset: RankingSubset | None = None) -> Trial | None:
        return self.runner.trial(self.backend, self.until, step, description, recipe, kept, subset)

    def out_of_time(self) -> bool:
        return self.runner.out_of_time(self.until)

    def together(self, jobs: Sequence[Callable[[], T]], enough: Callable[[T], bool] | None = None) -> list[T]:
        """Independent jobs (``tune_batch``): on one machine in turn, stopping after the first ``enough``
        answer; over several nodes of a class side by side. The answers come back in the jobs' order."""
        return self.runner.together(jobs, enough)

    def note(self, text: str) -> None:
        self.runner.notes.append(text)

    def bought(self, before: Trial, after: Trial, what: str) -> None:
        """Log what a step bought, once (a resumed search finds its earlier steps again)."""
        step = (f"{what}: {after.score.metric} {before.score.value:.4f} -> {after.score.value:.4f}, "
                f"speed {before.speedup:.2f}x -> {after.speedup:.2f}x ({after.backend})")
        if step not in self.steps:
            self.steps.append(step)


# -- recipes as data -------------------------------------------------------------------------------------
def compute_only(recipe: NamedRecipe) -> NamedRecipe:
    """``recipe`` with only convolutions and matrix products quantized (fewer Q/DQ pairs: often faster too)."""
    return recipe.derive("compute ops only", ops="compute")  # named after the recipe: "OpenVINO-native + ..."


def _kind(recipe: NamedRecipe) -> str:
    return {"int8-dynamic": "dynamic INT8", "int8": "static INT8"}.get(recipe.precision, recipe.precision)


#: The screen key of OpenVINO's own quantizer on its own model (``Backend.native_int8``).
NATIVE = "int8-native"
#: NNCF on OpenVINO's own model, stored as OpenVINO IR: screened on the OpenVINO backends beside the portable file.
NATIVE_RECIPE = NamedRecipe(NATIVE_LABEL, "int8", Recipe(quantizer=NATIVE_QUANTIZER))
#: The screen key of the native variant compiled with the BF16 hint: the layers it keeps out of INT8 run in BF16.
NATIVE_BF16 = "int8-native-bf16"
#: The backend options of the BF16+INT8 mix (``--backend-option int8_hint=bf16``): an INT8 file's other layers in BF16.
BF16_MIX = (("int8_hint", "bf16"),)
#: The BF16+INT8 mix of the native IR: the same IR, so no second build, only its timing.
NATIVE_BF16_RECIPE = NamedRecipe(f"{NATIVE_LABEL} + BF16 mix", "int8", Recipe(quantizer=NATIVE_QUANTIZER), BF16_MIX)
#: NNCF's accuracy-aware quantization of the same model (time-capped): tried when the native variant misses.
NATIVE_AC_RECIPE = NamedRecipe(f"{NATIVE_LABEL} accuracy control", "int8", Recipe(quantizer=NATIVE_AC_QUANTIZER))


def search_key(recipe: NamedRecipe) -> str:
    """Which screen entry and recipe search a plain recipe belongs to: its precision, or the native variant."""
    return NATIVE if recipe.recipe.quantizer in NATIVE_QUANTIZERS else recipe.precision


#: Per screen key (a precision, or ``NATIVE``), the plain recipes of the screen: the first that builds is the
#: plain trial (a static recipe that cannot be built per channel, e.g. at an old opset, starts per tensor).
SCREEN: dict[str, list[tuple[str, NamedRecipe]]] = {
    "int8": [("static INT8, MinMax, per-channel", NamedRecipe("default", "int8")),
             ("static INT8, MinMax, per-tensor", NamedRecipe("per-tensor", "int8", Recipe(per_channel=False)))],
    "int8-dynamic": [("dynamic INT8, per-channel", NamedRecipe("dynamic", "int8-dynamic"))],
    NATIVE: [(f"static INT8, {NATIVE_LABEL} (NNCF on OpenVINO's model)", NATIVE_RECIPE)],
    NATIVE_BF16: [(f"static INT8, {NATIVE_LABEL}, BF16 where not INT8 (int8_hint=bf16)", NATIVE_BF16_RECIPE)],
    **{precision: [(f"{precision}, round-to-nearest", NamedRecipe("RTN", precision))]
       for precision in WEIGHT_PRECISIONS},
}
#: Per screen key, variants of the plain trial screened beside it, whether the plain trial passes or not: a
#: faster one that passes may be the pick (NNCF's placement on a detector, a FakeQuantize before every add and
#: concatenation, runs slower than the compute layers alone), a faster one that misses raises the promise.
ALTERNATIVES: dict[str, list[Callable[[NamedRecipe], NamedRecipe]]] = {"int8": [compute_only], NATIVE: [compute_only]}


def screen_size(keys: Sequence[str]) -> int:
    """How many trials the screen of ``keys`` runs at most: each plain trial, its repair and its alternatives."""
    return sum(1 + (key in REPAIRS) + len(ALTERNATIVES.get(key, [])) for key in keys)


def calibration_recipes(default: NamedRecipe) -> list[tuple[str, NamedRecipe]]:
    """What static INT8 tries after its fragile nodes: only the compute layers quantized (a detector's output
    that concatenates pixel boxes with [0, 1] scores, a transformer's residual adds then keep their own
    precision), other calibrations, and NNCF last (it collects its own statistics, no cached ranges)."""
    recipes = [("only convolutions and matrix products quantized", compute_only(default))]
    recipes += [(f"{method} calibration instead of MinMax",
                 default.derive(f"{method} calibration", calib_method=method)) for method in CALIBRATION_METHODS]
    recipes.append(("NNCF's quantizer instead of ONNX Runtime's", default.derive("NNCF", quantizer="nncf")))
    return recipes


def scale_recipes(best: NamedRecipe) -> list[tuple[str, NamedRecipe]]:
    """The best ONNX Runtime calibration's scales changed: per tensor, S8 symmetric activations."""
    return [("per-tensor scales", best.derive("per-tensor", per_channel=False)),
            ("S8 symmetric activations", best.derive("S8 symmetric", activations="s8", symmetric=True))]


# -- screen ----------------------------------------------------------------------------------------------
def best_speedup(trials: Sequence[Trial]) -> float:
    """The fastest passing trial's speed-up so far; 0 while none passes (any search may still find one)."""
    return max([t.speedup for t in trials if t.pays], default=0.0)


def plain_trial(search: Search, key: str) -> Trial | None:
    for description, recipe in SCREEN.get(key, [(key.upper(), NamedRecipe(key, key))]):
        trial = search.trial("recipe", description, recipe)
        if trial is not None or search.out_of_time():
            return trial
    return None


def screen(search: Search, precisions: Sequence[str] | None) -> list[tuple[Trial, float]]:
    """One plain trial per precision the backend may speed up (and its own quantizer, where it has one);
    returns the trials that miss and have a recipe search, each with the best speed-up its search may start
    from (its own, or a screened alternative's). The screen keys are independent: they run together."""
    keys = search.runner.screens(search.backend, precisions)
    found = search.together([partial(screen_key, search, key) for key in keys])
    return [item for item in found if item is not None]


def screen_key(search: Search, key: str) -> tuple[Trial, float] | None:
    """One screen key's plain trial and alternatives; the plain trial and its promise where it misses."""
    plain = plain_trial(search, key)
    if plain is None:
        return None
    potential = plain.speedup
    if key in REPAIRS and not plain.met:
        REPAIRS[key](search, plain)
    for alternative in ALTERNATIVES.get(key, []):
        recipe = alternative(plain.recipe)
        trial = search.trial("recipe", f"{_kind(recipe)}, {recipe.name}", recipe)
        if trial is not None and not trial.pays:
            potential = max(potential, trial.speedup)
    if plain.pays or key not in RECIPES:
        return None
    return plain, potential


# -- recipe searches -------------------------------------------------------------------------------------
def first_that_pays(search: Search, recipes: Sequence[tuple[str, NamedRecipe]], plain: Trial,
                    tried: list[Trial]) -> Trial | None:
    """Try ``recipes`` in order (together: they are independent); the first that meets the budget faster than
    FP32 ends the recipe search."""
    jobs = [partial(search.trial, "recipe", f"{_kind(recipe)}, {recipe.name}", recipe) for _, recipe in recipes]
    answers = search.together(jobs, enough=lambda trial: trial is not None and trial.pays)
    for (what, _), trial in zip(recipes, answers, strict=False):
        if trial is not None:
            tried.append(trial)
            if trial.pays:
                search.bought(plain, trial, what)
                return trial
    return None


def fragile_recipe(search: Search, base: Trial, plain: Trial, tried: list[Trial]) -> Trial | None:
    """``base``'s recipe with the fragile nodes kept in FP32; when it passes, those that do not pay go back."""
    chosen = search.runner.fragile(base)
    if not chosen:
        return None
    reasons = "; ".join(f"{reason} ({len(hit)})" for reason, hit in chosen.items())
    nodes = tuple(dict.fromkeys(n for hit in chosen.values() for n in hit))
    recipe = base.recipe.derive("fragile kept FP32", exclude_nodes=nodes)
    trial = search.trial("recipe", f"static INT8, {recipe.name}", recipe)
    if trial is None:
        return None
    tried.append(trial)
    if not trial.met:
        return None
    search.bought(plain, trial, f"kept FP32: {reasons}")
    return send_back(search, base.recipe, (), nodes, nodes, trial, try_whole=False)[0]


def static_recipes(search: Search, plain: Trial, tried: list[Trial]) -> Trial | None:
    """Recipes from the plain static INT8 trial on, until one meets the budget (every try joins ``tried``)."""
    # The fragile nodes first: the likeliest pass (a detector's head, a transformer's Softmax/LayerNorm).
    passed = fragile_recipe(search, plain, plain, tried) or first_that_pays(
        search, calibration_recipes(plain.recipe), plain, tried)
    if passed is not None:
        return passed
    # NNCF picks its own scales: the variants below are ONNX Runtime's, on its best calibration.
    best = max([t for t in tried if t.recipe.recipe.quantizer != "nncf"], key=Trial.rank_key)
    if best is not plain:
        passed = fragile_recipe(search, best, plain, tried)
        if passed is not None:
            return passed
    return first_that_pays(search, scale_recipes(best.recipe), plain, tried)


def dynamic_recipes(search: Search, plain: Trial, tried: list[Trial]) -> Trial | None:
    recipe = NamedRecipe("dynamic per-tensor", "int8-dynamic", Recipe(per_channel=False))
    return first_that_pays(search, [("per-tensor weight scales", recipe)], plain, tried)


def activation_fed_trial(search: Search, native: Trial) -> Trial | None:
    """The native variant with the matrix products a smooth activation feeds kept out of INT8 (a transformer's FFN
    outputs, ``tune_graph.activation_fed_products``): one build, where the node fall-back's contiguous groups would
    each hold a layer or two of them and NNCF's accuracy control may run out of time; None where the model has none.
    Where the hardware runs BF16 the kept products run in BF16 (the BF16+INT8 mix): in FP32 they would cost more than
    INT8 saves elsewhere (a BERT-base encoder on AVX-512 BF16: 261 ms per batch of 8 in FP32, about 165 in BF16)."""
    nodes = tuple(search.runner.activation_fed(native))
    if not nodes:
        return None
    recipe = ffn_kept(search, native)
    trial = search.trial("recipe", f"static INT8, {recipe.name}", recipe, native.kept + nodes)
    if trial is not None and trial.met:
        search.bought(native, trial, f"kept out of INT8: the {len(nodes)} matrix products an activation feeds "
                                     "(FFN outputs)")
    return trial


def ffn_kept(search: Search, native: Trial) -> NamedRecipe:
    """The native recipe whose kept nodes are a transformer's FFN outputs, in BF16 where the hardware runs it."""
    mixed = search.runner.mixes_bf16(search.backend)
    options = BF16_MIX if mixed else native.recipe.backend_options
    return NamedRecipe(f"{NATIVE_LABEL} + FFN outputs kept {'BF16' if mixed else 'FP32'}", "int8",
                       native.recipe.recipe, options)


def activation_fed_recipe(search: Search, native: Trial, tried: list[Trial]) -> Trial | None:
    """``activation_fed_trial`` (found again at once where the screen ran it); when it meets the budget, the halves
    of its kept products that do not need to stay out of INT8 go back while time is left."""
    trial = activation_fed_trial(search, native)
    if trial is None:
        return None
    tried.append(trial)
    if not trial.met:
        return None
    nodes = tuple(n for n in trial.kept if n not in native.kept)
    return send_back(search, trial.recipe, native.kept, nodes, nodes, trial, try_whole=False)[0]


def native_recipes(search: Search, native: Trial, tried: list[Trial]) -> Trial | None:
    """NNCF chose the native variant's recipe: first its FFN outputs kept out of INT8 (``activation_fed_recipe``), then
    NNCF's own accuracy control (judged by the task, capped in time); where both miss or are slower, only the
    workbench's node fall-back on the native variant is left."""
    kept = activation_fed_recipe(search, native, tried)
    if kept is not None and kept.pays:
        return kept
    control = search.trial("recipe", f"static INT8, {NATIVE_AC_RECIPE.name}", NATIVE_AC_RECIPE)
    if control is not None and control.pays:
        search.bought(native, control, "NNCF's accuracy control on OpenVINO's model")
        if control.speedup >= native.speedup / PROMISE:
            return control  # the fall-back could only slow the native variant to about the same speed
    return None


def weight_only_recipes(search: Search, plain: Trial, tried: list[Trial]) -> Trial | None:
    """A weight-only trial that does not pay: int8 compute, mixed 4/8 bits, AWQ (``tune_weights``); AWQ without
    real calibration data is refused by the build and noted."""
    return first_that_pays(search, weight_recipes(plain), plain, tried)


#: Per screen key, a repair screened right after a plain trial that misses, before its alternatives: the one build
#: likeliest to pass (OpenVINO's own INT8 with a transformer's FFN outputs kept out of it), so that a large model, whose
#: budget admits a handful of trials, reaches it before the weaker screens.
REPAIRS: dict[str, Callable[[Search, Trial], Trial | None]] = {NATIVE: activation_fed_trial}

#: Per screen key, the recipe search run from its plain trial when that misses the budget.
RECIPES: dict[str, Callable[[Search, Trial, list[Trial]], Trial | None]] = {
    "int8": static_recipes, "int8-dynamic": dynamic_recipes, NATIVE: native_recipes,
    **dict.fromkeys(WEIGHT_PRECISIONS, weight_only_recipes)}


def refine(search: Search, plain: Trial) -> Trial | None:
    """Recipes, then node fall-back, from a plain trial that missed; the trial that ended the search, if any."""
    tried = [plain]
    passed = RECIPES[search_key(plain.recipe)](search, plain, tried)
    if passed is not None or search.out_of_time():
        return passed
    # Fall-back only slows a variant down: it starts from the closest recipe that still has speed to give.
    floor = max(1.0, best_speedup(search.runner.trials)) * PROMISE
    starts = [t for t in tried if not t.met and t.speedup > floor]
    if not starts:
        search.note(f"{plain.description} on {plain.backend}: node fall-back skipped, no recipe that "
                    f"misses runs faster than {floor:.2f}x (FP32 or the best pass, and 5%)")
        return None
    return fall_back(search, max(starts, key=Trial.rank_key))


# -- the BF16+INT8 mix of the fastest pass ---------------------------------------------------------------
def bf16_mix(search: Search, best: Trial) -> Trial | None:
    """``best`` (an INT8 file that meets the budget) compiled with ``int8_hint=bf16``: the same file, so no build,
    only a timing and a verdict; the layers it keeps out of INT8 (a compute-only file's adds, concatenations and
    resizes, the nodes the fall-back kept) run in BF16 on the matrix units instead of FP32."""
    recipe = NamedRecipe(f"{best.recipe.name} + BF16 mix", "int8", best.recipe.recipe, BF16_MIX)
    trial = search.trial("recipe", f"{best.description}, BF16 where not INT8 (int8_hint=bf16)", recipe, best.kept)
    if trial is not None and trial.pays and trial.speedup > best.speedup:
        search.bought(best, trial, "BF16 where not INT8 (int8_hint=bf16)")
    return trial


def mix_fastest_pass(search_on: Callable[[str], Search], runner: Runner) -> Trial | None:
    """The BF16+INT8 mix (``bf16_mix``) of the fastest INT8 trial that meets the budget on a backend that runs the
    mix; None where there is none (or it already is a mix)."""
    passing = [t for t in runner.trials if t.pays and t.recipe.precision == "int8" and not t.recipe.backend_options
               and runner.mixes_bf16(t.backend)]
    if not passing:
        return None
    best = max(passing, key=lambda t: t.speedup)
    return bf16_mix(search_on(best.backend), best)


# -- node fall-back --------------------------------------------------------------------------------------
def label_nodes(nodes: Sequence[str]) -> str:
    return nodes[0] if len(nodes) == 1 else f"{len(nodes)} nodes {nodes[0]} .. {nodes[-1]}"


def rank_groups(search: Search, start: Trial) -> list[tuple[tuple[str, ...], Trial]] | None:
    """Each contiguous group of ``start``'s quantized nodes kept in FP32 alone, the helpful ones best first;
    None when time ran out before every group was measured. Where the runner finds one (``tune_ranking``), the
    groups are measured on the search samples where ``start`` errs most, as NNCF's accuracy restorer ranks: those
    trials only order the groups, whatever is kept is judged on the whole search part (``fall_back``)."""
    kept_in = kept_precision(start)
    candidates = [n for n in search.runner.quantized_nodes(start) if n not in start.kept_nodes]
    if not candidates:
        search.note(f"{start.recipe.name}: no quantized node left to keep in {kept_in}")
        return []
    size = -(-len(candidates) // min(GROUPS, len(candidates)))
    groups = [tuple(candidates[i:i + size]) for i in range(0, len(candidates), size)]
    subset = search.runner.ranking_subset(start)
    on = "" if subset is None else f", on {len(subset)} largest-error samples"
    # Each group is measured alone, so they run together; the ranking stops at the first not measured.
    answers = search.together([partial(search.trial, "rank", f"{start.recipe.name}: keep {label_nodes(group)} in "
                                       f"{kept_in}{on}", start.recipe, start.kept + group, subset) for group in groups],
                              enough=lambda trial: trial is None)
    measured = [(group, trial) for group, trial in zip(groups, answers, strict=False) if trial is not None]
    if search.out_of_time():
        return None
    if subset is not None:
        search.note(f"{start.recipe.name}: ranked {len(measured)} groups on {subset.text()}")
    before = start.score if subset is None else subset.start  # the groups improve on the samples they were judged on
    helpful = [(g, t) for g, t in measured if t.score.value > before.value]
    if not helpful:
        search.note(f"{start.recipe.name}: no group of quantized nodes kept in {kept_in} improved {before.metric}")
    return sorted(helpful, key=lambda item: item[1].rank_key(), reverse=True)


def fall_back(search: Search, start: Trial) -> Trial | None:
    """Keep the fewest quantized nodes in FP32 that bring ``start`` within the budget."""
    kept_in = kept_precision(start)
    helpful = rank_groups(search, start)
    if not helpful:
        return None
    kept_groups: list[tuple[str, ...]] = []
    current = start
    for group, alone in helpful:
        kept_groups.append(group)
        nodes = tuple(n for g in kept_groups for n in g)
        # A group ranked on the subset is measured again on the whole search part: only such a trial is a verdict.
        trial = alone if len(kept_groups) == 1 and alone.ranked_on is None else search.trial(
            "greedy", f"{start.recipe.name}: keep {len(nodes)} nodes in {kept_in}", start.recipe, start.kept + nodes)
        if trial is None:
            return None
        search.bought(current, trial, f"kept {label_nodes(group)} in {kept_in}")
        current = trial
        if trial.met:
            break
        if trial.speedup <= max(1.0, best_speedup(search.runner.trials)):
            search.note(f"{start.recipe.name}: stopped keeping groups in {kept_in} at {trial.speedup:.2f}x, "
                        "no faster than FP32 or the best pass")
            return trial
    if not current.met:
        search.note(f"{start.recipe.name}: even with every helpful group in {kept_in} the budget is missed")
        return current
    kept = tuple(n for g in kept_groups for n in g)
    for index, group in enumerate(reversed(kept_groups)):
        # The group that alone did most is needed as a whole; only its halves can go back.
        whole = index < len(kept_groups) - 1
        current, kept = send_back(search, start.recipe, start.kept, kept, group, current, try_whole=whole)
    return current


def send_back(search: Search, recipe: NamedRecipe, base_kept: tuple[str, ...], kept: tuple[str, ...],
              part: tuple[str, ...], current: Trial, try_whole: bool = True) -> tuple[Trial, tuple[str, ...]]:
    """Send ``part`` (or, failing that, each half of it) back to INT8 while the budget still holds; returns
    the trial reached and the nodes still kept."""
    if not part or search.out_of_time():
        return current, kept
    if try_whole:
        remaining = tuple(n for n in kept if n not in part)
        trial = search.trial("check", f"{recipe.name}: does {label_nodes(part)} still pay?", recipe,
                             base_kept + remaining)
        if trial is not None and trial.met:
            search.bought(current, trial, f"with {label_nodes(part)} back in INT8 the budget still holds")
            return trial, remaining
        if len(part) == 1:
            return current, kept
    half = len(part) // 2
    current, kept = send_back(search, recipe, base_kept, kept, part[:half], current)
    return send_back(search, recipe, base_kept, kept, part[half:], current)
