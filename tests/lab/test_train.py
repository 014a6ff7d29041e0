"""Training: determinism, one initialisation and batch order per seed, saving, reuse, and loading by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from spatial_probing.data import load_dataset
from spatial_probing.embed import embed_examples, load_encoder, load_registry_file
from spatial_probing.lab import LabConfig, build_corpus, build_tokenizer, load_lab_config, train_encoder, train_lab
from spatial_probing.lab.models import build_text_encoder
from spatial_probing.lab.train import convergence, deterministic, weights_digest


@pytest.fixture(scope="module")
def setup(tiny: dict):
    config = LabConfig.model_validate(tiny)
    tokenizer = build_tokenizer(config.model.max_position_embeddings)
    corpus = build_corpus(config.data, tokenizer, max_length=config.model.max_position_embeddings)
    corpus.render_images(config.model.image_size, show_progress=False)
    return config, tokenizer, corpus


def _train(setup, objective: str, seed: int, hard_negatives: float = 0.0, **train):
    config, tokenizer, corpus = setup
    if train:
        config = config.model_copy(update={"train": config.train.model_copy(update=train)})
    with deterministic(config.train.num_threads):
        encoder, log, _ = train_encoder(config, objective, seed, corpus, tokenizer, device=torch.device("cpu"),
                                        hard_negatives=hard_negatives, show_progress=False)
    return encoder, log


@pytest.mark.parametrize(("objective", "fraction"), [("mlm", 0.0), ("textcl", 0.0), ("vision", 0.0),
                                                     ("textcl", 1.0), ("vision", 0.5)])
def test_same_seed_gives_identical_weights(setup, objective: str, fraction: float) -> None:
    (enc_a, log_a), (enc_b, log_b) = _train(setup, objective, 3, fraction), _train(setup, objective, 3, fraction)
    assert weights_digest(enc_a) == weights_digest(enc_b) and log_a["losses"] == log_b["losses"]
    assert log_a["evaluations"] == log_b["evaluations"]
    enc_c, _ = _train(setup, objective, 4, fraction)
    assert weights_digest(enc_c) != weights_digest(enc_a)


def test_arms_share_init_dropout_stream_and_parameter_count_and_batches_within_a_fraction(setup) -> None:
    arms = [("mlm", 0.0), ("textcl", 0.0), ("vision", 0.0), ("textcl", 1.0), ("vision", 1.0)]
    logs = {arm: _train(setup, *arm[:1], 7, arm[1])[1] for arm in arms}
    for key in ("init_sha256", "dropout_sha256", "n_encoder_parameters", "steps", "batch_scenes"):
        assert len({log[key] for log in logs.values()}) == 1, key
    assert len({logs[a]["batches_sha256"] for a in arms if a[1] == 0.0}) == 1
    assert logs[("textcl", 1.0)]["batches_sha256"] == logs[("vision", 1.0)]["batches_sha256"]
    assert logs[("textcl", 1.0)]["batches_sha256"] != logs[("textcl", 0.0)]["batches_sha256"]  # object-pair batches
    assert logs[("vision", 1.0)]["hard_slots_per_batch"] == logs[("vision", 1.0)]["batch_scenes"]


def test_logs_curves_and_convergence_fields(setup) -> None:
    config, tokenizer, corpus = setup
    heldout = corpus.subset(range(16))
    with deterministic(1):
        _, log, heads = train_encoder(config, "vision", 0, corpus, tokenizer, device=torch.device("cpu"),
                                      hard_negatives=1.0, heldout=heldout, show_progress=False)
    steps = config.train.eval_steps()
    assert [(e["step"], e["split"]) for e in log["evaluations"]] == [(s, p) for s in steps for p in ("train", "heldout")]
    for e in log["evaluations"]:
        assert 0 <= e["random_acc"] <= 1 and 0 <= e["hard_acc_image"] <= 1 and e["hard_chance"] == 0.5
    assert len(log["batch_hard_accuracy"]) == config.train.steps and None not in log["batch_hard_accuracy"]
    assert log["convergence"]["status"] in ("ok", "not converged", "did not learn")
    assert "image" in heads and log["heldout_hard_acc"] == log["evaluations"][-1]["hard_acc"]
    with pytest.raises(ValueError, match="no negatives"):
        train_encoder(config, "mlm", 0, corpus, tokenizer, device=torch.device("cpu"), hard_negatives=1.0)


def test_convergence_check_known_answers() -> None:
    steps = [0, 25, 50, 75, 100]
    assert convergence(steps, [4.0, 2.0, 1.5, 1.45, 1.44], 0.05)["status"] == "ok"  # flat over the last quarter
    still = convergence(steps, [4.0, 3.5, 3.0, 2.5, 2.0], 0.05)
    assert still["status"] == "not converged" and still["late_share_of_fall"] == pytest.approx(0.75 / 1.75)
    assert convergence(steps, [4.0, 4.01, 3.99, 4.0, 4.0], 0.05)["status"] == "did not learn"
    assert convergence(steps, [4.0, 2.0, 1.5, 1.4, 1.6], 0.05)["converged"]  # rising late: over-fitting, not unfinished
    # one noisy evaluation neither hides a plateau nor fakes one (the single-point rule got both wrong)
    ten = list(range(0, 101, 10))
    plateau = [4.0, 2.5, 2.0, 1.8, 1.7, 1.6, 1.6, 3.9, 1.6, 1.6, 1.6]  # a spike at 70 % of training
    assert convergence(ten, plateau, 0.05)["status"] == "ok"
    falling = [4.0, 3.7, 3.4, 3.1, 2.8, 2.5, 2.2, 1.9, 0.9, 1.3, 1.0]  # a dip at 80 %, still falling
    assert convergence(ten, falling, 0.05)["status"] == "not converged"


def test_objectives_share_initial_weights_and_batches_for_a_seed(setup) -> None:
    config, tokenizer, _ = setup
    logs = {o: _train(setup, o, 5)[1] for o in ("mlm", "textcl", "vision")}
    torch.manual_seed(5)  # what the shared initialisation must be: the text encoder built first after seeding
    expected = weights_digest(build_text_encoder(config.model, len(tokenizer), tokenizer.pad_token_id))
    assert {log["init_sha256"] for log in logs.values()} == {expected}
    assert len({log["batches_sha256"] for log in logs.values()}) == 1
    assert len({(log["steps"], log["batch_scenes"]) for log in logs.values()}) == 1
    other = _train(setup, "mlm", 6)[1]
    assert other["init_sha256"] != expected and other["batches_sha256"] != logs["mlm"]["batches_sha256"]


def test_training_does_not_touch_the_callers_rng(setup) -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    _train(setup, "mlm", 0)
    assert torch.equal(before, torch.random.get_rng_state())


def test_contrastive_training_learns_on_a_short_run(setup) -> None:
    _, log = _train(setup, "textcl", 0, steps=30, lr=3e-3)
    first, last = np.mean(log["losses"][:5]), np.mean(log["losses"][-5:])
    assert last < 0.8 * first  # paraphrase retrieval is learnable in a few dozen steps, even this small


def test_saved_encoders_load_by_registered_name_and_embed(tiny_lab, tiny: dict) -> None:
    config, trained = tiny_lab
    registered = {c.name: c for c in load_registry_file(config.out / "encoders.yaml", overwrite=True)}
    assert set(registered) == {"lab-mlm-s0", "lab-textcl-s0", "lab-vision-s0"} == {t.name for t in trained}
    examples = load_dataset("synthetic", n_scenes=6)
    finals, paths = {}, {t.name: t.path for t in trained}
    for name, cfg in registered.items():
        assert Path(cfg.model_id) == paths[name].resolve()  # model_id relative to encoders.yaml, resolved
        encoder = load_encoder(name, device="cpu")
        emb = embed_examples(examples, encoder, layers="all", cache_dir=config.out / "cache", show_progress=False)
        assert set(emb) == {"0", "1", "final"}
        assert all(v.shape == (len(examples), tiny["model"]["hidden_size"]) and np.isfinite(v).all()
                   for v in emb.values())
        finals[name] = np.asarray(emb["final"])
    assert not np.allclose(finals["lab-mlm-s0"], finals["lab-vision-s0"])  # the objectives moved the weights
    assert np.ptp(finals["lab-mlm-s0"], axis=0).max() > 0  # different captions, different embeddings


def test_logs_manifest_and_reuse(tiny_lab, tiny: dict) -> None:
    config, trained = tiny_lab
    for t in trained:
        log = json.loads(t.log_path.read_text())
        assert log["run_hash"] == config.run_hash(t.objective, t.seed) and len(log["losses"]) == tiny["train"]["steps"]
        assert (t.path / "config.json").is_file() and (t.path / "tokenizer.json").is_file()
    manifest = json.loads((config.out / "lab_manifest.json").read_text())
    assert manifest["config_hash"] == config.hash() and len(manifest["encoders"]) == 3
    again = train_lab(config, show_progress=False, log=lambda *_: None)
    assert all(t.reused for t in again) and [t.weights_sha256 for t in again] == [t.weights_sha256 for t in trained]


def test_changed_settings_or_force_retrain(tmp_path: Path, tiny: dict, write_lab) -> None:
    config = load_lab_config(write_lab(tmp_path, objectives=["mlm"], train={**tiny["train"], "steps": 1}))
    first = train_lab(config, show_progress=False, log=lambda *_: None)
    assert not first[0].reused
    assert not train_lab(config, force=True, show_progress=False, log=lambda *_: None)[0].reused
    changed = config.model_copy(update={"train": config.train.model_copy(update={"lr": 1e-4})})
    second = train_lab(changed, show_progress=False, log=lambda *_: None)
    assert not second[0].reused and second[0].weights_sha256 != first[0].weights_sha256


def test_parallel_workers_train_the_same_encoders_as_one_process(tiny_lab, tmp_path: Path, tiny: dict,
                                                                 write_lab) -> None:
    """workers only changes the wall time: every weight, loss, evaluation and table equals the serial lab's."""
    import pandas as pd

    serial_config, serial = tiny_lab
    config = load_lab_config(write_lab(tmp_path, train={**tiny["train"], "workers": 2}))
    lines: list[str] = []
    parallel = train_lab(config, show_progress=False, log=lines.append)
    assert config.hash() == serial_config.hash() and not any(t.reused for t in parallel)
    assert [(t.name, t.weights_sha256) for t in parallel] == [(t.name, t.weights_sha256) for t in serial]
    for a, b in zip(serial, parallel):
        la, lb = json.loads(a.log_path.read_text()), json.loads(b.log_path.read_text())
        assert la["losses"] == lb["losses"] and la["evaluations"] == lb["evaluations"]
    assert sum("held-out random / hard accuracy" in line for line in lines) == len(parallel)  # a line per encoder
    for table in ("lab_training.csv", "vision_check.csv"):
        a, b = (pd.read_csv(c.out / table).drop(columns=["wall_s"], errors="ignore") for c in (serial_config, config))
        pd.testing.assert_frame_equal(a, b)


def test_precise_batch_norm_makes_evaluation_match_training_statistics(setup) -> None:
    from spatial_probing.lab.data import image_batch
    from spatial_probing.lab.train import build_model, precise_batch_norm

    config, tokenizer, corpus = setup
    cnn = build_model(config, "vision", 0, tokenizer)["heads"]["image"]
    with torch.no_grad():  # weights that moved away from what the running averages saw
        for p in cnn.parameters():
            p.mul_(3.0).add_(0.5)
    images = image_batch(corpus.images[:32])
    cnn.train()
    with torch.no_grad():
        train_mode = cnn(images)
    stale = cnn.eval()(images)
    precise_batch_norm(cnn, corpus, batch_size=32, hard_negatives=0.0, device=torch.device("cpu"), n_batches=1)
    assert not cnn.training
    with torch.no_grad():
        fresh = cnn(images)
    # equal up to the running variance being unbiased (n / (n - 1), n = 32 images × 2 × 2 cells in the last map)
    assert torch.allclose(fresh, train_mode, rtol=2e-2) and not torch.allclose(stale, train_mode, rtol=0.2)
