"""The lexical floor as encoders: ``bow:`` (bag of words) and ``order:`` (which word fills which noun slot).

Why: every task the toolkit ships can be solved, partly or wholly, from the words alone, so an encoder's
accuracy means something spatial only where it beats what the words give. These two encoders are that
floor, usable wherever an encoder name is (CLI, run configs, RSA), through the same embedding cache:

* ``bow:`` — unigram + bigram counts (scikit-learn's ``CountVectorizer``, lower-cased, one-character words
  kept: StepGame's agents are letters). Bigrams carry *local* order: "the cat is left of the dog" and "the
  dog is left of the cat" have the same unigrams but differ in "cat is" / "dog is".
* ``order:`` — purely positional: a one-hot of the lexical item in the first noun slot and one of the item
  in the second, and a last column that is 1 when the slots were not found (``[onehot(first) |
  onehot(second) | unlocated]``), nothing else.

Both are *fitted on training items only* (:meth:`LexicalEncoder.fit`; the probe runner refits on each outer
fold's training items, ``spatial-probing embed`` fits on the dataset's training split): a word, bigram or
slot item that occurs only in test data gets no feature. RSA, which has no held-out side, fits on the
examples it analyses. The fitted vocabulary's hash is
part of the cache fingerprint, so embeddings from another vocabulary are never served; ``weights_hash`` is
the method's identity (the vocabulary follows from the unit's configuration and data), so resuming works.

Noun slots (``order:``): the two items are the example's ``subject`` and ``object`` (VSR, synthetic scenes;
for StepGame the two agents of the question). They are located in the text (StepGame: in the question),
as whole words, case-sensitively and then case-insensitively, the longer item first and the other at its
first occurrence that does not overlap it; whichever starts first fills slot 1. An example without both
items, or whose items are not found, gets only the ``unlocated`` feature; such examples are counted by reason
(``slot_counts`` in the encoder's info, hence in every run manifest) and a warning says how many.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spatial_probing.data.schema import Example
from spatial_probing.embed.config import EncoderConfig
from spatial_probing.embed.encoders import Encoder, EncoderInfo
from spatial_probing.embed.resolve import ResolvedModel
from spatial_probing.io import sha256_bytes, sha256_texts

#: Bump when the features of ``bow:`` or ``order:`` change, so old cache entries are not reused.
LEXICAL_FORMAT_VERSION = 1

#: Words are runs of letters/digits, one character included (``A`` in "agent A").
TOKEN_PATTERN = r"(?u)\b\w+\b"

#: At most this many n-grams (the most frequent in the training texts by document frequency, ties by
#: spelling); VSR's training captions have ~500 unigrams + bigrams, StepGame's ~2,500.
MAX_FEATURES = 4096

#: Reasons an example's noun slots are not found (counted, never silent).
SLOT_REASONS = ("located", "no-arguments", "not-in-text")


class LexicalInfo(EncoderInfo):
    """:class:`EncoderInfo` plus what a lexical encoder was fitted on."""

    vocabulary_hash: str | None
    vocabulary_size: int
    fits: list[dict[str, Any]]
    slot_counts: dict[str, int] | None


def _region(e: Example) -> str:
    """Where the noun slots are looked for: StepGame's question, otherwise the whole text."""
    question = e.source.get("question") if e.dataset == "stepgame" else None
    return question if isinstance(question, str) and question.strip() else e.text


def _spans(item: str, text: str) -> list[tuple[int, int]]:
    for flags in (0, re.IGNORECASE):
        found = [m.span() for m in re.finditer(rf"(?<!\w){re.escape(item)}(?!\w)", text, flags)]
        if found:
            return found
    return []


def noun_slots(e: Example) -> tuple[tuple[str, str] | None, str]:
    """``((first, second), "located")`` in surface order, or ``(None, reason)`` with a reason of :data:`SLOT_REASONS`."""
    subj, obj = (e.subject or "").strip(), (e.object or "").strip()
    if not subj or not obj:
        return None, "no-arguments"
    text = _region(e)
    longer, shorter = (subj, obj) if len(subj) >= len(obj) else (obj, subj)
    a = _spans(longer, text)
    if not a:
        return None, "not-in-text"
    b = [s for s in _spans(shorter, text) if s[1] <= a[0][0] or s[0] >= a[0][1]]
    if not b:
        return None, "not-in-text"
    pos = {longer: a[0][0], shorter: b[0][0]}
    first, second = sorted((subj, obj), key=lambda w: (pos[w], w == obj))
    return (first.lower(), second.lower()), "located"


class LexicalEncoder(Encoder):
    """Base of the lexical-floor encoders: no weights, one layer ``"0"``, fitted on training examples.

    Call :meth:`fit` with the training examples, then embed with :func:`~spatial_probing.embed.embed_examples`
    (or :meth:`encode_examples`). Learned state: ``vocabulary_`` (sorted feature names), ``fits_`` (one
    record per fit: examples, vocabulary size and hash).
    """

    def __init__(self, config: EncoderConfig, *, max_features: int = MAX_FEATURES) -> None:
        if max_features < 1:
            raise ValueError(f"max_features must be >= 1, got {max_features}")
        self.max_features = max_features
        self.vocabulary_: list[str] | None = None
        self.fits_: list[dict[str, Any]] = []
        self.slot_counts_: dict[str, int] | None = None
        super().__init__(config, ResolvedModel(path=Path("."), source=f"built-in lexical floor ({config.name})"),
                         device="cpu")

    # -- Encoder hooks
    def _read_architecture(self) -> tuple[int, dict[str, int]]:
        return 0, {}

    @property
    def layer_names(self) -> list[str]:
        return ["0"]

    def layer_dim(self, layer: str) -> int:
        return self._n_features() if self.vocabulary_ is not None else 0

    def _n_features(self) -> int:
        return len(self.vocabulary_ or [])

    def _load(self) -> None:
        self._check_fitted()

    def _check_fitted(self) -> None:
        from sklearn.exceptions import NotFittedError

        if self.vocabulary_ is None:
            raise NotFittedError(f"encoder {self.name!r} is not fitted: call .fit(training examples) first (the "
                                 f"probe and RSA runners and `spatial-probing embed` fit it on the training split)")

    # -- identity
    def _method(self) -> dict[str, Any]:
        import sklearn

        return {"format": LEXICAL_FORMAT_VERSION, "control": self.config.control, "token_pattern": TOKEN_PATTERN,
                "max_features": self.max_features, "sklearn": sklearn.__version__}

    def weights_hash(self, *, memo_file: Any = None) -> str:
        """Identity of the method (not of a fitted vocabulary): stable before fitting, so resuming works."""
        return sha256_bytes(json.dumps(self._method(), sort_keys=True).encode("utf-8"))

    @property
    def vocabulary_hash(self) -> str | None:
        """SHA-256 of the fitted vocabulary, or None before :meth:`fit`."""
        return None if self.vocabulary_ is None else sha256_texts(self.vocabulary_)

    def fingerprint(self, *, memo_file: Any = None) -> str:
        """Cache identity: the method and the fitted vocabulary."""
        self._check_fitted()
        ident = {"kind": "lexical", "method": self._method(), "vocabulary": self.vocabulary_hash}
        return sha256_bytes(json.dumps(ident, sort_keys=True).encode("utf-8"))

    @property
    def info(self) -> LexicalInfo:
        return LexicalInfo(
            name=self.config.name, kind=self.config.kind, source=self.resolved.source, revision=None,
            weights_hash=self.weights_hash(), dim=self.layer_dim("0"), n_layers=0, pooling=self.config.pooling,
            modality=self.config.modality, control=self.config.control, seed=None,
            layer_dims={"0": self.layer_dim("0")}, vocabulary_hash=self.vocabulary_hash,
            vocabulary_size=len(self.vocabulary_ or []), fits=list(self.fits_), slot_counts=self.slot_counts_)

    # -- fitting and encoding
    def fit(self, examples: Sequence[Example]) -> LexicalEncoder:
        """Learn the vocabulary from these (training) examples only; returns self."""
        examples = list(examples)
        if not examples:
            raise ValueError(f"encoder {self.name!r}: fit needs at least one training example, got none")
        self.vocabulary_ = self._fit_vocabulary(examples)
        self.fits_.append({"n_examples": len(examples), "vocabulary_size": len(self.vocabulary_),
                           "vocabulary_hash": self.vocabulary_hash, "slot_counts": self.slot_counts_})
        return self

    def input_keys(self, examples: Sequence[Example]) -> list[str]:
        """What this encoder reads from each example (hashed into the cache key with the texts)."""
        return [e.text for e in examples]

    def encode_examples(self, examples: Sequence[Example], *, layers: str | Sequence[str] = "all",
                        show_progress: bool = False) -> dict[str, np.ndarray]:
        """``{"0": float32 (n, d)}`` features of ``examples`` under the fitted vocabulary."""
        self._check_fitted()
        examples = list(examples)
        if not examples:
            raise ValueError("nothing to encode: got 0 inputs")
        return {"0": np.ascontiguousarray(self._features(examples), dtype=np.float32)}

    def _fit_vocabulary(self, examples: list[Example]) -> list[str]:
        raise NotImplementedError

    def _features(self, examples: list[Example]) -> np.ndarray:
        raise NotImplementedError


class BagOfWordsEncoder(LexicalEncoder):
    """``bow:`` — unigram + bigram counts over a vocabulary of the training texts."""

    def _vectorizer(self, vocabulary: list[str] | None = None):
        from sklearn.feature_extraction.text import CountVectorizer

        return CountVectorizer(ngram_range=(1, 2), token_pattern=TOKEN_PATTERN, lowercase=True,
                               vocabulary=vocabulary, dtype=np.float32)

    def _fit_vocabulary(self, examples: list[Example]) -> list[str]:
        vec = self._vectorizer()
        try:
            counts = vec.fit_transform([e.text for e in examples])
        except ValueError as err:  # "empty vocabulary": no word at all in the training texts
            raise ValueError(f"encoder {self.name!r}: no words in the {len(examples)} training texts ({err})") from err
        terms = vec.get_feature_names_out()
        df = np.asarray((counts > 0).sum(axis=0)).ravel()
        keep = sorted(range(len(terms)), key=lambda j: (-df[j], terms[j]))[: self.max_features]
        return sorted(str(terms[j]) for j in keep)

    def _encode(self, texts, images, layers, show_progress):
        return {"0": self._vectorizer(self.vocabulary_).transform(texts).toarray().astype(np.float32)}

    def _features(self, examples: list[Example]) -> np.ndarray:
        return self._encode([e.text for e in examples], None, ["0"], False)["0"]


class WordOrderEncoder(LexicalEncoder):
    """``order:`` — one-hot of the item in the first noun slot, then of the item in the second."""

    _memo: tuple[tuple[str, ...], list[tuple[str, str] | None]] | None = None  # the last list's slots

    def _slots(self, examples: Sequence[Example]) -> list[tuple[str, str] | None]:
        """Each example's slots; counts the ones not found (and warns once per example list)."""
        ids = tuple("\x1f".join((e.id, e.text, e.subject or "", e.object or "", _region(e))) for e in examples)
        if self._memo is not None and self._memo[0] == ids:
            return self._memo[1]
        found = [noun_slots(e) for e in examples]
        counts = Counter(reason for _, reason in found)
        self.slot_counts_ = {r: int(counts.get(r, 0)) for r in SLOT_REASONS}
        missed = len(examples) - self.slot_counts_["located"]
        if missed:
            warnings.warn(f"encoder {self.name} noun slots not found in {missed} of {len(examples)} examples "
                          f"({self.slot_counts_['no-arguments']} without subject/object, "
                          f"{self.slot_counts_['not-in-text']} not in the text); they get only the 'unlocated' "
                          f"feature (counted as slot_counts in the manifest's encoder info)", stacklevel=3)
        self._memo = (ids, [slots for slots, _ in found])
        return self._memo[1]

    def _fit_vocabulary(self, examples: list[Example]) -> list[str]:
        items = {w for slots in self._slots(examples) if slots is not None for w in slots}
        if not items:
            raise ValueError(f"encoder {self.name!r}: none of the {len(examples)} training examples has both noun "
                             f"slots (subject and object in the text); order: has nothing to encode")
        return sorted(items)

    def _n_features(self) -> int:
        return 2 * len(self.vocabulary_ or []) + 1

    def input_keys(self, examples: Sequence[Example]) -> list[str]:
        return [f"{e.text}\x1f{'' if s is None else chr(0x1e).join(s)}" for e, s in zip(examples, self._slots(examples))]

    def _features(self, examples: list[Example]) -> np.ndarray:
        index = {w: i for i, w in enumerate(self.vocabulary_ or [])}
        v = len(index)
        x = np.zeros((len(examples), 2 * v + 1), dtype=np.float32)
        for row, slots in enumerate(self._slots(examples)):
            if slots is None:
                x[row, -1] = 1.0
                continue
            for k, w in enumerate(slots):
                if w in index:  # an item seen only in test data gets no feature
                    x[row, k * v + index[w]] = 1.0
        return x

    def _encode(self, texts, images, layers, show_progress):
        raise ValueError(f"encoder {self.name!r} reads the subject and object of each example, not bare texts: "
                         f"use embed_examples(examples, encoder, ...) or encoder.encode_examples(examples)")


def build_lexical_encoder(config: EncoderConfig) -> LexicalEncoder:
    """The lexical-floor encoder for a ``kind="lexical"`` config (``bow:`` or ``order:``)."""
    classes = {"bow": BagOfWordsEncoder, "order": WordOrderEncoder}
    if config.control not in classes:
        raise ValueError(f"encoder {config.name!r}: unknown lexical control {config.control!r}; expected bow or order")
    return classes[config.control](config)


def fit_lexical(encoder: Encoder, train_examples: Sequence[Example]) -> bool:
    """Fit ``encoder`` on ``train_examples`` if it is a lexical-floor encoder; whether it was one."""
    if not isinstance(encoder, LexicalEncoder):
        return False
    encoder.fit(train_examples)
    return True
