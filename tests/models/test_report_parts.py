"""The report's parts: statistics against scipy's own tests, cache, run plan, init, reconstructions."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from models.errors import DataError
from models.experiment import Prepared
from models.modes import Mode, SemiConfig
from models.nets import CNNConfig, MLPConfig, build_classifier
from models.pretraining import Method, PretrainConfig, pretrain
from models.report import semi
from models.report.budgets import BUDGETS, Budget
from models.report.cache import RunCache
from models.report.plan import CACHE_FORMAT, RunSpec, experiment, plan, run_key, studies_of
from models.report.stats import paired_test, t_interval
from models.report.sweep import is_showcase, naive_init, reconstruct
from models.report.transfer import Panel, settings
from models.training import FinetuneConfig


def test_t_interval_matches_scipy() -> None:
    values = [0.81, 0.84, 0.79, 0.88, 0.83]
    low, high = stats.t.interval(
        0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values)
    )
    got = t_interval(values)
    assert got.mean == pytest.approx(np.mean(values))
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))
    assert got.n == 5


def test_paired_test_matches_scipy_ttest_rel() -> None:
    treated = [0.91, 0.88, 0.93, 0.90]
    control = [0.85, 0.86, 0.88, 0.87]
    expected = stats.ttest_rel(treated, control)
    got = paired_test(treated, control)
    assert got.t == pytest.approx(expected.statistic)
    assert got.p == pytest.approx(expected.pvalue)
    assert got.diff.mean == pytest.approx(0.04)
    assert got.diff.excludes_zero() == (expected.pvalue < 0.05)


def test_a_gain_whose_interval_straddles_zero_is_not_significant() -> None:
    got = paired_test([0.9, 0.8, 0.85], [0.85, 0.86, 0.84])
    assert not got.diff.excludes_zero()
    assert got.p > 0.05


def test_degenerate_inputs() -> None:
    single = t_interval([0.5])
    assert math.isnan(single.low)
    assert math.isnan(single.high)
    same = paired_test([0.5, 0.6], [0.5, 0.6])
    assert (same.t, same.p) == (0.0, 1.0)
    shifted = paired_test([0.6, 0.7], [0.5, 0.6])
    assert shifted.p == 0.0
    assert shifted.diff.excludes_zero()
    with pytest.raises(ValueError, match="3 treated values but 2"):
        paired_test([1.0, 2.0, 3.0], [1.0, 2.0])


def test_cache_round_trips_numbers_and_arrays_without_pickle(tmp_path: Path) -> None:
    cache = RunCache(tmp_path / "cache")
    assert cache.get("abc") is None
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    cache.put("abc", {"test_accuracy": 0.5}, arrays)
    assert cache.get("abc") == {"test_accuracy": 0.5}
    np.testing.assert_array_equal(cache.arrays("abc")["w"], arrays["w"])
    assert cache.arrays("missing") == {}
    with pytest.raises(ValueError, match="pickle"):
        cache.put("obj", {"x": 1}, {"bad": np.array([{"a": 1}], dtype=object)})
    assert cache.get("obj") is None, "a run whose arrays failed must not look finished"
    assert not list((tmp_path / "cache").glob(".*")), "no temporary files left behind"


def test_a_corrupt_cached_run_names_its_file(tmp_path: Path) -> None:
    cache = RunCache(tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json: unreadable cached run"):
        cache.get("bad")


def test_plan_pairs_every_run_and_groups_each_pre_training() -> None:
    budget = BUDGETS["quick"]
    specs = plan(budget, seeds=3, all_labels=350)
    assert len(specs) == len(set(specs))
    assert all(s.baseline() in set(specs) for s in specs)
    assert {s.labels_per_class for s in specs} == {10, 30, 100, 350}
    # Runs sharing one pre-trained encoder are consecutive, so it is trained once.
    groups = [(s.arch, s.depth, s.method, s.seed) for s in specs]
    seen: list[tuple[str, int, str, int]] = []
    for group in groups:
        if not seen or seen[-1] != group:
            assert group not in seen
            seen.append(group)
    for spec in specs:
        assert studies_of(spec, budget, 350), f"{spec.name} belongs to no study"


def test_run_keys_follow_what_shapes_a_run() -> None:
    budget = BUDGETS["quick"]
    spec = RunSpec("mlp", 2, "rbm", 0, "adam", 10)

    def key(s: RunSpec, b: Budget = budget) -> str:
        return run_key(experiment(s, b, "mnist-5k", 0))

    assert key(spec) == key(spec)
    assert key(spec) != key(RunSpec("mlp", 2, "rbm", 0, "adam", 30))
    assert key(spec) != key(RunSpec("mlp", 2, "rbm", 1, "adam", 10))
    longer = dataclasses.replace(budget, pretrain_epochs=9)
    assert key(spec) != key(spec, longer)
    # A baseline does not depend on the pre-training budget it never uses.
    assert key(spec.baseline()) == key(spec.baseline(), longer)


def test_naive_init_redraws_only_what_pre_training_did_not_fill(prepared: Prepared) -> None:
    model = build_classifier(MLPConfig(hidden=(32, 16)), prepared.data.shape, 10)
    hidden = [layer.weight.detach().clone() for layer in model.linear_layers()]
    naive_init(model, head_only=True, seed=3)
    for layer, before in zip(model.linear_layers(), hidden, strict=True):
        assert torch.equal(layer.weight, before)
    bound = 1 / math.sqrt(16)
    assert float(model.head.weight.detach().abs().max()) <= bound
    assert float(model.head.weight.detach().abs().max()) > 0.5 * bound
    naive_init(model, head_only=False, seed=3)
    assert float(model.layers[0].weight.detach().abs().max()) <= 1 / math.sqrt(64)
    again = build_classifier(MLPConfig(hidden=(32, 16)), prepared.data.shape, 10)
    naive_init(again, head_only=False, seed=3)
    assert torch.equal(again.head.weight, model.head.weight), "seeded, so resumable"


@pytest.mark.parametrize(
    ("config", "method"),
    [
        (MLPConfig(hidden=(32, 16)), "dae"),
        (MLPConfig(hidden=(32, 16)), "rbm"),
        (CNNConfig(channels=(4, 8), dense=16), "cae"),
    ],
)
def test_reconstructions_are_images_of_the_test_classes(
    prepared: Prepared, config: MLPConfig | CNNConfig, method: Method
) -> None:
    model = build_classifier(config, prepared.data.shape, 10)
    generator = torch.Generator().manual_seed(0)
    report = pretrain(model, prepared.pool_images(), method, PretrainConfig(epochs=1), generator)
    originals, recon = reconstruct(model, report.decoders, prepared)
    assert originals.shape == recon.shape == (10, *prepared.data.shape)
    assert float(recon.min()) >= 0.0
    assert float(recon.max()) <= 1.0
    test_images, test_labels = prepared.test()
    shown = [
        int(np.flatnonzero((test_images.numpy() == o).all(axis=(1, 2, 3)))[0]) for o in originals
    ]
    assert sorted(test_labels[shown].tolist()) == list(range(10)), "one test image per class"


def test_a_trained_rbm_reconstructs_each_digit_closest_to_itself(prepared: Prepared) -> None:
    model = build_classifier(MLPConfig(hidden=(32,)), prepared.data.shape, 10)
    generator = torch.Generator().manual_seed(0)
    budget = PretrainConfig(epochs=60, batch_size=16)
    report = pretrain(model, prepared.pool_images(), "rbm", budget, generator)
    originals, recon = reconstruct(model, report.decoders, prepared)
    flat_x = originals.reshape(10, -1) / 255.0
    flat_r = recon.reshape(10, -1)
    distances = ((flat_r[:, None, :] - flat_x[None, :, :]) ** 2).sum(-1)
    assert (distances.argmin(1) == np.arange(10)).mean() >= 0.8


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_cover_the_plan_once_and_keep_each_encoder_in_one_shard(count: int) -> None:
    from models.report.shard import Shard, select

    budget = BUDGETS["quick"]
    specs = plan(budget, 3, 350)

    def encoder(spec: RunSpec) -> str:
        if spec.method == "none":
            return spec.name
        return experiment(spec, budget, "mnist-5k", 0).pretrain_key()

    slices = [select(specs, Shard(i, count), encoder) for i in range(count)]
    assert sorted(s for part in slices for s in part) == sorted(specs)  # each run exactly once
    owner = {encoder(s): i for i, part in enumerate(slices) for s in part}
    for i, part in enumerate(slices):
        assert all(owner[encoder(s)] == i for s in part)  # an encoder never spans two shards
        assert part == select(specs, Shard(i, count), encoder)  # the same slice every time
    if count > 1:
        sizes = [len(part) for part in slices]
        assert min(sizes) > 0
        assert max(sizes) <= 2 * min(sizes)  # dealt round-robin, roughly even


@pytest.mark.parametrize("text", ["3/3", "-1/2", "1", "a/b", "0/0"])
def test_a_bad_shard_is_one_clear_error(text: str) -> None:
    from models.errors import ConfigError
    from models.report.shard import Shard

    with pytest.raises(ConfigError, match="shard"):
        Shard.parse(text)


def test_the_transfer_panel_pairs_each_start_with_the_random_one_of_its_target() -> None:
    budget = BUDGETS["quick"]
    found = settings("mnist-5k", 10)
    assert [(s.target, s.source, s.kind) for s in found] == [
        ("mnist-5k:5-9", "mnist-5k:0-4", "task"),
        ("", "digits", "dataset"),
    ]
    assert [(s.target, s.source) for s in settings("digits", 10)][-1] == ("", "mnist-5k")
    assert [s.kind for s in settings("mnist-5k:5-9", 5)] == ["dataset"]  # a subset is not cut
    panel = Panel(budget, found, {"mnist-5k:5-9": 340, "": 350})
    specs = panel.plan(seeds=3)
    assert len(specs) == 2 * 4 * 4 * 3  # settings x starts x label budgets x seeds
    assert {s.arch for s in specs} == {"cnn"}
    assert all(s.baseline() in set(specs) for s in specs)
    assert {s.labels_per_class for s in specs if s.dataset} == {10, 30, 100, 340}
    assert {(s.method, s.pretrain_dataset) for s in specs if s.dataset} == {
        (Method.none, ""),
        (budget.transfer_method, ""),
        (Method.supervised, "mnist-5k:0-4"),
        (budget.transfer_method, "mnist-5k:0-4"),
    }
    # On the report's own data set, the random and own-pool starts are the main study's runs.
    shared = set(specs) & set(plan(budget, 3, 350))
    assert shared == {s for s in specs if not s.dataset and not s.pretrain_dataset}
    assert len(shared) == 2 * 4 * 3
    for spec in specs:
        config = experiment(spec, budget, "mnist-5k", 0)
        assert config.dataset == (spec.dataset or "mnist-5k")
        assert config.pretrain_dataset == (spec.pretrain_dataset or None)


def test_a_run_key_without_a_pre_training_data_set_is_what_it_was() -> None:
    spec = RunSpec("cnn", 2, Method.cae, 0, "adam", 10)
    config = experiment(spec, BUDGETS["quick"], "mnist-5k", 0)
    raw = config.to_dict()
    assert raw.pop("pretrain_dataset") is None
    assert raw.pop("mode") == "supervised"
    raw.pop("semi")
    # The key of the older config format, which had none of these fields, is unchanged.
    arch_config = raw.pop("cnn")
    older = {**raw, "init": "sound", "arch_config": arch_config, "format": CACHE_FORMAT}
    older.pop("device")
    older.pop("mlp")
    expected = hashlib.sha256(json.dumps(older, sort_keys=True).encode()).hexdigest()[:24]
    assert run_key(config) == expected
    other = experiment(dataclasses.replace(spec, pretrain_dataset="digits"), BUDGETS["quick"],
                       "mnist-5k", 0)  # fmt: skip
    assert run_key(other) != expected


def test_the_semi_panel_crosses_pre_training_with_fixmatch_under_one_augmented_recipe() -> None:
    budget = BUDGETS["full"]
    panel = semi.SemiPanel(budget, all_labels=350, report_seeds=10)
    specs = panel.plan()
    assert panel.seeds == 5
    assert len(specs) == len(set(specs)) == 4 * 4 * 5  # cells x label budgets x seeds
    assert {s.labels_per_class for s in specs} == {3, 10, 30, 100}
    assert {(s.method, s.mode) for s in specs} == {
        (Method.none, Mode.supervised),
        (Method.contrastive, Mode.supervised),
        (Method.none, Mode.fixmatch),
        (Method.contrastive, Mode.fixmatch),
    }
    assert all(s.arch == "cnn" and s.augment for s in specs)
    main = plan(budget, 10, 350)
    for spec in specs:
        # Every cell's baseline is (none, supervised) with the same augmented recipe.
        baseline = spec.baseline()
        assert (baseline.method, baseline.mode, baseline.augment) == ("none", "supervised", True)
        assert baseline in set(specs)
        assert studies_of(spec, budget, 350) == ()  # no main study counts a panel run
        assert not is_showcase(spec, budget, 350)
        config = experiment(spec, budget, "mnist-5k", 0)
        assert config.mode is spec.mode
        defaults = FinetuneConfig()
        assert config.finetune.augments
        assert (config.finetune.augment_shift, config.finetune.augment_degrees) == (
            defaults.augment_shift,
            defaults.augment_degrees,
        )
        assert config.semi == (budget.semi if spec.mode is Mode.fixmatch else SemiConfig())
        if spec.method != "none":
            # The panel reuses the main study's encoder of the same seed.
            twin = RunSpec("cnn", spec.depth, spec.method, spec.seed, "adam", 10)
            assert twin in set(main)
            assert config.pretrain_key() == experiment(twin, budget, "mnist-5k", 0).pretrain_key()
    assert not set(specs) & set(main)
    assert semi.SemiPanel(budget, 350, report_seeds=3).seeds == 3


def test_a_mode_or_augmentation_gives_a_run_its_own_name_and_key() -> None:
    budget = BUDGETS["quick"]
    plain = RunSpec("cnn", 2, Method.contrastive, 0, "adam", 10)
    fixmatch = dataclasses.replace(plain, mode=Mode.fixmatch)
    augmented = dataclasses.replace(plain, augment=True)
    both = dataclasses.replace(fixmatch, augment=True)
    assert plain.name == "cnn2-contrastive-adam-10pc-seed0"  # as it was before modes
    assert both.name == "cnn2-contrastive-fixmatch-adam-aug-10pc-seed0"
    specs = (plain, fixmatch, augmented, both)
    assert len({s.name for s in specs}) == 4
    assert len({run_key(experiment(s, budget, "mnist-5k", 0)) for s in specs}) == 4
    # A FixMatch run's key follows its semi-supervised recipe; a supervised run's does not.
    other = dataclasses.replace(budget, semi=SemiConfig(epochs=3))
    assert run_key(experiment(both, budget, "mnist-5k", 0)) != run_key(
        experiment(both, other, "mnist-5k", 0)
    )
    assert run_key(experiment(augmented, budget, "mnist-5k", 0)) == run_key(
        experiment(augmented, other, "mnist-5k", 0)
    )


def _semi_records(
    panel: semi.SemiPanel, accuracy: dict[semi.Cell, list[float]]
) -> dict[RunSpec, dict[str, float]]:
    return {
        panel.spec(cell, seed, k): {"test_accuracy": accuracy[cell][seed] + k / 1000}
        for cell in semi.CELLS
        for seed in range(panel.seeds)
        for k in panel.labels()
    }


def test_the_semi_panel_compares_the_cells_paired_by_seed(tmp_path: Path) -> None:
    panel = semi.SemiPanel(BUDGETS["quick"], all_labels=350, report_seeds=5)
    accuracy = {
        semi.NEITHER: [0.70, 0.72, 0.69, 0.71, 0.70],
        semi.PRETRAINED: [0.75, 0.78, 0.74, 0.77, 0.75],
        semi.SEMI: [0.85, 0.86, 0.84, 0.87, 0.85],
        semi.BOTH: [0.86, 0.85, 0.85, 0.86, 0.86],
    }
    records = _semi_records(panel, accuracy)
    found = semi.study(panel, records, RunCache(tmp_path), {s: s.name for s in records})
    assert len(found.comparisons) == 4 * len(panel.labels())
    for c in found.comparisons:
        expected = stats.ttest_rel(accuracy[c.effect.treated], accuracy[c.effect.control])
        diffs = np.subtract(accuracy[c.effect.treated], accuracy[c.effect.control])
        assert c.test.diff.mean == pytest.approx(diffs.mean())
        assert c.test.p == pytest.approx(expected.pvalue)
        assert c.mcnemar is None  # no run kept per-image outcomes
    on_top = [c for c in found.comparisons if c.effect == semi.EFFECTS[3]]
    assert all(c.test.diff.low < 0 < c.test.diff.high for c in on_top)
    words = " ".join(semi.findings(found))
    assert (
        "Where fine-tuning is already semi-supervised (FixMatch), contrastive pre-training added "
        "nothing measurable at 10 and 100 labels per class: the 95% interval of its gain "
        "includes 0 (10: +0.2 pp, [-1.16, +1.56]" in words
    )
    assert "On top of FixMatch" not in words  # nowhere did it make a clear difference
    assert "FixMatch fine-tuning alone (from a random start) helped at 10 and 100" in words
    assert "10: FixMatch (FixMatch +15.0 pp, contrastive +5.4 pp" in words
    table = semi.table(found)
    assert [r[2] for r in table.rows[:4]] == [e.name for e in semi.EFFECTS]
    assert table.rows[3][3:6] == ["contrastive + fixmatch", "86.60", "none + fixmatch"]
