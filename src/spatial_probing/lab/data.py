"""The lab's data: a word-level vocabulary and tokenizer, and the training corpus of true captions + images.

Every objective sees exactly the same tensors: for each training scene its ``original`` and
``converse`` captions (both true, same meaning) and its rendered image, pre-rendered once.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer
from tqdm.auto import tqdm

from spatial_probing.data.schema import Example
from spatial_probing.data.synthetic import (
    CONVERSE,
    COLOURS,
    PHRASES,
    SHAPES,
    TEMPLATES,
    generate,
    heldout_combinations,
    render,
)
from spatial_probing.io import sha256_texts
from spatial_probing.lab.config import DataSpec

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _words(text: str) -> list[str]:
    normal = BertNormalizer(lowercase=True).normalize_str(text)
    return [w for w, _ in BertPreTokenizer().pre_tokenize_str(normal)]


def build_vocab() -> list[str]:
    """Every word the synthetic generator can write (templates, phrases, colours, shapes), special tokens first.

    Enumerated from the generator's own tables rather than from sampled captions, so the
    vocabulary does not depend on the seed or on which scenes were held out.
    """
    words: set[str] = set()
    for template in TEMPLATES:
        for phrases in PHRASES.values():
            for p in phrases:
                words.update(_words(template.format(a="", b="", p=p, P=p[0].upper() + p[1:])))
    for name in (*COLOURS, *SHAPES):
        words.update(_words(name))
    return [*SPECIAL_TOKENS, *sorted(words)]


def build_tokenizer(max_length: int):
    """A BERT WordPiece tokenizer over :func:`build_vocab` (one piece per word: no sub-word splits needed)."""
    from transformers import BertTokenizerFast

    vocab = {w: i for i, w in enumerate(build_vocab())}
    return BertTokenizerFast(vocab=vocab, do_lower_case=True, model_max_length=max_length)


@dataclass
class Corpus:
    """Tokenised true caption pairs and pre-rendered images of the training scenes (row i = scene i).

    ``ids_a``/``ids_b`` hold the original and converse captions (padded token ids, int64),
    ``mask_a``/``mask_b`` their attention masks, ``images`` uint8 (n, 3, S, S) RGB, a quarter of
    the memory of floats (None until :meth:`render_images`; scaled to [-1, 1] per batch by
    :func:`image_batch`).
    """

    scenes: list[str]
    captions_a: list[str]
    captions_b: list[str]
    ids_a: torch.Tensor
    mask_a: torch.Tensor
    ids_b: torch.Tensor
    mask_b: torch.Tensor
    examples: list[Example]
    summary: dict
    images: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.scenes)

    def render_images(self, size: int, *, show_progress: bool = True) -> torch.Tensor:
        """Render each scene once (224 px) and resize to ``size`` (box filter); cached on the corpus."""
        if self.images is not None and self.images.shape[-1] == size:
            return self.images
        out = np.empty((len(self.examples), size, size, 3), dtype=np.uint8)
        for i, ex in enumerate(tqdm(self.examples, desc="render scenes", disable=not show_progress, leave=False)):
            out[i] = np.asarray(render(ex).resize((size, size), resample=4))  # 4 = Image.BOX
        self.images = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
        return self.images


def image_batch(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB images (n, 3, S, S) → float32 in [-1, 1], the CNN's input scale."""
    return images.float().div_(127.5).sub_(1.0)


def _scene_key(ex: Example) -> tuple:
    return tuple(sorted(tuple(sorted(o.items())) for o in ex.source["scene"]["objects"]))


def build_corpus(spec: DataSpec, tokenizer, *, max_length: int) -> Corpus:
    """Training scenes for ``spec``: true captions only, held-out scenes and probe-scene duplicates removed."""
    examples = generate(n_scenes=spec.n_scenes, seed=spec.seed)
    by_scene: dict[str, dict[str, Example]] = {}
    for ex in examples:
        by_scene.setdefault(str(ex.pair_id), {})[str(ex.variant)] = ex
    probe_keys = {_scene_key(e) for e in generate(n_scenes=spec.probe_n_scenes, seed=spec.probe_seed)
                  if e.variant == "original"}
    heldout = heldout_combinations(spec.probe_seed) if spec.heldout == "compositional" else set()
    held_rel = set(spec.heldout_relations)
    dropped = {"probe_duplicate": 0, "heldout_combination": 0, "heldout_relation": 0}
    kept: list[tuple[str, Example, Example]] = []
    for scene, variants in by_scene.items():
        a, b = variants["original"], variants["converse"]
        assert a.truth and b.truth, f"{scene}: original/converse captions must be true"
        objects = a.source["scene"]["objects"]
        if _scene_key(a) in probe_keys:
            dropped["probe_duplicate"] += 1
        elif any((o["colour"], o["shape"]) in heldout for o in objects):
            dropped["heldout_combination"] += 1
        elif a.relation in held_rel or CONVERSE[str(a.relation)] in held_rel:
            dropped["heldout_relation"] += 1
        else:
            kept.append((scene, a, b))
    if len(kept) < 2:
        raise ValueError(f"only {len(kept)} training scene(s) left after hold-outs ({dropped}); raise data.n_scenes")
    caps_a = [a.text for _, a, _ in kept]
    caps_b = [b.text for _, _, b in kept]
    enc_a = tokenizer(caps_a, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    enc_b = tokenizer(caps_b, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    unk = tokenizer.unk_token_id
    n_unk = int((enc_a["input_ids"] == unk).sum() + (enc_b["input_ids"] == unk).sum())
    if n_unk:
        raise ValueError(f"{n_unk} unknown token(s) in the training captions; the vocabulary is incomplete")
    longest = int(max(enc_a["attention_mask"].sum(1).max(), enc_b["attention_mask"].sum(1).max()))
    if longest >= max_length:
        raise ValueError(f"a caption fills all {max_length} positions; raise model.max_position_embeddings")
    summary = {
        "n_generated_scenes": len(by_scene), "n_training_scenes": len(kept), "dropped": dropped,
        "heldout_combinations": sorted(f"{c} {s}" for c, s in heldout),
        "heldout_relations": sorted(held_rel), "relations": sorted({str(a.relation) for _, a, _ in kept}),
        "captions_sha256": sha256_texts([*caps_a, *caps_b]), "max_tokens": longest,
    }
    return Corpus(scenes=[s for s, _, _ in kept], captions_a=caps_a, captions_b=caps_b,
                  ids_a=enc_a["input_ids"], mask_a=enc_a["attention_mask"],
                  ids_b=enc_b["input_ids"], mask_b=enc_b["attention_mask"],
                  examples=[a for _, a, _ in kept], summary=summary)


def check_probe_data(spec: DataSpec, task_options: dict[str, dict]) -> None:
    """Refuse probing synthetic tasks on scenes the lab did not keep out of training.

    ``task_options`` maps task name → its ``load_dataset`` keywords (a run config's
    ``task_options``); synthetic tasks must read ``seed = data.probe_seed`` and at most
    ``data.probe_n_scenes`` scenes, the ones whose duplicates :func:`build_corpus` removed.
    """
    from spatial_probing.data import DATASETS
    from spatial_probing.probe.tasks import get_task

    defaults = inspect.signature(DATASETS["synthetic"]).parameters  # the loader's own seed / n_scenes defaults
    for task, options in task_options.items():
        if get_task(task).spec.dataset != "synthetic":
            continue
        seed = options.get("seed", defaults["seed"].default)
        n = options.get("n_scenes", defaults["n_scenes"].default)
        if seed != spec.probe_seed:
            raise ValueError(f"task_options.{task}.seed is {seed} but the lab's data.probe_seed is {spec.probe_seed}: "
                             f"the lab only keeps the scenes of probe_seed out of training")
        if n > spec.probe_n_scenes:
            raise ValueError(f"task_options.{task}.n_scenes is {n} but the lab's data.probe_n_scenes is "
                             f"{spec.probe_n_scenes}: raise data.probe_n_scenes so every probed scene is kept out "
                             f"of training")
