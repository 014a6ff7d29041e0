"""The lab's data: a word-level vocabulary and tokenizer, and the training corpus of true captions + images.

Every objective sees exactly the same tensors: for each training scene its ``original`` and
``converse`` captions (both true, same meaning) and its rendered image, pre-rendered once.

Hard negatives (NegCLIP-style) come from the same scene, so they share its two objects and
differ only in *where* they are: the ``swapped`` caption (arguments exchanged; used only when it
is false, i.e. not for the symmetric ``near``/``far``), the ``foil`` caption (a false relation
of the same kind) and a counterfactual render (:func:`counterfactual_objects`: positions
swapped, else mirrored, else one object moved, whichever first makes the caption false).
A model that sees only which objects are present cannot tell them from the positives.
"""

from __future__ import annotations

import inspect
import random
from dataclasses import asdict, dataclass, fields, replace
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
    GRID,
    PHRASES,
    SHAPES,
    TEMPLATES,
    SceneObject,
    generate,
    heldout_combinations,
    holds,
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
    ``mask_a``/``mask_b`` their attention masks; ``ids_swap``/``ids_foil`` the hard-negative
    captions (``swap_ok`` False where the swapped caption is true and so no negative);
    ``pair`` the unordered object pair's index (scenes sharing it share their objects).
    ``images``/``cf_images`` uint8 (n, 3, S, S) RGB renders of each scene and of its
    counterfactual, a quarter of the memory of floats (None until :meth:`render_images`;
    scaled to [-1, 1] per batch by :func:`image_batch`).
    """

    scenes: list[str]
    captions_a: list[str]
    captions_b: list[str]
    ids_a: torch.Tensor
    mask_a: torch.Tensor
    ids_b: torch.Tensor
    mask_b: torch.Tensor
    ids_swap: torch.Tensor
    mask_swap: torch.Tensor
    swap_ok: torch.Tensor
    ids_foil: torch.Tensor
    mask_foil: torch.Tensor
    pair: torch.Tensor
    examples: list[Example]
    counterfactuals: list[Example]
    summary: dict
    images: torch.Tensor | None = None
    cf_images: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.scenes)

    def subset(self, rows) -> "Corpus":
        """The corpus restricted to ``rows`` (in that order), renders included when present."""
        idx = torch.as_tensor(list(rows), dtype=torch.long)
        pick = idx.tolist()
        tensors = {f.name: getattr(self, f.name)[idx] for f in fields(self)
                   if isinstance(getattr(self, f.name), torch.Tensor)}
        lists = {f.name: [getattr(self, f.name)[i] for i in pick] for f in fields(self)
                 if isinstance(getattr(self, f.name), list)}
        return Corpus(**tensors, **lists, summary={**self.summary, "n_scenes": len(pick)})

    def render_images(self, size: int, *, show_progress: bool = True) -> torch.Tensor:
        """Render each scene and its counterfactual once (224 px), resized to ``size`` (box filter); cached."""
        if self.images is not None and self.images.shape[-1] == size:
            return self.images
        self.images = render_scenes(self.examples, size, show_progress=show_progress)
        self.cf_images = render_scenes(self.counterfactuals, size, show_progress=show_progress)
        return self.images


def render_scenes(examples: list[Example], size: int, *, show_progress: bool = False) -> torch.Tensor:
    """uint8 (n, 3, size, size) renders of synthetic examples' scenes (224 px, box-resized)."""
    out = np.empty((len(examples), size, size, 3), dtype=np.uint8)
    for i, ex in enumerate(tqdm(examples, desc="render scenes", disable=not show_progress, leave=False)):
        out[i] = np.asarray(render(ex).resize((size, size), resample=4))  # 4 = Image.BOX
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def counterfactual_objects(example: Example) -> list[dict]:
    """The scene's two objects placed so that the example's caption is false, changing as little as possible.

    Tried in order: positions swapped (left ↔ right, above ↔ below), mirrored left–right, mirrored
    top–bottom, then the subject moved to another cell (proximity and enclosure, which swaps and
    mirrors keep true); the first that makes ``subject RELATION object`` false wins. The objects,
    sizes and colours stay, so only where they are tells the scene from its counterfactual.
    """
    a, b = (SceneObject(**o) for o in example.source["scene"]["objects"])
    relation = str(example.relation)
    last = GRID - 1
    candidates = [(replace(a, x=b.x, y=b.y), replace(b, x=a.x, y=a.y)),
                  (replace(a, x=last - a.x), replace(b, x=last - b.x)),
                  (replace(a, y=last - a.y), replace(b, y=last - b.y))]
    cells = [(x, y) for x in range(GRID) for y in range(GRID)]
    random.Random(example.id).shuffle(cells)
    candidates += [(replace(a, x=x, y=y), b) for x, y in cells if (x, y) != (b.x, b.y)]
    for ca, cb in candidates:
        if not holds(relation, ca, cb):
            return [asdict(ca), asdict(cb)]
    raise ValueError(f"{example.id}: no counterfactual placement makes {relation!r} false")  # unreachable on 5×5

def image_batch(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB images (n, 3, S, S) → float32 in [-1, 1], the CNN's input scale."""
    return images.float().div_(127.5).sub_(1.0)


def _scene_key(ex: Example) -> tuple:
    return tuple(sorted(tuple(sorted(o.items())) for o in ex.source["scene"]["objects"]))


def build_corpus(spec: DataSpec, tokenizer, *, max_length: int, held_out: bool = False) -> Corpus:
    """Training scenes for ``spec``: true captions only, held-out scenes and probe-scene duplicates removed.

    ``held_out=True`` builds the evaluation scenes instead (``eval_seed``, ``eval_n_scenes``): the
    same filters, and exact duplicates of training scenes dropped too, so the held-out loss and
    retrieval accuracies are measured on scenes the encoder never trained on.
    """
    seed, n = (spec.eval_seed, spec.eval_n_scenes) if held_out else (spec.seed, spec.n_scenes)
    examples = generate(n_scenes=n, seed=seed)
    by_scene: dict[str, dict[str, Example]] = {}
    for ex in examples:
        by_scene.setdefault(str(ex.pair_id), {})[str(ex.variant)] = ex
    excluded = {_scene_key(e) for e in generate(n_scenes=spec.probe_n_scenes, seed=spec.probe_seed)
                if e.variant == "original"}
    if held_out:
        excluded |= {_scene_key(e) for e in generate(n_scenes=spec.n_scenes, seed=spec.seed) if e.variant == "original"}
    heldout = heldout_combinations(spec.probe_seed) if spec.heldout == "compositional" else set()
    held_rel = set(spec.heldout_relations)
    dropped = {"probe_duplicate": 0, "heldout_combination": 0, "heldout_relation": 0}
    kept: list[dict[str, Example]] = []
    for scene, variants in by_scene.items():
        a = variants["original"]
        if not (a.truth and variants["converse"].truth) or variants["foil"].truth:
            raise ValueError(f"{scene}: expected true original/converse and a false foil caption")
        objects = a.source["scene"]["objects"]
        if _scene_key(a) in excluded:
            dropped["probe_duplicate"] += 1
        elif any((o["colour"], o["shape"]) in heldout for o in objects):
            dropped["heldout_combination"] += 1
        elif a.relation in held_rel or CONVERSE[str(a.relation)] in held_rel:
            dropped["heldout_relation"] += 1
        else:
            kept.append(variants)
    if len(kept) < 2:
        raise ValueError(f"only {len(kept)} {'held-out' if held_out else 'training'} scene(s) left after hold-outs "
                         f"({dropped}); raise data.{'eval_n_scenes' if held_out else 'n_scenes'}")
    texts = {v: [k[v].text for k in kept] for v in ("original", "converse", "swapped", "foil")}
    enc = {v: tokenizer(t, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
           for v, t in texts.items()}
    n_unk = sum(int((e["input_ids"] == tokenizer.unk_token_id).sum()) for e in enc.values())
    if n_unk:
        raise ValueError(f"{n_unk} unknown token(s) in the lab's captions; the vocabulary is incomplete")
    longest = max(int(e["attention_mask"].sum(1).max()) for e in enc.values())
    if longest >= max_length:
        raise ValueError(f"a caption fills all {max_length} positions; raise model.max_position_embeddings")
    originals = [k["original"] for k in kept]
    pairs = [" & ".join(sorted(f"{o['colour']} {o['shape']}" for o in a.source["scene"]["objects"]))
             for a in originals]
    pair_index = {p: i for i, p in enumerate(sorted(set(pairs)))}
    counterfactuals = [a.model_copy(update={"source": {**a.source, "scene": {**a.source["scene"],
                                                                           "objects": counterfactual_objects(a)}}})
                       for a in originals]
    swap_ok = torch.tensor([not k["swapped"].truth for k in kept])
    summary = {
        "seed": seed, "n_generated_scenes": len(by_scene), "n_scenes": len(kept), "dropped": dropped,
        "heldout_combinations": sorted(f"{c} {s}" for c, s in heldout),
        "heldout_relations": sorted(held_rel), "relations": sorted({str(a.relation) for a in originals}),
        "captions_sha256": sha256_texts([*texts["original"], *texts["converse"]]), "max_tokens": longest,
        "n_object_pairs": len(pair_index), "mean_scenes_per_object_pair": len(kept) / len(pair_index),
        "n_swapped_negatives": int(swap_ok.sum()), "n_foil_negatives": len(kept),
    }
    if not held_out:
        summary["n_training_scenes"] = len(kept)
    return Corpus(scenes=[str(a.pair_id) for a in originals], captions_a=texts["original"],
                  captions_b=texts["converse"], ids_a=enc["original"]["input_ids"],
                  mask_a=enc["original"]["attention_mask"], ids_b=enc["converse"]["input_ids"],
                  mask_b=enc["converse"]["attention_mask"], ids_swap=enc["swapped"]["input_ids"],
                  mask_swap=enc["swapped"]["attention_mask"], swap_ok=swap_ok, ids_foil=enc["foil"]["input_ids"],
                  mask_foil=enc["foil"]["attention_mask"], pair=torch.tensor([pair_index[p] for p in pairs]),
                  examples=originals, counterfactuals=counterfactuals, summary=summary)


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
