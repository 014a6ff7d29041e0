"""Content-keyed, memory-mapped embedding cache, and ``embed_examples`` on top of it.

A cache entry is one layer of one encoder over one exact input list. Its key hashes the
encoder's fingerprint (weights, pooling, control, seed, library versions), the layer and
the inputs (texts, and image contents). Layout::

    CACHE/<fingerprint[:20]>/encoder.json            what the encoder was (for humans)
    CACHE/<fingerprint[:20]>/<inputs[:20]>/<layer>.npy   float32 (n, d), loaded memory-mapped
    CACHE/<fingerprint[:20]>/<inputs[:20]>/<layer>.json  full keys, shape, sha256 of the .npy

Both files are written atomically, the ``.json`` last; an entry without it, or whose
size, shape or checksum disagrees, is reported as corrupt and recomputed.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spatial_probing.data.schema import Example
from spatial_probing.embed.encoders import Encoder, select_layers
from spatial_probing.embed.lexical import LexicalEncoder
from spatial_probing.io import atomic_path, atomic_write_json, sha256_bytes, sha256_file, sha256_texts

_PREFIX = 20


class CacheCorruptionWarning(UserWarning):
    """A cache file was damaged or incomplete; it is deleted and recomputed."""


class EmbeddingCache:
    """Embeddings on disk under ``root``, keyed by content; reads are memory-mapped.

    Args:
        root: cache folder (created on first write).
        verify: check each file's sha256 on load (cheap next to computing it; catches bit rot
            and partial copies, not just truncation).
    """

    def __init__(self, root: str | os.PathLike[str], *, verify: bool = True) -> None:
        self.root = Path(root)
        self.verify = verify

    def _paths(self, fingerprint: str, inputs_hash: str, layer: str) -> tuple[Path, Path]:
        folder = self.root / fingerprint[:_PREFIX] / inputs_hash[:_PREFIX]
        return folder / f"{layer}.npy", folder / f"{layer}.json"

    def _check(self, npy: Path, meta_path: Path, fingerprint: str, inputs_hash: str, layer: str) -> np.ndarray:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if (meta.get("fingerprint"), meta.get("inputs_hash"), meta.get("layer")) != (fingerprint, inputs_hash, layer):
            raise ValueError("its keys do not match the entry's name (hash-prefix collision or a moved file)")
        size = npy.stat().st_size
        if size != meta["file_size"]:
            raise ValueError(f"size {size} bytes, expected {meta['file_size']} (truncated or overwritten)")
        if self.verify and sha256_file(npy) != meta["sha256"]:
            raise ValueError("sha256 mismatch (file contents changed)")
        arr = np.load(npy, mmap_mode="r", allow_pickle=False)
        if list(arr.shape) != meta["shape"] or arr.dtype != np.float32:
            raise ValueError(f"array {arr.dtype}{list(arr.shape)}, expected float32{meta['shape']}")
        return arr

    def load(self, fingerprint: str, inputs_hash: str, layer: str) -> np.ndarray | None:
        """The cached array (read-only memmap), or None on a miss; corrupt entries are reported and removed."""
        npy, meta = self._paths(fingerprint, inputs_hash, layer)
        if not npy.exists() and not meta.exists():
            return None
        try:
            if not meta.exists():
                raise ValueError("its metadata file is missing (interrupted write)")
            if not npy.exists():
                raise ValueError("its data file is missing")
            return self._check(npy, meta, fingerprint, inputs_hash, layer)
        except (ValueError, KeyError, OSError, EOFError) as err:
            warnings.warn(f"corrupt embedding cache entry {npy}: {err}; recomputing it",
                          CacheCorruptionWarning, stacklevel=3)
            npy.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            return None

    def save(self, fingerprint: str, inputs_hash: str, layer: str, array: np.ndarray,
             extra: dict[str, Any] | None = None) -> np.ndarray:
        """Write one entry atomically and return it re-opened memory-mapped."""
        array = np.ascontiguousarray(array, dtype=np.float32)
        npy, meta = self._paths(fingerprint, inputs_hash, layer)
        with atomic_path(npy) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, array, allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
        atomic_write_json(meta, {"fingerprint": fingerprint, "inputs_hash": inputs_hash, "layer": layer,
                                 "shape": list(array.shape), "dtype": "float32", "file_size": npy.stat().st_size,
                                 "sha256": sha256_file(npy), **(extra or {})})
        return np.load(npy, mmap_mode="r", allow_pickle=False)


def _image_key(example: Example, image_dir: str | os.PathLike[str] | None, memo: dict[str, str]) -> str:
    """Content key of an example's image: the scene spec for synthetic scenes, the file's sha256 otherwise."""
    ref = example.image
    if ref is None:
        raise ValueError(f"{example.id}: this encoder needs an image but the example has none")
    if ref not in memo:
        if ref.startswith("synthetic:"):  # rendered deterministically from the spec
            spec = json.dumps(example.source.get("scene"), sort_keys=True)
            memo[ref] = "scene:" + sha256_bytes(spec.encode("utf-8"))
        else:
            from spatial_probing.data import open_image

            path = Path(image_dir) / ref if image_dir is not None else None
            if path is None or not path.is_file():
                open_image(example, image_dir)  # raises the data stage's clear missing-image error
            memo[ref] = "file:" + sha256_file(path)  # type: ignore[arg-type]
    return memo[ref]


def inputs_hash(examples: Sequence[Example], encoder: Encoder, *,
                image_dir: str | os.PathLike[str] | None = None) -> str:
    """Hash of exactly what the encoder reads from these examples (texts and/or image contents), in order."""
    parts = {"modality": encoder.config.modality, "n": len(examples)}
    if encoder.config.modality in ("text", "text+image"):
        parts["texts"] = sha256_texts(e.text for e in examples)
    if encoder.config.modality in ("image", "text+image"):
        memo: dict[str, str] = {}
        parts["images"] = sha256_texts(_image_key(e, image_dir, memo) for e in examples)
    if isinstance(encoder, LexicalEncoder):  # order: also reads each example's subject and object
        parts["lexical"] = sha256_texts(encoder.input_keys(examples))
    return sha256_bytes(json.dumps(parts, sort_keys=True).encode("utf-8"))


def save_embeddings(cache: EmbeddingCache, encoder: Encoder, fingerprint: str, inputs_key: str,
                    examples: Sequence[Example], arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Write computed layers of ``examples`` as cache entries (and the encoder's ``encoder.json`` once); returns
    them memory-mapped. The one writer of entries, whether the layers came from one pass or from shards."""
    encoder_json = cache.root / fingerprint[:_PREFIX] / "encoder.json"
    if not encoder_json.exists():
        atomic_write_json(encoder_json, {"fingerprint": fingerprint, **encoder.info.model_dump()})
    return {layer: cache.save(fingerprint, inputs_key, layer, array,
                              {"encoder": encoder.name, "n_examples": len(examples),
                               "first_id": examples[0].id, "last_id": examples[-1].id})
            for layer, array in arrays.items()}


def embed_examples(examples: Sequence[Example], encoder: Encoder, *, layers: str | Sequence[str] = "all",
                   cache_dir: str | os.PathLike[str] | None, image_dir: str | os.PathLike[str] | None = None,
                   show_progress: bool = True) -> dict[str, np.ndarray]:
    """Embeddings of ``examples`` (rows in order) for the selected layers, from the cache where possible.

    Missing layers are computed together in one pass and cached; ``cache_dir=None`` disables
    the cache. Images come from :func:`spatial_probing.data.open_image` (synthetic scenes are
    re-rendered; VSR images need ``image_dir``).
    """
    examples = list(examples)
    if not examples:
        raise ValueError("embed_examples: no examples to embed")
    wanted = select_layers(layers, encoder.layer_names)
    cache = EmbeddingCache(cache_dir) if cache_dir is not None else None
    result: dict[str, np.ndarray] = {}
    if cache is not None:
        memo_file = Path(cache_dir) / "weights-sha256.json"  # type: ignore[arg-type]
        fp, ih = encoder.fingerprint(memo_file=memo_file), inputs_hash(examples, encoder, image_dir=image_dir)
        for layer in wanted:
            hit = cache.load(fp, ih, layer)
            if hit is not None:
                result[layer] = hit
    missing = [layer for layer in wanted if layer not in result]
    if missing:
        texts = [e.text for e in examples] if encoder.config.modality != "image" else None
        images = None
        if encoder.config.modality != "text":
            from spatial_probing.data import open_image

            opened: dict[str | None, Any] = {}
            for e in examples:  # each distinct image is opened (or rendered) once
                if e.image not in opened:
                    opened[e.image] = open_image(e, image_dir)
            images = [opened[e.image] for e in examples]
        if isinstance(encoder, LexicalEncoder):
            computed = encoder.encode_examples(examples, layers=missing, show_progress=show_progress)
        else:
            computed = encoder.encode(texts, images, layers=missing, show_progress=show_progress)
        if cache is not None:
            result.update(save_embeddings(cache, encoder, fp, ih, examples, {k: computed[k] for k in missing}))
        else:
            result.update(computed)
    return {layer: result[layer] for layer in wanted}
