"""Counts that describe a loaded dataset: per split, label, relation, meta-category and hop count."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from spatial_probing.data.schema import Example


def _counts(values: list[Any]) -> dict[str, int]:
    c = Counter(v for v in values if v is not None)
    return {str(k): c[k] for k in sorted(c, key=lambda x: (str(type(x)), x))}


def image_counts(examples: list[Example], image_dir: Path | None) -> dict[str, int]:
    """How many distinct file images are present in ``image_dir`` (synthetic scenes always render)."""
    files = {e.image for e in examples if e.image and not e.image.startswith("synthetic:")}
    present = {f for f in files if image_dir is not None and (Path(image_dir) / f).is_file()}
    return {"distinct": len(files), "present": len(present), "missing": len(files) - len(present)}


def summarize(examples: list[Example], image_dir: Path | None = None) -> dict[str, Any]:
    """Summary of one set of examples as a JSON-ready dict."""
    return {
        "images": image_counts(examples, image_dir),
        "total": len(examples),
        "splits": _counts([e.split for e in examples]),
        "n_relations": len({e.relation for e in examples if e.relation is not None}),
        "n_categories": len({e.category for e in examples if e.category is not None}),
        "per_truth_label": _counts([int(e.truth) if e.truth is not None else None for e in examples]),
        "per_answer": _counts([e.answer for e in examples]),
        "per_relation": _counts([e.relation for e in examples]),
        "per_category": _counts([e.category for e in examples]),
        "per_k": _counts([e.k for e in examples]),
        "per_split_k": _counts([f"{e.split}/k{e.k}" if e.k is not None else None for e in examples]),
        "per_question_type": _counts([e.question_type for e in examples]),
        "per_variant": _counts([e.variant for e in examples]),
    }
