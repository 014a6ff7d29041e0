"""Train the lab's encoders: every objective × seed on identical data, order, init and optimiser.

For a seed ``k`` the text encoder's initial weights, the order of the batches and the optimiser
settings are the same for every objective; only the loss differs. Each encoder is saved as a
plain ``transformers`` BERT (``save_pretrained`` model + tokenizer) and listed in ``encoders.yaml``,
the registry file :func:`spatial_probing.embed.load_registry_file` reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from tqdm.auto import tqdm

from spatial_probing.io import atomic_path, atomic_write_json, atomic_write_text, package_versions, sha256_file
from spatial_probing.lab.config import OBJECTIVE_DESCRIPTIONS, LabConfig, arm_label, encoder_name
from spatial_probing.lab.data import SPECIAL_TOKENS, Corpus, build_corpus, build_tokenizer, image_batch
from spatial_probing.lab.models import (
    ContrastiveScale,
    ImageEncoder,
    MLMHead,
    build_text_encoder,
    info_nce,
    mask_tokens,
    mean_pool,
    two_choice_accuracy,
)

REGISTRY_FILE = "encoders.yaml"
MANIFEST_FILE = "lab_manifest.json"


TRAINING_TABLE = "lab_training.csv"
CURVES_TABLE = "lab_curves.csv"
IMAGE_ENCODER_FILE = "image_encoder.safetensors"


def _log_path(out: Path, objective: str, seed: int, hard_negatives: float = 0.0) -> Path:
    """Where one encoder's training log lives under the lab folder ``out``."""
    return out / "logs" / f"{run_dir_name(objective, seed, hard_negatives)}.json"


def run_dir_name(objective: str, seed: int, hard_negatives: float = 0.0) -> str:
    """Folder of one trained encoder inside the lab's output directory: ``vision-seed0``, ``vision-hn1-seed0``."""
    return f"{arm_label(objective, hard_negatives)}-seed{seed}"


@dataclass(frozen=True)
class TrainedEncoder:
    """One lab encoder on disk and how its training went."""

    name: str
    objective: str
    seed: int
    hard_negatives: float
    path: Path
    log_path: Path
    run_hash: str
    weights_sha256: str
    initial_loss: float
    final_loss: float
    wall_s: float
    reused: bool


def _make_deterministic(num_threads: int) -> None:
    """A fixed thread count and deterministic kernels for this process (CPU results bit-identical for a seed)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    torch.set_num_threads(num_threads)
    torch.use_deterministic_algorithms(True)


@contextmanager
def deterministic(num_threads: int) -> Iterator[None]:
    """Fixed thread count and deterministic kernels for the block; the previous settings (and the caller's
    global RNG state, which training reseeds) come back after."""
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    _make_deterministic(num_threads)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)


def _batches(pair: torch.Tensor, batch_size: int, fraction: float, generator: torch.Generator
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless epochs of (scene indices, hard mask); the last short batch of an epoch is dropped.

    ``round(fraction · batch_size)`` slots of every batch are *hard*: filled from whole groups of
    scenes sharing their object pair (groups in random order), so the in-batch negatives of those
    scenes include scenes with the same two objects, and those scenes carry their own hard
    negatives into the loss. The other slots are random scenes. At fraction 0 this is plain
    shuffling (the batch order of every objective without hard negatives, MLM included).
    """
    n = len(pair)
    per_epoch = max(1, n // batch_size)
    k = int(round(fraction * batch_size))
    n_groups = int(pair.max()) + 1
    while True:
        order = torch.randperm(n, generator=generator)
        if k == 0:
            for i in range(per_epoch):
                yield order[i * batch_size:(i + 1) * batch_size], torch.zeros(batch_size, dtype=torch.bool)
            continue
        rank = torch.randperm(n_groups, generator=generator)[pair[order]]
        grouped = order[torch.argsort(rank * n + torch.arange(n), stable=True)]  # whole groups, contiguous
        g_part = grouped[:per_epoch * k]
        taken = torch.zeros(n, dtype=torch.bool)
        taken[g_part] = True
        r_part = order[~taken[order]]
        hard = torch.arange(batch_size) < k
        for i in range(per_epoch):
            yield torch.cat([g_part[i * k:(i + 1) * k],
                             r_part[i * (batch_size - k):(i + 1) * (batch_size - k)]]), hard


def precise_batch_norm(cnn: nn.Module, corpus: Corpus, *, batch_size: int, hard_negatives: float,
                       device: torch.device, n_batches: int = 4) -> None:
    """Recompute the scene CNN's batch-norm statistics at its current weights ("precise BN") from the first
    ``n_batches`` batches of training scenes (with their counterfactual renders when the arm trains on them).

    Evaluation (and the vision check) normalises with these statistics. The running averages kept during
    training lag behind the weights: at lr 3e-3 the evaluation-mode loss of the default lab's vision arm
    jumped to 6.3 (7.3 with hard negatives) while its training loss fell smoothly to 0.46, and the plateau
    check read those spikes as "not converged". No random numbers are drawn: training is unchanged.
    """
    norms = [m for m in cnn.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training, momenta = cnn.training, [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    cnn.train()
    with torch.no_grad():
        for start in range(0, min(len(corpus), n_batches * batch_size), batch_size):
            rows = slice(start, start + batch_size)
            images = corpus.images[rows] if not hard_negatives else torch.cat([corpus.images[rows],
                                                                                corpus.cf_images[rows]])
            cnn(image_batch(images).to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    cnn.train(was_training)


def _lr_lambda(steps: int, warmup_frac: float) -> Callable[[int], float]:
    warmup = max(1, int(round(steps * warmup_frac)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    return factor


def _decay_groups(modules: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: matrices decay, biases / norms / the logit scale do not (as in BERT and CLIP)."""
    params = [p for p in modules.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def weights_digest(module: nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers (names, shapes and bytes, in name order)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def build_model(config: LabConfig, objective: str, seed: int, tokenizer) -> nn.ModuleDict:
    """The text encoder (built first after seeding: the same initial weights for every objective) and the
    objective's heads; calling it again with the same arguments gives the same initial weights."""
    spec = config.model
    if objective not in OBJECTIVE_DESCRIPTIONS:
        raise ValueError(f"unknown objective {objective!r}; expected one of {sorted(OBJECTIVE_DESCRIPTIONS)}")
    torch.manual_seed(seed)
    encoder = build_text_encoder(spec, len(tokenizer), tokenizer.pad_token_id)
    heads = nn.ModuleDict()
    if objective == "mlm":
        heads["mlm"] = MLMHead(encoder)
    else:
        heads["text_proj"] = nn.Linear(spec.hidden_size, spec.proj_dim)
        heads["scale"] = ContrastiveScale(config.train.temperature)
        if objective == "vision":
            heads["image"] = ImageEncoder(spec)
    return nn.ModuleDict({"encoder": encoder, "heads": heads})


def _text(model: nn.ModuleDict, ids: torch.Tensor, att: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Caption embeddings an objective compares: its projection of the mean-pooled states (MLM: the pool itself)."""
    width = int(att.sum(1).max())
    ids, att = ids[:, :width].to(device), att[:, :width].to(device)
    pooled = mean_pool(model["encoder"](input_ids=ids, attention_mask=att).last_hidden_state, att)
    return model["heads"]["text_proj"](pooled) if "text_proj" in model["heads"] else pooled


def _negative_captions(corpus: Corpus, scenes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, attention, which of ``scenes`` has a swapped negative): swapped captions where false, then foils."""
    swap = corpus.swap_ok[scenes]
    ids = torch.cat([corpus.ids_swap[scenes[swap]], corpus.ids_foil[scenes]])
    att = torch.cat([corpus.mask_swap[scenes[swap]], corpus.mask_foil[scenes]])
    return ids, att, swap


def _hard_accuracy(objective: str, za: torch.Tensor, zb: torch.Tensor, zi: torch.Tensor | None,
                   zneg: torch.Tensor, swap: torch.Tensor, zcf: torch.Tensor | None) -> dict[str, float]:
    """Two-choice accuracies against same-scene hard negatives (chance 0.5), for the rows given.

    Text side: the partner (converse caption; for ``vision`` the image's own caption is the anchor's
    partner) must be closer than the swapped / foil caption. Image side (``vision``): a caption
    must be closer to its scene's image than to the counterfactual render.
    """
    n_swap = int(swap.sum())
    anchor, positive = (zi, za) if objective == "vision" else (za, zb)
    text = torch.cat([two_choice_accuracy(anchor[swap], positive[swap], zneg[:n_swap]),
                      two_choice_accuracy(anchor, positive, zneg[n_swap:])])
    out = {"hard_acc_text": float(text.mean())}
    if objective == "vision":
        out["hard_acc_image"] = float(two_choice_accuracy(za, zi, zcf).mean())
        out["hard_acc"] = 0.5 * (out["hard_acc_text"] + out["hard_acc_image"])
    else:
        out["hard_acc"] = out["hard_acc_text"]
    return out


def _random_accuracy(za: torch.Tensor, other: torch.Tensor) -> float:
    """In-batch top-1 retrieval of each row's partner among all rows (chance 1 / rows)."""
    sims = F.normalize(za, dim=-1) @ F.normalize(other, dim=-1).T
    return float((sims.argmax(1) == torch.arange(len(za), device=za.device)).float().mean())


def _contrastive_step(objective: str, model: nn.ModuleDict, corpus: Corpus, idx: torch.Tensor, hard: torch.Tensor,
                      device: torch.device, *, all_negatives: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss and retrieval accuracies of one contrastive batch; hard slots add their same-scene negatives.

    ``all_negatives`` (evaluation) encodes every scene's negatives for the accuracies; the loss
    still uses only the hard slots' ones, as in training.
    """
    heads, b = model["heads"], len(idx)
    z = _text(model, torch.cat([corpus.ids_a[idx], corpus.ids_b[idx]]),
              torch.cat([corpus.mask_a[idx], corpus.mask_b[idx]]), device)
    za, zb = z[:b], z[b:]
    measured = torch.ones(b, dtype=torch.bool) if all_negatives else hard
    scenes = idx[measured]
    zneg = zcf = zi = None
    if len(scenes):
        ids, att, swap = _negative_captions(corpus, scenes)
        zneg = _text(model, ids, att, device)
    if objective == "vision":
        images = corpus.images[idx] if not len(scenes) else torch.cat([corpus.images[idx], corpus.cf_images[scenes]])
        zall = heads["image"](image_batch(images).to(device))
        zi, zcf = zall[:b], (zall[b:] if len(scenes) else None)
    # the loss's negatives: those of the hard slots (a subset of the measured rows)
    in_loss = hard[measured] if len(scenes) else torch.zeros(0, dtype=torch.bool)
    neg_text = neg_image = None
    if in_loss.any():
        swap_rows = torch.nonzero(swap).flatten()
        keep = torch.cat([in_loss[swap_rows], in_loss])  # swapped negatives first, then foils (as encoded)
        neg_text = zneg[keep.to(zneg.device)]
        neg_image = zcf[in_loss.to(zcf.device)] if zcf is not None else None
    scale = heads["scale"]()
    if objective == "textcl":
        loss = info_nce(za, zb, scale, extra_for_a=neg_text, extra_for_b=neg_text)
    else:
        loss = 0.5 * (info_nce(za, zi, scale, extra_for_a=neg_image, extra_for_b=neg_text)
                      + info_nce(zb, zi, scale, extra_for_a=neg_image, extra_for_b=neg_text))
    with torch.no_grad():
        metrics = {"random_acc": _random_accuracy(za, zi if objective == "vision" else zb)}
        if len(scenes):
            rows = measured.to(za.device)
            metrics.update(_hard_accuracy(objective, za[rows], zb[rows], zi[rows] if zi is not None else None,
                                          zneg, swap, zcf))
    return loss, metrics


def _mlm_step(model: nn.ModuleDict, corpus: Corpus, idx: torch.Tensor, device: torch.device, *, tr, mask_gen,
              tokenizer) -> tuple[torch.Tensor, float]:
    """Masked-LM loss and masked-token accuracy of one batch (both captions of each scene)."""
    ids = torch.cat([corpus.ids_a[idx], corpus.ids_b[idx]])
    att = torch.cat([corpus.mask_a[idx], corpus.mask_b[idx]])
    width = int(att.sum(1).max())
    ids, att = ids[:, :width], att[:, :width]
    inputs, labels = mask_tokens(ids, att, mask_id=tokenizer.mask_token_id, vocab_size=len(tokenizer),
                                 n_special=len(SPECIAL_TOKENS), prob=tr.mask_prob, generator=mask_gen)
    states = model["encoder"](input_ids=inputs.to(device), attention_mask=att.to(device)).last_hidden_state
    labels = labels.to(device)
    logits = model["heads"]["mlm"](states)  # every position (the vocabulary is tiny); unpicked ones are ignored
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    picked = labels != -100
    return loss, float((logits.argmax(-1) == labels)[picked].float().mean())


@torch.no_grad()
def evaluate(objective: str, model: nn.ModuleDict, corpus: Corpus, *, batch_size: int, fraction: float,
             device: torch.device, tr, tokenizer) -> dict[str, float]:
    """Loss and retrieval accuracies on ``corpus`` in fixed batches, dropout off (the same batches every call).

    Every objective gets random-negative retrieval (partner among the batch) and two-choice
    hard-negative accuracies on its caption embeddings (MLM: the mean-pooled states, which is what
    the probes read); the loss is the objective's own (MLM with fixed masks; contrastive with the
    arm's hard-negative slots).
    """
    was_training = model.training
    model.eval()
    b = min(batch_size, len(corpus))
    k = int(round(fraction * b))
    totals: dict[str, list[float]] = {}
    mask_gen = torch.Generator().manual_seed(12345)
    for start in range(0, len(corpus) - b + 1, b):
        idx = torch.arange(start, start + b)
        if objective == "mlm":
            loss, _ = _mlm_step(model, corpus, idx, device, tr=tr, mask_gen=mask_gen, tokenizer=tokenizer)
            z = _text(model, torch.cat([corpus.ids_a[idx], corpus.ids_b[idx]]),
                      torch.cat([corpus.mask_a[idx], corpus.mask_b[idx]]), device)
            ids, att, swap = _negative_captions(corpus, idx)
            metrics = {"random_acc": _random_accuracy(z[:b], z[b:]),
                       **_hard_accuracy("mlm", z[:b], z[b:], None, _text(model, ids, att, device), swap, None)}
        else:
            loss, metrics = _contrastive_step(objective, model, corpus, idx, torch.arange(b) < k, device,
                                              all_negatives=True)
        for key, value in {"loss": float(loss), **metrics}.items():
            totals.setdefault(key, []).append(value)
    model.train(was_training)
    return {key: float(np.mean(v)) for key, v in totals.items()} | {"random_chance": 1 / b, "hard_chance": 0.5}


def hard_accuracy_by_kind(objective: str, model: nn.ModuleDict, corpus: Corpus, *, fraction: float,
                          device: torch.device, tr, tokenizer) -> dict[str, float]:
    """Two-choice hard-negative accuracy (chance 0.5) on ``corpus`` per relation kind (horizontal … topological).

    The kinds differ in what the negatives test: a proximity foil ("far" for "near") differs from the
    positive in a word, so a bag of words passes it; the directional and topological ones have the
    positive's words exactly (swapped arguments, converse relation word) and need argument roles.
    Each kind is evaluated as one batch, so every one of its scenes counts; kinds with fewer than 8 scenes
    are left out.
    """
    from spatial_probing.lab.compare import RELATION_KINDS

    out = {}
    for kind in RELATION_KINDS:
        rows = [i for i, ex in enumerate(corpus.examples) if ex.category == kind]
        if len(rows) >= 8:
            out[kind] = evaluate(objective, model, corpus.subset(rows), batch_size=len(rows), fraction=fraction,
                                 device=device, tr=tr, tokenizer=tokenizer)["hard_acc"]
    return out


def convergence(steps: list[int], losses: list[float], tol: float) -> dict:
    """Held-out loss plateau check: converged when the loss fell over the last quarter of training by at
    most ``tol`` of its whole fall; ``learned`` when it fell by at least 5 % of its start.

    Each quarter's level is the median of its evaluations (the third quarter: from 50 % to 75 % of
    training; the last: from 75 % to the end), so one noisy evaluation (the vision arms' held-out
    loss spikes now and then) neither fakes nor hides a plateau, as it did when the check compared
    the single evaluations nearest 75 % and at the end. A loss still falling at the end (the
    objective wanted more steps) is ``converged = False``; one that rises late (over-fitting) counts
    as converged, and is reported by ``late_change``.
    """
    steps_arr, loss_arr = np.asarray(steps, float), np.asarray(losses, float)
    last = steps_arr[-1]
    in_last = steps_arr >= 0.75 * last
    in_third = (steps_arr >= 0.5 * last) & ~in_last
    if not in_third.any():  # too few evaluations: the one before the last quarter
        in_third[np.flatnonzero(~in_last)[-1]] = True
    start = float(loss_arr[0])
    third, final = float(np.median(loss_arr[in_third])), float(np.median(loss_arr[in_last]))
    late = third - final
    total = start - final
    converged = bool(late <= tol * max(total, 0.0))
    learned = bool(total >= 0.05 * abs(start))
    return {"heldout_loss_start": start, "heldout_loss_end": float(loss_arr[-1]),
            "heldout_loss_third_quarter": third, "heldout_loss_last_quarter": final,
            "late_change": -late, "late_share_of_fall": late / total if total > 0 else float("nan"),
            "converged": converged, "learned": learned,
            "status": "ok" if converged and learned else "did not learn" if not learned else "not converged"}


def train_encoder(config: LabConfig, objective: str, seed: int, corpus: Corpus, tokenizer, *,
                  device: torch.device, hard_negatives: float = 0.0, heldout: Corpus | None = None,
                  show_progress: bool = True) -> tuple[nn.Module, dict, nn.ModuleDict]:
    """Train one text encoder with ``objective``, ``seed`` and hard-negative fraction; returns (BertModel on
    CPU, the training log, the trained heads on CPU: the vision objective's scene CNN is ``heads["image"]``). ``heldout`` scenes (and the first ``eval_n_scenes`` training scenes) are
    evaluated at ``train.eval_steps()`` for the convergence check and the retrieval curves."""
    tr = config.train
    if corpus.images is None and objective == "vision":
        raise ValueError("the vision objective needs corpus.render_images(...) first")
    if objective == "mlm" and hard_negatives:
        raise ValueError("masked LM has no negatives: train it with hard_negatives = 0")
    batch_size = min(tr.batch_size, len(corpus))
    model = build_model(config, objective, seed, tokenizer)
    encoder = model["encoder"]
    init_sha256 = weights_digest(encoder)
    model = model.to(device)
    optimiser = torch.optim.AdamW(_decay_groups(model, tr.weight_decay), lr=tr.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, _lr_lambda(tr.steps, tr.warmup_frac))
    data_gen = torch.Generator().manual_seed(1_000_003 * seed + 17)  # batch order: identical across objectives
    mask_gen = torch.Generator().manual_seed(1_000_003 * seed + 29)
    batches = _batches(corpus.pair, batch_size, hard_negatives, data_gen)
    batch_hash, dropout_hash = hashlib.sha256(), hashlib.sha256()
    train_eval = corpus.subset(range(min(len(corpus), config.data.eval_n_scenes)))
    eval_at = set(tr.eval_steps())
    evals: list[dict] = []

    def run_eval(step: int) -> None:
        if "image" in model["heads"]:
            precise_batch_norm(model["heads"]["image"], corpus, batch_size=batch_size, hard_negatives=hard_negatives,
                               device=device)
        for split, part in (("train", train_eval), ("heldout", heldout)):
            if part is not None:
                evals.append({"step": step, "split": split,
                              **evaluate(objective, model, part, batch_size=batch_size, fraction=hard_negatives,
                                         device=device, tr=tr, tokenizer=tokenizer)})

    losses: list[float] = []
    accuracies: list[float] = []
    hard_accuracies: list[float | None] = []
    model.train()
    start = time.perf_counter()
    run_eval(0)
    name = encoder_name(config.name_prefix, objective, seed, hard_negatives)
    bar = tqdm(range(1, tr.steps + 1), desc=name, disable=not show_progress, leave=False)
    for step in bar:
        idx, hard = next(batches)
        batch_hash.update(idx.numpy().tobytes())
        torch.manual_seed(1_000_003 * seed + 7_919 * step)  # one dropout stream per seed and step, every objective
        dropout_hash.update(torch.random.get_rng_state().numpy().tobytes())
        if objective == "mlm":
            loss, acc = _mlm_step(model, corpus, idx, device, tr=tr, mask_gen=mask_gen, tokenizer=tokenizer)
            hard_acc = None
        else:
            loss, metrics = _contrastive_step(objective, model, corpus, idx, hard, device)
            acc, hard_acc = metrics["random_acc"], metrics.get("hard_acc")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tr.grad_clip)
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        accuracies.append(acc)
        hard_accuracies.append(hard_acc)
        if step in eval_at:
            run_eval(step)
        if show_progress:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    wall = time.perf_counter() - start
    by_kind = hard_accuracy_by_kind(objective, model, heldout, fraction=hard_negatives, device=device, tr=tr,
                                    tokenizer=tokenizer) if heldout is not None else {}
    encoder = encoder.to("cpu").eval()
    k = max(1, tr.steps // 10)
    held = [e for e in evals if e["split"] == "heldout"]
    check = convergence([e["step"] for e in held], [e["loss"] for e in held], tr.plateau_tol) if held else {}
    final = {f"{e['split']}_{m}": e[m] for e in evals if e["step"] == tr.steps
             for m in ("random_acc", "hard_acc", "hard_acc_text", "hard_acc_image") if m in e}
    log = {
        "name": name, "objective": objective, "seed": seed, "hard_negatives": hard_negatives,
        "arm": arm_label(objective, hard_negatives),
        "objective_description": OBJECTIVE_DESCRIPTIONS[objective],
        "run_hash": config.run_hash(objective, seed, hard_negatives), "config_hash": config.hash(),
        "init_sha256": init_sha256, "batches_sha256": batch_hash.hexdigest(),
        "dropout_sha256": dropout_hash.hexdigest(),
        "config": config.model_dump(mode="json"), "device": str(device), "num_threads": tr.num_threads,
        "steps": tr.steps, "batch_scenes": batch_size, "captions_per_batch": 2 * batch_size,
        "hard_slots_per_batch": int(round(hard_negatives * batch_size)),
        "n_training_scenes": len(corpus), "n_heldout_scenes": len(heldout) if heldout is not None else 0,
        "batch_accuracy_kind": "masked-token accuracy" if objective == "mlm" else
        f"in-batch top-1 retrieval of the partner ({'converse caption' if objective == 'textcl' else 'image'}); "
        f"chance {1 / batch_size:.4f}",
        "losses": losses, "batch_accuracy": accuracies, "batch_hard_accuracy": hard_accuracies,
        "initial_loss": sum(losses[:k]) / k, "final_loss": sum(losses[-k:]) / k,
        "initial_batch_accuracy": sum(accuracies[:k]) / k, "final_batch_accuracy": sum(accuracies[-k:]) / k,
        "evaluations": evals, "convergence": check, **final,
        **{f"heldout_hard_acc_{kind}": acc for kind, acc in by_kind.items()},
        "wall_s": wall, "steps_per_s": tr.steps / wall if wall > 0 else None,
        "n_encoder_parameters": sum(p.numel() for p in encoder.parameters()),
        "n_trained_parameters": sum(p.numel() for p in model.parameters()),
    }
    return encoder, log, model["heads"].to("cpu").eval()


def save_encoder(encoder: nn.Module, tokenizer, path: str | Path) -> Path:
    """``save_pretrained`` model + tokenizer into ``path``, atomically (a temp folder renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        encoder.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path


def _reusable(log_path: Path, model_dir: Path, run_hash: str) -> dict | None:
    """The previous log if ``model_dir`` holds exactly what that log says it trained with ``run_hash``."""
    weights = model_dir / "model.safetensors"
    if not (log_path.is_file() and weights.is_file()):
        return None
    try:
        log = json.loads(log_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if log.get("run_hash") != run_hash or log.get("weights_sha256") != sha256_file(weights):
        return None
    return log


def _previous_log(config: LabConfig, out: Path, seed: int, objective: str, fraction: float) -> dict | None:
    """The log of this encoder if ``out`` already holds it trained with the same settings (vision: and its CNN)."""
    model_dir = out / run_dir_name(objective, seed, fraction)
    if objective == "vision" and not (model_dir / IMAGE_ENCODER_FILE).is_file():
        return None  # the vision check needs the scene CNN too
    return _reusable(_log_path(out, objective, seed, fraction), model_dir, config.run_hash(objective, seed, fraction))


def train_and_save(config: LabConfig, seed: int, objective: str, fraction: float, corpus: Corpus, heldout: Corpus,
                   tokenizer, *, device: torch.device, out: Path, show_progress: bool = False) -> dict:
    """Train one encoder, save it (model, tokenizer; vision: the scene CNN) and its log atomically; return the log."""
    model_dir = out / run_dir_name(objective, seed, fraction)
    started = datetime.now(timezone.utc).isoformat()
    encoder, entry, heads = train_encoder(config, objective, seed, corpus, tokenizer, device=device,
                                          hard_negatives=fraction, heldout=heldout, show_progress=show_progress)
    save_encoder(encoder, tokenizer, model_dir)
    if objective == "vision":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in heads["image"].state_dict().items()},
                  str(model_dir / IMAGE_ENCODER_FILE))
    entry.update(weights_sha256=sha256_file(model_dir / "model.safetensors"), started=started,
                 ended=datetime.now(timezone.utc).isoformat(), data=corpus.summary, heldout_data=heldout.summary,
                 versions={**package_versions(), "cpu_count": os.cpu_count()})
    atomic_write_json(_log_path(out, objective, seed, fraction), entry)
    return entry


#: Seconds per 400 steps of each objective (default lab, one thread, 29 Nov 2026; hard negatives add about 80 % at
#: fraction 1): used only to start the longest encoders first. Parallel training gives up the serial order's
#: property that a run cut short holds every arm of its first seeds; finished encoders are reused either way.
_STEP_COST = {"mlm": 25.0, "textcl": 22.0, "vision": 32.0}


def _expected_cost(job: tuple[int, str, float]) -> float:
    _, objective, fraction = job
    return _STEP_COST[objective] * (1 + 0.8 * fraction)


_WORKER: dict = {}


def _init_worker(config: LabConfig, corpus: Corpus, heldout: Corpus, out: Path, device: str) -> None:
    """A training process: the parent's thread count and deterministic kernels, the corpus received once."""
    from transformers.utils import logging as hf_logging

    from spatial_probing.device import resolve_device

    hf_logging.disable_progress_bar()  # save_pretrained's shard bar, once per encoder from every worker
    _make_deterministic(config.train.num_threads)
    _WORKER.update(config=config, corpus=corpus, heldout=heldout, out=out, device=resolve_device(device),
                   tokenizer=build_tokenizer(config.model.max_position_embeddings))


def _train_in_worker(job: tuple[int, str, float]) -> tuple[tuple[int, str, float], dict]:
    w = _WORKER
    return job, train_and_save(w["config"], *job, w["corpus"], w["heldout"], w["tokenizer"], device=w["device"],
                               out=w["out"])


def _train_parallel(config: LabConfig, jobs: list[tuple[int, str, float]], corpus: Corpus, heldout: Corpus, *,
                    out: Path, device: str, workers: int) -> Iterator[tuple[tuple[int, str, float], dict]]:
    """(job, log) of every job as it finishes, trained in ``workers`` spawned processes.

    Each encoder is trained exactly as :func:`train_and_save` trains it alone (it reseeds everything it draws
    from), so the weights do not depend on ``workers`` or on the order jobs finish in. Spawned, not forked: a
    fork of a process whose OpenMP threads have started can hang.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(config, corpus, heldout, out, device))
    try:
        futures = [pool.submit(_train_in_worker, job) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _describe(config: LabConfig, job: tuple[int, str, float], entry: dict, *, reused: bool) -> str:
    """One log line per encoder: loss, held-out accuracies, convergence, and its time (or that it was reused)."""
    seed, objective, fraction = job
    conv = entry.get("convergence", {})
    how = "reused" if reused else f"{entry['wall_s']:.1f} s"
    return (f"  {encoder_name(config.name_prefix, objective, seed, fraction)}: loss {entry['initial_loss']:.3f} → "
            f"{entry['final_loss']:.3f}, held-out random / hard accuracy "
            f"{entry.get('heldout_random_acc', float('nan')):.3f} / {entry.get('heldout_hard_acc', float('nan')):.3f}, "
            f"{conv.get('status', '?')} ({how})")


def registry_entries(config: LabConfig, corpus_summary: dict | None = None) -> list[dict]:
    """``EncoderConfig`` dicts for ``encoders.yaml`` (``model_id`` relative to the lab folder)."""
    held = []
    if corpus_summary:
        if corpus_summary.get("heldout_combinations"):
            held.append(f"held-out combinations {', '.join(corpus_summary['heldout_combinations'])}")
        if corpus_summary.get("heldout_relations"):
            held.append(f"held-out relations {', '.join(corpus_summary['heldout_relations'])}")
    suffix = f" ({'; '.join(held)})" if held else ""
    return [{"name": encoder_name(config.name_prefix, o, s, f), "kind": "hf", "model_id": run_dir_name(o, s, f),
             "modality": "text", "pooling": "mean", "grounded": o == "vision",
             "description": f"grounding lab, {OBJECTIVE_DESCRIPTIONS[o]}"
                            f"{f', hard negatives {f:g}' if f else ''}, seed {s}{suffix}"}
            for o, f in config.arms() for s in config.seeds]


def training_tables(logs: list[dict]) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """(one row per encoder: parameters, matching hashes, convergence and final retrieval accuracies;
    one row per encoder × evaluation step × split: the held-out / training loss and accuracy curves)."""
    import pandas as pd

    from spatial_probing.lab.compare import RELATION_KINDS

    rows, curves = [], []
    for log in logs:
        conv = log.get("convergence", {})
        rows.append({
            "encoder": log["name"], "objective": log["objective"], "hard_negatives": log.get("hard_negatives", 0.0),
            "arm": log.get("arm", log["objective"]), "seed": log["seed"], "steps": log["steps"],
            "batch_scenes": log["batch_scenes"], "n_encoder_parameters": log["n_encoder_parameters"],
            "n_trained_parameters": log["n_trained_parameters"], "init_sha256": log["init_sha256"],
            "batches_sha256": log["batches_sha256"], "dropout_sha256": log.get("dropout_sha256"),
            "final_loss": log["final_loss"],
            **{k: conv.get(k) for k in ("heldout_loss_start", "heldout_loss_end", "late_change", "converged",
                                        "learned", "status")},
            **{f"{split}_{m}": log.get(f"{split}_{m}") for split in ("train", "heldout")
               for m in ("random_acc", "hard_acc", "hard_acc_text", "hard_acc_image")},
            **{f"heldout_hard_acc_{kind}": log.get(f"heldout_hard_acc_{kind}") for kind in RELATION_KINDS},
            "wall_s": log["wall_s"]})
        curves += [{"encoder": log["name"], "arm": log.get("arm", log["objective"]), "seed": log["seed"], **e}
                   for e in log.get("evaluations", [])]
    return pd.DataFrame(rows), pd.DataFrame(curves)


def train_lab(config: LabConfig, *, out: str | Path | None = None, device: str | None = None, force: bool = False,
              show_progress: bool = True, command: str = "", log: Callable[[str], object] = print
              ) -> list[TrainedEncoder]:
    """Train (or reuse, when already trained with the same settings) every arm × seed of ``config``.

    Writes ``OUT/<arm>-seed<k>/`` (model + tokenizer; the vision arms also their scene CNN),
    ``OUT/logs/<arm>-seed<k>.json``, ``OUT/lab_training.csv`` (per encoder: parameters, matching
    hashes, convergence, retrieval accuracies), ``OUT/lab_curves.csv``, ``OUT/vision_check.csv``
    (when a vision arm is trained), ``OUT/encoders.yaml`` and ``OUT/lab_manifest.json``.
    """
    from spatial_probing.device import resolve_device
    from spatial_probing.lab.vision_check import VISION_CHECK_TABLE, vision_check

    out = Path(out) if out is not None else config.out
    dev = resolve_device(device or config.train.device)
    started = datetime.now(timezone.utc).isoformat()
    t0 = time.perf_counter()
    tokenizer = build_tokenizer(config.model.max_position_embeddings)
    max_length = config.model.max_position_embeddings
    corpus = build_corpus(config.data, tokenizer, max_length=max_length)
    heldout = build_corpus(config.data, tokenizer, max_length=max_length, held_out=True)
    arms = config.arms()
    jobs = [(seed, objective, fraction) for seed in config.seeds for objective, fraction in arms]
    previous = {job: None if force else _previous_log(config, out, *job) for job in jobs}
    todo = [job for job in jobs if previous[job] is None]
    workers = min(config.train.workers, len(todo))
    log(f"lab: {len(corpus)} training scenes ({corpus.summary['dropped']} dropped), {len(heldout)} held-out scenes, "
        f"vocabulary {len(tokenizer)}, {len(arms)} arm(s) × {len(config.seeds)} seed(s) on {dev}, "
        f"{len(todo)} to train, {max(workers, 1)} at once")
    if any(objective == "vision" for _, objective, _ in todo):  # rendered once, shared by every vision arm
        corpus.render_images(config.model.image_size, show_progress=show_progress)
        heldout.render_images(config.model.image_size, show_progress=False)
    entries: dict[tuple, dict] = {job: entry for job, entry in previous.items() if entry is not None}
    for job in jobs:
        if job in entries:
            log(_describe(config, job, entries[job], reused=True))
    bar = tqdm(total=len(todo), desc=f"lab encoders ({workers} at once)" if workers > 1 else "lab encoders",
               unit="encoder", disable=not show_progress or not todo)
    with deterministic(config.train.num_threads):  # this process's torch work (serial training, the vision check);
        # worker processes set the same in _init_worker
        if workers > 1:  # longest first, so that the last encoder to finish is a short one
            for job, entry in _train_parallel(config, sorted(todo, key=_expected_cost, reverse=True), corpus, heldout,
                                              out=out, device=str(dev), workers=workers):
                entries[job] = entry
                bar.update()
                log(_describe(config, job, entry, reused=False))
        else:
            for job in todo:
                entries[job] = train_and_save(config, *job, corpus, heldout, tokenizer, device=dev, out=out,
                                              show_progress=show_progress)
                bar.update()
                log(_describe(config, job, entries[job], reused=False))
        bar.close()
        logs = [entries[job] for job in jobs]  # seed-major, whatever order they finished in
        results = [TrainedEncoder(
            name=encoder_name(config.name_prefix, objective, seed, fraction), objective=objective, seed=seed,
            hard_negatives=fraction, path=out / run_dir_name(objective, seed, fraction),
            log_path=_log_path(out, objective, seed, fraction),
            run_hash=config.run_hash(objective, seed, fraction), weights_sha256=entry["weights_sha256"],
            initial_loss=entry["initial_loss"], final_loss=entry["final_loss"], wall_s=entry["wall_s"],
            reused=previous[(seed, objective, fraction)] is not None)
            for (seed, objective, fraction), entry in zip(jobs, logs)]
        if any(o == "vision" for o, _ in arms):
            check = vision_check(config, out, tokenizer, show_progress=show_progress)
            with atomic_path(out / VISION_CHECK_TABLE) as tmp:
                check.to_csv(tmp, index=False)
    table, curves = training_tables(logs)
    for file, frame in ((TRAINING_TABLE, table), (CURVES_TABLE, curves)):
        with atomic_path(out / file) as tmp:
            frame.to_csv(tmp, index=False)
    atomic_write_text(out / REGISTRY_FILE, yaml.safe_dump(registry_entries(config, corpus.summary), sort_keys=False))
    atomic_write_json(out / MANIFEST_FILE, {
        "command": command, "config": config.model_dump(mode="json"), "config_hash": config.hash(),
        "device": str(dev), "started": started, "ended": datetime.now(timezone.utc).isoformat(),
        "wall_s": time.perf_counter() - t0, "data": corpus.summary, "heldout_data": heldout.summary,
        "vocabulary_size": len(tokenizer),
        "versions": {**package_versions(), "cpu_count": os.cpu_count()}, "registry": REGISTRY_FILE,
        "tables": {"training": TRAINING_TABLE, "curves": CURVES_TABLE},
        "encoders": [{**{k: v for k, v in asdict(r).items() if k not in ("path", "log_path")},
                      "path": r.path.name, "log": str(r.log_path.relative_to(out))} for r in results],
    })
    return results
