"""Tiny randomly initialised models saved to folders, loadable offline through the real code paths.

Reusable by every stage's tests: ``from conftest_models import build_tiny_models``.
Each builder writes a model the way a downloaded one looks (config, weights, tokenizer,
image processor), with hidden size 32 and 2 layers so a test encodes hundreds of texts in
well under a second. Weights are seeded (seeds 1000+, never a ``random-init`` control's
seed), so the same call gives the same model.
"""

from __future__ import annotations

import string
import warnings
from pathlib import Path

import torch

TINY_HIDDEN = 32
TINY_LAYERS = 2
TINY_PROJECTION = 16

_WORDS = ("the a an of to is are on in at by near far from left right above below under over behind front "
          "next beside inside outside top bottom side cat dog car man woman table chair bed cup red blue green "
          "circle square triangle star small large object scene picture photo image").split()


#: A few captions with a repeat (row 5 = row 0) and one long sentence, for encoder tests.
SAMPLE_TEXTS = ["The cat is left of the dog.", "A red circle above a blue square.", "the cup is on the table",
                "The car is far from the man, who is standing behind the large chair next to the bed.", "a dog",
                "The cat is left of the dog."]


def _pieces() -> list[str]:
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    return _WORDS + chars + ["##" + c for c in string.ascii_lowercase + string.digits]


def write_wordpiece_vocab(path: Path, specials: list[str]) -> Path:
    """A WordPiece vocab: ``specials`` first, then words, characters and ``##`` continuations."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(specials + _pieces()) + "\n", encoding="utf-8")
    return path


def _layers_config() -> dict:
    return dict(hidden_size=TINY_HIDDEN, num_hidden_layers=TINY_LAYERS, num_attention_heads=2,
                intermediate_size=2 * TINY_HIDDEN)


def build_tiny_bert(out: Path, *, seed: int = 1000) -> Path:
    """A 2-layer BERT with a WordPiece tokenizer (``transformers`` folder, kind ``hf``)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = write_wordpiece_vocab(out / "vocab.txt", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok = BertTokenizer(vocab=str(vocab))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(BertConfig(vocab_size=len(tok), max_position_embeddings=64, pad_token_id=0,
                                     **_layers_config()))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_tiny_mpnet(out: Path, *, seed: int = 1001) -> Path:
    """A 2-layer MPNet with a WordPiece tokenizer (the architecture of all-mpnet-base-v2)."""
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizer

    vocab = write_wordpiece_vocab(out / "vocab.txt", ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"])
    tok = MPNetTokenizer(vocab=str(vocab))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MPNetModel(MPNetConfig(vocab_size=len(tok), max_position_embeddings=66, pad_token_id=1,
                                       bos_token_id=0, eos_token_id=2, **_layers_config()))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_tiny_sbert(out: Path, *, seed: int = 1002) -> Path:
    """A sentence-transformers model (MPNet → mean pooling → normalise), like all-mpnet-base-v2."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
        except ImportError:  # sentence-transformers < 6
            from sentence_transformers.models import Normalize, Pooling, Transformer
    from sentence_transformers import SentenceTransformer

    backbone = build_tiny_mpnet(out.parent / f"{out.name}-backbone", seed=seed)
    transformer = Transformer(str(backbone), max_seq_length=48)
    model = SentenceTransformer(modules=[transformer, Pooling(TINY_HIDDEN, "mean"), Normalize()], device="cpu")
    model.save(str(out))
    return out


def build_tiny_clip(out: Path, *, seed: int = 1003) -> Path:
    """A 2-layer CLIP (text and 32×32 ViT image towers) with a byte-level BPE tokenizer and PIL image processor."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    for suffix in ("", "</w>"):
        for ch in alphabet:
            vocab[ch + suffix] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1, **_layers_config()),
        vision_config=dict(image_size=32, patch_size=8, **_layers_config()),
        projection_dim=TINY_PROJECTION)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
    return out


def build_tiny_models(root: Path) -> dict[str, Path]:
    """All tiny models under ``root``: keys ``bert``, ``mpnet``, ``sbert``, ``clip``."""
    return {"bert": build_tiny_bert(root / "bert"), "mpnet": build_tiny_mpnet(root / "mpnet"),
            "sbert": build_tiny_sbert(root / "sbert"), "clip": build_tiny_clip(root / "clip")}
