"""The lab's networks: one BERT text encoder for every objective, plus the objective-specific heads.

Only the text encoder (a plain ``BertModel``) is saved; heads are training scaffolding. The
encoder is built first after seeding, so for a given seed all objectives start from the same
weights and differ only in what the gradient says.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from spatial_probing.lab.config import ModelSpec


def build_text_encoder(spec: ModelSpec, vocab_size: int, pad_token_id: int):
    """A small ``transformers.BertModel`` from scratch (loadable by ``AutoModel`` once saved)."""
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=vocab_size, hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers,
                        num_attention_heads=spec.num_heads, intermediate_size=spec.intermediate_size,
                        max_position_embeddings=spec.max_position_embeddings, type_vocab_size=1,
                        hidden_dropout_prob=spec.dropout, attention_probs_dropout_prob=spec.dropout,
                        pad_token_id=pad_token_id)
    return BertModel(config)


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Attention-mask mean of token states: the same pooling the embed stage applies (``pooling: mean``)."""
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(1) / m.sum(1).clamp_min(1.0)


class MLMHead(nn.Module):
    """BERT's masked-LM head with the decoder tied to the encoder's input word embeddings."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        from transformers.models.bert.modeling_bert import BertOnlyMLMHead

        self.head = BertOnlyMLMHead(encoder.config)
        self.head.predictions.decoder.weight = encoder.embeddings.word_embeddings.weight

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.head(states)


class ContrastiveScale(nn.Module):
    """CLIP's learnable logit scale (log 1/T), clamped at 100 as in CLIP."""

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def forward(self) -> torch.Tensor:
        return self.log_scale.clamp(max=math.log(100.0)).exp()


class ImageEncoder(nn.Module):
    """A small CNN (three stride-2 convolutions) whose flattened feature map keeps where things are."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        c1, c2, c3 = spec.image_channels
        self.features = nn.Sequential(  # batch norm centres away the white background every scene shares
            nn.Conv2d(3, c1, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c1), nn.GELU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c2), nn.GELU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c3), nn.GELU(),
        )
        side = spec.image_size // 8
        self.proj = nn.Linear(c3 * side * side, spec.proj_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(images).flatten(1))


def info_nce(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor, *, extra_for_a: torch.Tensor | None = None,
             extra_for_b: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP's loss): row i of ``a`` matches row i of ``b``; other rows are negatives.

    ``extra_for_a`` are further candidates every row of ``a`` must rank below its partner in ``b``
    (NegCLIP's hard negatives: for a caption, counterfactual images; for an image, false captions),
    ``extra_for_b`` the same for the rows of ``b``. Without extras this is CLIP's loss exactly.
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    target = torch.arange(a.shape[0], device=a.device)
    cand_a = b if extra_for_a is None else torch.cat([b, F.normalize(extra_for_a, dim=-1)])
    cand_b = a if extra_for_b is None else torch.cat([a, F.normalize(extra_for_b, dim=-1)])
    return 0.5 * (F.cross_entropy(scale * a @ cand_a.T, target) + F.cross_entropy(scale * b @ cand_b.T, target))


def two_choice_accuracy(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Per row: 1 if cos(anchor, positive) > cos(anchor, negative), 0 if below, 0.5 on a tie (chance is 0.5).

    Ties count half so that a representation that cannot tell the two apart (e.g. one that sees
    only which objects are present, for a same-scene hard negative) scores exactly chance.
    """
    anchor, positive, negative = (F.normalize(x, dim=-1) for x in (anchor, positive, negative))
    pos, neg = (anchor * positive).sum(-1), (anchor * negative).sum(-1)
    tie = torch.isclose(pos, neg, rtol=1e-5, atol=1e-6)
    return torch.where(tie, torch.full_like(pos, 0.5), (pos > neg).to(pos.dtype))


def mask_tokens(ids: torch.Tensor, attention: torch.Tensor, *, mask_id: int, vocab_size: int, n_special: int,
                prob: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: pick ``prob`` of the word tokens (at least one per caption); 80 % [MASK], 10 % random, 10 % kept.

    Returns (masked input ids, labels with -100 where not predicted). Uses ``generator`` only, so
    the masks are a function of the seed.
    """
    words = attention.bool() & (ids >= n_special)
    u = torch.rand(ids.shape, generator=generator)
    chosen = words & (u < prob)
    # guarantee one prediction per caption: the word with the smallest draw
    first = torch.where(words, u, torch.full_like(u, 2.0)).argmin(1)
    chosen[torch.arange(ids.shape[0]), first] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    r = torch.rand(ids.shape, generator=generator)
    random_ids = torch.randint(n_special, vocab_size, ids.shape, generator=generator)
    masked = torch.where(chosen & (r < 0.8), torch.full_like(ids, mask_id), ids)
    masked = torch.where(chosen & (r >= 0.8) & (r < 0.9), random_ids, masked)
    return masked, labels
