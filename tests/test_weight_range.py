"""INT8 weights keep 7 bits exactly where the CPU's 8-bit products saturate, so static INT8 is not broken there."""

from __future__ import annotations

from pathlib import Path

from conftest import sample

from workbench.backends.cpu_features import cpu_flags, int8_products_saturate
from workbench.build_options import BuildOptions
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline


def test_only_an_x86_cpu_without_vnni_saturates() -> None:
    zen3 = frozenset({"sse4_1", "avx", "avx2", "fma"})
    assert int8_products_saturate(zen3)
    assert not int8_products_saturate(zen3 | {"avx512f", "avx512_vnni"})  # Zen 4, Ice Lake and later Xeons
    assert not int8_products_saturate(zen3 | {"avx_vnni"})  # Alder Lake laptops
    assert not int8_products_saturate(zen3 | {"amx_int8"})
    assert not int8_products_saturate(frozenset({"fp", "asimd", "asimddp"}))  # an Arm CPU's features
    assert not int8_products_saturate(frozenset())  # nothing known: 8 bits, as asked


def test_the_default_weights_keep_this_cpu_s_int8_accurate(tmp_path: Path) -> None:
    pipeline, model = Pipeline(tmp_path / "ws"), sample("digits_resnet")
    default = pipeline.run(model, BuildOptions("int8", repeats=1, warmup=0))
    assert default.drift["cosine_similarity"] > 0.99, default.notes
    eight = pipeline.run(model, BuildOptions("int8", repeats=1, warmup=0, recipe=Recipe(reduce_range=False)))
    seven_bit = [note for note in default.notes if "7-bit weights" in note]
    if int8_products_saturate(cpu_flags()):
        assert seven_bit and "this CPU has no VNNI" in seven_bit[0], default.notes
        assert eight.drift["cosine_similarity"] < 0.9  # what 8-bit weights do here: the products overflow
    else:
        # The same build (the run's settings differ, auto against 8 bits asked, so its folder does too).
        assert not seven_bit and Path(eight.artifact).read_bytes() == Path(default.artifact).read_bytes()
