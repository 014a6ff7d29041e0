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

import torch
import torch.nn.functional as F
import yaml
from torch import nn
from tqdm.auto import tqdm

from spatial_probing.io import atomic_write_json, atomic_write_text, package_versions, sha256_file
from spatial_probing.lab.config import OBJECTIVE_DESCRIPTIONS, LabConfig, encoder_name
from spatial_probing.lab.data import SPECIAL_TOKENS, Corpus, build_corpus, build_tokenizer, image_batch
from spatial_probing.lab.models import (
    ContrastiveScale,
    ImageEncoder,
    MLMHead,
    build_text_encoder,
    info_nce,
    mask_tokens,
    mean_pool,
)

REGISTRY_FILE = "encoders.yaml"
MANIFEST_FILE = "lab_manifest.json"


def run_dir_name(objective: str, seed: int) -> str:
    """Folder of one trained encoder inside the lab's output directory."""
    return f"{objective}-seed{seed}"


@dataclass(frozen=True)
class TrainedEncoder:
    """One lab encoder on disk and how its training went."""

    name: str
    objective: str
    seed: int
    path: Path
    log_path: Path
    run_hash: str
    weights_sha256: str
    initial_loss: float
    final_loss: float
    wall_s: float
    reused: bool


@contextmanager
def deterministic(num_threads: int) -> Iterator[None]:
    """Fixed thread count and deterministic kernels for the block; the previous settings (and the caller's
    global RNG state, which training reseeds) come back after."""
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    torch.set_num_threads(num_threads)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless epochs of shuffled scene indices; the last short batch of an epoch is dropped."""
    per_epoch = max(1, n // batch_size)
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(per_epoch):
            yield perm[i * batch_size:(i + 1) * batch_size]


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


def train_encoder(config: LabConfig, objective: str, seed: int, corpus: Corpus, tokenizer, *,
                  device: torch.device, show_progress: bool = True) -> tuple[nn.Module, dict]:
    """Train one text encoder with ``objective`` and ``seed``; returns (the BertModel on CPU, the training log)."""
    spec, tr = config.model, config.train
    if objective not in OBJECTIVE_DESCRIPTIONS:
        raise ValueError(f"unknown objective {objective!r}; expected one of {sorted(OBJECTIVE_DESCRIPTIONS)}")
    if corpus.images is None and objective == "vision":
        raise ValueError("the vision objective needs corpus.render_images(...) first")
    batch_size = min(tr.batch_size, len(corpus))
    torch.manual_seed(seed)
    encoder = build_text_encoder(spec, len(tokenizer), tokenizer.pad_token_id)  # same init for every objective
    init_sha256 = weights_digest(encoder)
    heads = nn.ModuleDict()
    if objective == "mlm":
        heads["mlm"] = MLMHead(encoder)
    else:
        heads["text_proj"] = nn.Linear(spec.hidden_size, spec.proj_dim)
        heads["scale"] = ContrastiveScale(tr.temperature)
        if objective == "vision":
            heads["image"] = ImageEncoder(spec)
    model = nn.ModuleDict({"encoder": encoder, "heads": heads}).to(device)
    optimiser = torch.optim.AdamW(_decay_groups(model, tr.weight_decay), lr=tr.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, _lr_lambda(tr.steps, tr.warmup_frac))
    data_gen = torch.Generator().manual_seed(1_000_003 * seed + 17)  # batch order: identical across objectives
    mask_gen = torch.Generator().manual_seed(1_000_003 * seed + 29)
    batches = _batches(len(corpus), batch_size, data_gen)
    batch_hash = hashlib.sha256()
    n_special, vocab_size, mask_id = len(SPECIAL_TOKENS), len(tokenizer), tokenizer.mask_token_id

    losses: list[float] = []
    accuracies: list[float] = []
    model.train()
    start = time.perf_counter()
    bar = tqdm(range(tr.steps), desc=encoder_name(config.name_prefix, objective, seed), disable=not show_progress,
               leave=False)
    for _ in bar:
        idx = next(batches)
        batch_hash.update(idx.numpy().tobytes())
        ids = torch.cat([corpus.ids_a[idx], corpus.ids_b[idx]])
        att = torch.cat([corpus.mask_a[idx], corpus.mask_b[idx]])
        width = int(att.sum(1).max())
        ids, att = ids[:, :width], att[:, :width]
        if objective == "mlm":
            inputs, labels = mask_tokens(ids, att, mask_id=mask_id, vocab_size=vocab_size, n_special=n_special,
                                         prob=tr.mask_prob, generator=mask_gen)
            states = encoder(input_ids=inputs.to(device), attention_mask=att.to(device)).last_hidden_state
            labels = labels.to(device)
            logits = heads["mlm"](states)  # every position (the vocabulary is tiny); unpicked ones are ignored
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
            picked = labels != -100
            acc = (logits.argmax(-1) == labels)[picked].float().mean()
        else:
            att_d = att.to(device)
            states = encoder(input_ids=ids.to(device), attention_mask=att_d).last_hidden_state
            z = heads["text_proj"](mean_pool(states, att_d))
            za, zb = z[:len(idx)], z[len(idx):]
            scale = heads["scale"]()
            if objective == "textcl":
                loss = info_nce(za, zb, scale)
                other = zb
            else:
                zi = heads["image"](image_batch(corpus.images[idx]).to(device))
                loss = 0.5 * (info_nce(za, zi, scale) + info_nce(zb, zi, scale))
                other = zi
            with torch.no_grad():  # in-batch retrieval: does the original caption find its partner?
                sims = F.normalize(za, dim=-1) @ F.normalize(other, dim=-1).T
                acc = (sims.argmax(1) == torch.arange(len(idx), device=device)).float().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tr.grad_clip)
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        accuracies.append(acc.item())
        if show_progress:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    wall = time.perf_counter() - start
    encoder = encoder.to("cpu").eval()
    k = max(1, tr.steps // 10)
    log = {
        "name": encoder_name(config.name_prefix, objective, seed), "objective": objective, "seed": seed,
        "objective_description": OBJECTIVE_DESCRIPTIONS[objective],
        "run_hash": config.run_hash(objective, seed), "config_hash": config.hash(),
        "init_sha256": init_sha256, "batches_sha256": batch_hash.hexdigest(),
        "config": config.model_dump(mode="json"), "device": str(device), "num_threads": tr.num_threads,
        "steps": tr.steps, "batch_scenes": batch_size, "captions_per_batch": 2 * batch_size,
        "n_training_scenes": len(corpus),
        "batch_accuracy_kind": "masked-token accuracy" if objective == "mlm" else
        f"in-batch top-1 retrieval of the partner ({'converse caption' if objective == 'textcl' else 'image'}); "
        f"chance {1 / batch_size:.4f}",
        "losses": losses, "batch_accuracy": accuracies,
        "initial_loss": sum(losses[:k]) / k, "final_loss": sum(losses[-k:]) / k,
        "initial_batch_accuracy": sum(accuracies[:k]) / k, "final_batch_accuracy": sum(accuracies[-k:]) / k,
        "wall_s": wall, "steps_per_s": tr.steps / wall if wall > 0 else None,
        "n_encoder_parameters": sum(p.numel() for p in encoder.parameters()),
        "n_trained_parameters": sum(p.numel() for p in model.parameters()),
    }
    return encoder, log


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


def registry_entries(config: LabConfig, corpus_summary: dict | None = None) -> list[dict]:
    """``EncoderConfig`` dicts for ``encoders.yaml`` (``model_id`` relative to the lab folder)."""
    held = []
    if corpus_summary:
        if corpus_summary.get("heldout_combinations"):
            held.append(f"held-out combinations {', '.join(corpus_summary['heldout_combinations'])}")
        if corpus_summary.get("heldout_relations"):
            held.append(f"held-out relations {', '.join(corpus_summary['heldout_relations'])}")
    suffix = f" ({'; '.join(held)})" if held else ""
    return [{"name": encoder_name(config.name_prefix, o, s), "kind": "hf", "model_id": run_dir_name(o, s),
             "modality": "text", "pooling": "mean",
             "description": f"grounding lab, {OBJECTIVE_DESCRIPTIONS[o]}, seed {s}{suffix}"}
            for o in config.objectives for s in config.seeds]


def train_lab(config: LabConfig, *, out: str | Path | None = None, device: str | None = None, force: bool = False,
              show_progress: bool = True, command: str = "", log: Callable[[str], object] = print
              ) -> list[TrainedEncoder]:
    """Train (or reuse, when already trained with the same settings) every objective × seed of ``config``.

    Writes ``OUT/<objective>-seed<k>/`` (model + tokenizer), ``OUT/logs/<objective>-seed<k>.json``,
    ``OUT/encoders.yaml`` and ``OUT/lab_manifest.json``; returns what was trained.
    """
    from spatial_probing.device import resolve_device

    out = Path(out) if out is not None else config.out
    dev = resolve_device(device or config.train.device)
    started = datetime.now(timezone.utc).isoformat()
    t0 = time.perf_counter()
    tokenizer = build_tokenizer(config.model.max_position_embeddings)
    corpus = build_corpus(config.data, tokenizer, max_length=config.model.max_position_embeddings)
    log(f"lab: {len(corpus)} training scenes ({corpus.summary['dropped']} dropped), vocabulary {len(tokenizer)}, "
        f"{len(config.objectives)} objective(s) × {len(config.seeds)} seed(s) on {dev}")
    results: list[TrainedEncoder] = []
    with deterministic(config.train.num_threads):
        for objective in config.objectives:
            for seed in config.seeds:
                name = encoder_name(config.name_prefix, objective, seed)
                model_dir = out / run_dir_name(objective, seed)
                log_path = out / "logs" / f"{run_dir_name(objective, seed)}.json"
                run_hash = config.run_hash(objective, seed)
                previous = None if force else _reusable(log_path, model_dir, run_hash)
                if previous is None:
                    if objective == "vision":
                        corpus.render_images(config.model.image_size, show_progress=show_progress)
                    started_run = datetime.now(timezone.utc).isoformat()
                    encoder, entry = train_encoder(config, objective, seed, corpus, tokenizer, device=dev,
                                                   show_progress=show_progress)
                    save_encoder(encoder, tokenizer, model_dir)
                    entry.update(weights_sha256=sha256_file(model_dir / "model.safetensors"), started=started_run,
                                 ended=datetime.now(timezone.utc).isoformat(), data=corpus.summary,
                                 versions={**package_versions(), "cpu_count": os.cpu_count()})
                    atomic_write_json(log_path, entry)
                else:
                    entry = previous
                results.append(TrainedEncoder(
                    name=name, objective=objective, seed=seed, path=model_dir, log_path=log_path, run_hash=run_hash,
                    weights_sha256=entry["weights_sha256"], initial_loss=entry["initial_loss"],
                    final_loss=entry["final_loss"], wall_s=entry["wall_s"], reused=previous is not None))
                how = "reused" if previous is not None else f"{entry['wall_s']:.1f} s"
                log(f"  {name}: loss {entry['initial_loss']:.3f} → {entry['final_loss']:.3f}, batch accuracy "
                    f"{entry['initial_batch_accuracy']:.3f} → {entry['final_batch_accuracy']:.3f} ({how})")
    atomic_write_text(out / REGISTRY_FILE, yaml.safe_dump(registry_entries(config, corpus.summary), sort_keys=False))
    atomic_write_json(out / MANIFEST_FILE, {
        "command": command, "config": config.model_dump(mode="json"), "config_hash": config.hash(),
        "device": str(dev), "started": started, "ended": datetime.now(timezone.utc).isoformat(),
        "wall_s": time.perf_counter() - t0, "data": corpus.summary, "vocabulary_size": len(tokenizer),
        "versions": {**package_versions(), "cpu_count": os.cpu_count()}, "registry": REGISTRY_FILE,
        "encoders": [{**{k: v for k, v in asdict(r).items() if k not in ("path", "log_path")},
                      "path": r.path.name, "log": str(r.log_path.relative_to(out))} for r in results],
    })
    return results
