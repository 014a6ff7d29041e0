"""Caption-choice analyses (rsa/pairs.py, probe/choice.py): known answers for the cosine sensitivity, the blind
probe, the clustered bootstrap and image-text matching (macro vs micro); the run step end to end with tiny random
SBERT and CLIP models on upstream-format fixtures, resume, and the missing-image error."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from choice_fixtures import ARO, write_aro, write_png, write_sugarcrepe, write_whatsup
from conftest_models import build_tiny_clip, build_tiny_sbert

from spatial_probing.data import DataError, Example, load_dataset
from spatial_probing.pipeline import load_run_config, run_pairs_step
from spatial_probing.probe.choice import ChoiceItems, argmax_credit, blind_choice_probe, choice_items, cluster_folds
from spatial_probing.probe.stats import bootstrap_mean, cluster_bootstrap
from spatial_probing.rsa.pairs import PAIRS_COLUMNS, PairsSettings, PairsUnit, itm_rows, option_cosines, \
    run_pairs_unit, text_rows


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def bag_of_words(texts: list[str]) -> np.ndarray:
    """An encoder that ignores word order: word counts over the texts' own vocabulary."""
    vocab = sorted({w for t in texts for w in re.findall(r"[a-z]+", t.lower())})
    index = {w: i for i, w in enumerate(vocab)}
    x = np.zeros((len(texts), len(vocab)))
    for r, t in enumerate(texts):
        for w in re.findall(r"[a-z]+", t.lower()):
            x[r, index[w]] += 1
    return x


def word_positions(texts: list[str]) -> np.ndarray:
    """An order-sensitive encoder: one-hot of (word, position)."""
    keys = sorted({(w, i) for t in texts for i, w in enumerate(re.findall(r"[a-z]+", t.lower()))})
    index = {k: j for j, k in enumerate(keys)}
    x = np.zeros((len(texts), len(keys)))
    for r, t in enumerate(texts):
        for i, w in enumerate(re.findall(r"[a-z]+", t.lower())):
            x[r, index[(w, i)]] = 1
    return x


def _same_words(a: str, b: str) -> bool:
    return sorted(re.findall(r"[a-z]+", a.lower())) == sorted(re.findall(r"[a-z]+", b.lower()))


def test_order_blind_encoder_gives_cosine_one_on_word_identical_swaps(tmp_path):
    examples = load_dataset("sugarcrepe", data_dir=write_sugarcrepe(tmp_path), variant="swap_obj")
    [items] = choice_items(examples)
    texts = [e.text for e in examples]
    cos = option_cosines(bag_of_words(texts), items)
    np.testing.assert_allclose(cos, 1.0, atol=1e-12)
    assert (option_cosines(word_positions(texts), items) < 1 - 1e-6).all()  # an order-sensitive encoder moves


def test_real_swap_obj_pairs_with_identical_words(real_data):
    if not (real_data / "sugarcrepe" / "swap_obj.json").is_file():
        pytest.skip(f"no sugarcrepe/swap_obj.json under {real_data}")
    examples = load_dataset("sugarcrepe", data_dir=real_data, variant="swap_obj")
    [items] = choice_items(examples)
    texts = [e.text for e in examples]
    same = np.array([_same_words(texts[a], texts[b]) for a, b in items.options])
    assert same.sum() >= 50  # most argument swaps keep the words (some change number agreement, "is"/"are")
    cos = option_cosines(bag_of_words(texts), items)
    np.testing.assert_allclose(cos[same], 1.0, atol=1e-12)
    assert (cos[~same] < 1 - 1e-9).all()


def _planted(n: int, k: int, seed: int = 0, d: int = 12, signal: float = 3.0) -> tuple[np.ndarray, ChoiceItems]:
    """n items of k options in n // 2 images; the true option carries +signal on feature 0, noise elsewhere."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n * k, d))
    correct = rng.integers(0, k, size=n)
    options = np.arange(n * k).reshape(n, k)
    x[options[np.arange(n), correct], 0] += signal
    items = ChoiceItems(ids=np.arange(n).astype(str).astype(object), options=options, correct=correct,
                        clusters=(np.arange(n) // 2).astype(str).astype(object),
                        categories=np.array(["a"] * n, dtype=object), relations=np.array([""] * n, dtype=object))
    return x, items


@pytest.mark.parametrize("k", [2, 4])
def test_blind_probe_finds_a_planted_feature_and_shuffled_labels_sit_at_chance(k):
    x, items = _planted(400, k)
    hits = blind_choice_probe(x, items, seed=0)
    assert hits.mean() > 0.95
    control = blind_choice_probe(x, items, seed=0, shuffle_labels=True)
    value, lo, hi = cluster_bootstrap(lambda w: (w @ control) / w.sum(axis=1), items.clusters, n_boot=500)
    assert lo <= 1 / k <= hi and abs(value - 1 / k) < 0.1
    x_null, _ = _planted(400, k, signal=0.0)
    assert abs(blind_choice_probe(x_null, items, seed=0).mean() - 1 / k) < 0.1  # no signal, no score


def test_blind_probe_folds_never_split_an_image():
    clusters = np.repeat(np.arange(30).astype(str), 3).astype(object)
    folds = cluster_folds(clusters, 5, seed=3)
    assert all(len(set(folds[clusters == c])) == 1 for c in set(clusters))
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="needs ≥ 5 images"):
        cluster_folds(clusters[:6], 5, seed=0)


def test_cluster_bootstrap_resamples_whole_clusters():
    x = np.repeat([0.0, 1.0] * 10, 10)                       # 20 clusters of 10 identical items
    clusters = np.repeat(np.arange(20), 10)
    value, lo, hi = cluster_bootstrap(lambda w: (w @ x) / w.sum(axis=1), clusters, n_boot=2000)
    assert value == x.mean()
    _, ilo, ihi = bootstrap_mean(x, n_boot=2000)
    assert hi - lo > 2 * (ihi - ilo)                         # 20 independent units, not 200
    assert np.isnan(cluster_bootstrap(lambda w: (w @ x) / w.sum(axis=1), np.zeros(200), n_boot=10)[1])


def test_itm_macro_and_micro_differ_as_computed_by_hand():
    # relation "on": 3 items matched; relation "under": 1 item missed → micro 3/4, macro (1 + 0) / 2
    n = 4
    options = np.arange(2 * n).reshape(n, 2)
    text = np.tile(np.eye(2), (n, 1))                         # option 0 → e0, option 1 → e1
    image = np.zeros((2 * n, 2))
    image[:6, 0] = 1                                         # items 0-2: the image matches option 0 (the true one)
    image[6:, 1] = 1                                         # item 3: the image matches the false option
    items = ChoiceItems(ids=np.arange(n).astype(str).astype(object), options=options, correct=np.zeros(n, int),
                        clusters=np.arange(n).astype(str).astype(object), categories=np.array([""] * n, object),
                        relations=np.array(["on", "on", "on", "under"], object))
    rows = pd.DataFrame(itm_rows(text, image, items, dataset="aro", encoder="e", n_boot=200))
    get = lambda a, s: rows[(rows.analysis == a) & (rows.subset == s)].value.item()  # noqa: E731
    assert get("itm", "all") == 0.75 and get("itm-macro", "all") == 0.5
    assert get("itm", "on") == 1.0 and get("itm", "under") == 0.0
    tie = pd.DataFrame(itm_rows(text, np.ones_like(image), items, dataset="aro", encoder="e", n_boot=0))
    assert tie.query("analysis == 'itm' and subset == 'all'").value.item() == 0.5  # a 2-way tie earns 1/2


def test_argmax_credit_splits_ties():
    scores = np.array([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    np.testing.assert_allclose(argmax_credit(scores, np.zeros(4, int)), [1.0, 0.5, 0.25, 0.0])


def test_units_add_the_lexical_floor_with_its_one_layer(tmp_path):
    from spatial_probing.rsa.pairs import pairs_units

    units = pairs_units(PairsSettings(datasets=["sugarcrepe", "aro"], itm_encoders=["clip-text+image"]),
                        ["sbert-mpnet", "static:sbert-mpnet"], lexical_floor=["bow:", "order:"], layers="final")
    assert [(u.dataset, u.encoder, u.mode, u.layers) for u in units if u.dataset == "aro"] == [
        ("aro", "sbert-mpnet", "text", "final"), ("aro", "static:sbert-mpnet", "text", "all"),
        ("aro", "bow:", "text", "all"), ("aro", "order:", "text", "all"), ("aro", "clip-text+image", "itm", "final")]
    unit = PairsUnit(dataset="sugarcrepe", encoder="bow:", mode="text", device="cpu", layers="all",
                     settings=PairsSettings(n_folds=2, n_boot=20, dataset_options={"sugarcrepe": {"variant": "swap_obj"}}))
    table, _ = run_pairs_unit(unit, data_dir=write_sugarcrepe(tmp_path), log=lambda *_: None)
    cos = table[(table.analysis == "cosine") & (table.subset == "all")].value.item()
    assert 0.5 < cos < 1  # bow: counts bigrams too, so an argument swap moves it a little
    order, _ = run_pairs_unit(unit.model_copy(update={"encoder": "order:"}), data_dir=tmp_path, log=lambda *_: None)
    assert len(order) == 1 and np.isnan(order.value.item()) and "not run" in order.note.item()  # no noun slots


def test_text_rows_carry_chance_control_and_plain_words():
    x, items = _planted(200, 2)
    rows = pd.DataFrame(text_rows(x, items, dataset="sugarcrepe", encoder="e", layer="0", n_boot=100))
    blind = rows[(rows.analysis == "blind-choice") & (rows.subset == "all")].iloc[0]
    assert blind.chance == 0.5 and blind.value > 0.9 and abs(blind.control - 0.5) < 0.15
    assert "not grounding" in blind.note and blind.n_clusters == 100
    assert set(rows.analysis) == {"cosine", "blind-choice", "blind-choice-shuffled"}


# ------------------------------------------------------------------------------ end to end with tiny models

@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pairs-models")
    return {"sbert": build_tiny_sbert(root / "sbert"), "clip": build_tiny_clip(root / "clip")}


def test_pairs_step_writes_tables_and_resumes(tmp_path, tiny):
    write_sugarcrepe(tmp_path / "data")
    cfg = {"out": "run", "data_dir": "data", "cache_dir": "cache", "tasks": ["synthetic-relation"],
           "encoders": ["sbert-minilm"], "device": "cpu", "model_paths": {"sbert-minilm": str(tiny["sbert"])},
           "pairs": {"datasets": ["sugarcrepe"], "n_folds": 2, "n_boot": 50,
                     "dataset_options": {"sugarcrepe": {"variant": ["swap_obj", "replace_rel"]}}}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    config = load_run_config(tmp_path / "run.yaml")
    logs: list[str] = []
    paths = run_pairs_step(config, log=logs.append)
    table = pd.read_parquet(paths["pairs"])
    assert list(table.columns) == PAIRS_COLUMNS and (tmp_path / "run" / "pairs.csv").is_file()
    assert set(table[table.encoder == "sbert-minilm"].layer) == {"0", "1", "2", "final"}
    assert set(table.encoder) == {"sbert-minilm", "bow:", "order:"}  # the run's lexical floor comes along
    assert table[table.encoder == "order:"].note.str.startswith("not run").all()  # SugarCrepe has no noun slots
    assert set(table[table.subset_kind == "category"].subset) == {"swap_obj", "replace_rel"}
    assert table[table.analysis == "cosine"].n_items.max() == 5
    run_pairs_step(config, log=logs.append)
    assert any(line.startswith("skip pairs sugarcrepe × sbert-minilm") for line in logs)


def _aro_with_images(root: Path, missing: int | None = None) -> Path:
    write_aro(root)
    for i, name in enumerate(sorted({r["image_path"] for r in ARO})):
        if i != missing:
            write_png(root / "aro" / "images" / name, seed=i)
    return root


def test_itm_on_aro_with_tiny_clip(tmp_path, tiny):
    root = _aro_with_images(tmp_path)
    unit = PairsUnit(dataset="aro", encoder="clip-text+image", mode="itm", device="cpu",
                     settings=PairsSettings(datasets=["aro"], itm_encoders=["clip-text+image"], n_boot=50))
    table, meta = run_pairs_unit(unit, data_dir=root, model_path=tiny["clip"], log=lambda *_: None)
    assert set(table.analysis) == {"itm", "itm-macro"} and meta["n_items"] == {"2-way": 3}
    rel = table[(table.analysis == "itm") & (table.subset_kind == "relation")]
    assert set(rel.subset) == {"is holding", "is on"} and table.value.between(0, 1).all()
    micro = table[(table.analysis == "itm") & (table.subset == "all")].value.item()
    per = dict(zip(rel.subset, rel.value))
    assert micro == pytest.approx((per["is holding"] + 2 * per["is on"]) / 3)
    assert table[table.analysis == "itm-macro"].value.item() == pytest.approx((per["is holding"] + per["is on"]) / 2)


def test_itm_missing_image_names_file_and_field(tmp_path, tiny):
    root = _aro_with_images(tmp_path, missing=1)
    unit = PairsUnit(dataset="aro", encoder="clip-text+image", mode="itm", device="cpu",
                     settings=PairsSettings(datasets=["aro"], itm_encoders=["clip-text+image"]))
    with pytest.raises(DataError, match=r"visual_genome_relation\.json#2, field 'image_path': image not found: "
                                        r".*2400001\.jpg"):
        run_pairs_unit(unit, data_dir=root, model_path=tiny["clip"], log=lambda *_: None)
    sugar = PairsUnit(dataset="sugarcrepe", encoder="clip-text+image", mode="itm", device="cpu",
                      settings=PairsSettings(itm_encoders=["clip-text+image"]))
    with pytest.raises(DataError, match="pairs.image_dirs"):
        run_pairs_unit(sugar, data_dir=write_sugarcrepe(tmp_path / "s"), model_path=tiny["clip"], log=lambda *_: None)


def test_text_unit_refuses_an_image_encoder(tmp_path, tiny):
    unit = PairsUnit(dataset="sugarcrepe", encoder="clip-image", mode="text", device="cpu")
    with pytest.raises(ValueError, match="pairs.encoders: 'clip-image' is a image encoder"):
        run_pairs_unit(unit, data_dir=write_sugarcrepe(tmp_path), model_path=tiny["clip"], log=lambda *_: None)


def test_choice_items_rejects_an_item_without_a_true_option():
    ex = [Example(id=f"x/{i}", dataset="sugarcrepe", split="test", text=f"t{i}", truth=False, pair_id="p",
                  origin="f.json#0") for i in range(2)]
    with pytest.raises(ValueError, match="item 'p': expected ≥ 2 options with exactly one true"):
        choice_items(ex)


def _whatsup_with_images(root: Path) -> Path:
    write_whatsup(root)
    for i, e in enumerate({e.image: e for e in load_dataset("whatsup", data_dir=root)}.values()):
        write_png(root / "whatsup" / str(e.image), seed=10 + i)
    return root


def test_whatsup_four_and_two_way_items_are_kept_apart(tmp_path, tiny):
    root = _whatsup_with_images(tmp_path)
    settings = PairsSettings(datasets=["whatsup"], itm_encoders=["clip-text+image"], n_boot=20, n_folds=2)
    itm, meta = run_pairs_unit(PairsUnit(dataset="whatsup", encoder="clip-text+image", mode="itm", device="cpu",
                                         settings=settings), data_dir=root, model_path=tiny["clip"], log=lambda *_: None)
    assert meta["n_items"] == {"2-way": 3, "4-way": 4}
    chance = dict(zip(itm[itm.subset_kind == "all"].subset, itm[itm.subset_kind == "all"].chance))
    assert chance == {"all-2way": 0.5, "all-4way": 0.25}
    text, _ = run_pairs_unit(PairsUnit(dataset="whatsup", encoder="sbert-minilm", mode="text", device="cpu",
                                       layers="final", settings=settings.model_copy(update={"n_folds": 4})),
                             data_dir=root, model_path=tiny["sbert"], log=lambda *_: None)
    blind = text[text.analysis == "blind-choice"].set_index("subset")
    assert blind.loc["all-4way"].chance == 0.25 and np.isfinite(blind.loc["all-4way"].value)
    assert np.isnan(blind.loc["all-2way"].value) and "3 images < 4 folds" in blind.loc["all-2way"].note


def test_settings_refuse_encoders_of_the_wrong_modality():
    with pytest.raises(ValueError, match="'clip-text' is a text encoder; image-text matching needs"):
        PairsSettings(itm_encoders=["clip-text"])
    with pytest.raises(ValueError, match="'clip-text\\+image' is a text\\+image encoder; the text-side"):
        PairsSettings(encoders=["sbert-mpnet", "clip-text+image"])
    with pytest.raises(ValueError, match="each dataset once"):
        PairsSettings(datasets=["aro", "aro"])
