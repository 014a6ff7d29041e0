"""VSR (Visual Spatial Reasoning, Liu et al. 2023): captions about COCO images, 66 relations.

Upstream layout (github cambridgeltl/visual-spatial-reasoning): ``splits/{random,zeroshot}/
{train,dev,test}.jsonl`` and ``rel_meta_category_dict.txt``. Two upstream oddities are
handled by documented rules, each announced with a :class:`DataWarning`:

* ``among`` is listed under two meta-categories (Topological and Unallocated): the
  **first listing wins** (Topological), as in the file's reading order.
* ``congruent`` is used in the splits but listed under no category: it is assigned to
  **Unallocated**, the category VSR reserves for relations it did not place.
"""

from __future__ import annotations

import re
from pathlib import Path

from spatial_probing.data._read import LoadReport, field_of, iter_jsonl, require_file
from spatial_probing.data.errors import DataError
from spatial_probing.data.paths import resolve_dataset_dir
from spatial_probing.data.schema import Example

VARIANTS = ("random", "zeroshot")
SPLITS = ("train", "dev", "test")
CATEGORY_FILE = "rel_meta_category_dict.txt"
#: Relations used in the splits but absent from the category file, and where they go.
UNLISTED_RELATIONS = {"congruent": "Unallocated"}


def read_categories(path: Path, report: LoadReport) -> dict[str, str]:
    """Parse ``Category: rel, rel, ...`` lines into relation → meta-category (first listing wins)."""
    require_file(path, "lines 'Category: relation, relation, ...'")
    report.files.append(str(path))
    mapping: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if ":" not in line:
            raise DataError("expected 'Category: relation, relation, ...'", path=path, line=lineno)
        category, rels = (s.strip() for s in line.split(":", 1))
        for rel in (r.strip() for r in rels.split(",")):
            if not rel:
                continue
            if rel in mapping and mapping[rel] != category:
                report.note(f"{path.name}: relation {rel!r} is listed under both {mapping[rel]!r} and "
                            f"{category!r}; rule: the first listing wins ({mapping[rel]!r})")
                continue
            mapping[rel] = category
    if not mapping:
        raise DataError("no relations found; expected 'Category: relation, ...' lines", path=path)
    for rel, category in UNLISTED_RELATIONS.items():
        mapping.setdefault(rel, category)
    return mapping


_ARTICLE = re.compile(r"^(the|a|an)\s+", re.IGNORECASE)
_COPULA = re.compile(r"\s+(is|are)(\s+(not))?$", re.IGNORECASE)


def parse_arguments(caption: str, relation: str) -> tuple[str | None, str | None]:
    """Split ``"The cat is inside the fridge."`` into ``("cat", "fridge")`` around the relation.

    Returns ``(None, None)`` when the relation phrase is not found verbatim in the caption.
    """
    m = re.search(rf"\b{re.escape(relation)}\b", caption, flags=re.IGNORECASE)
    if m is None:
        return None, None
    head = _COPULA.sub("", caption[: m.start()].strip())
    tail = caption[m.end():].strip().rstrip(".").strip()
    subject = _ARTICLE.sub("", head).strip().lower() or None
    obj = _ARTICLE.sub("", tail).strip().lower() or None
    return subject, obj


def load_vsr(data_dir: str | Path | None = None, *, variant: str = "random", split: str | None = None,
             skip_invalid: bool = False, report: LoadReport | None = None) -> list[Example]:
    """Load VSR ``variant`` (``random`` or ``zeroshot``), one split or all three."""
    if variant not in VARIANTS:
        raise DataError(f"unknown VSR variant {variant!r}; expected one of {VARIANTS}")
    splits = SPLITS if split is None else (split,)
    if any(s not in SPLITS for s in splits):
        raise DataError(f"unknown VSR split {split!r}; expected one of {SPLITS}")
    report = report if report is not None else LoadReport()
    root = resolve_dataset_dir(data_dir, "vsr", "splits")
    categories = read_categories(root / CATEGORY_FILE, report)
    out: list[Example] = []
    unlisted_used: dict[str, int] = {}
    unparsed = 0
    for s in splits:
        path = require_file(root / "splits" / variant / f"{s}.jsonl", "VSR JSON lines")
        for lineno, rec in iter_jsonl(path, report, skip_invalid=skip_invalid):
            try:
                caption = field_of(rec, "caption", str, path=path, line=lineno).strip()
                relation = field_of(rec, "relation", str, path=path, line=lineno).strip()
                label = field_of(rec, "label", int, path=path, line=lineno)
                image = field_of(rec, "image", str, path=path, line=lineno)
                if label not in (0, 1):
                    raise DataError(f"expected 0 or 1, got {label!r}", path=path, line=lineno, key="label")
                if relation not in categories:
                    raise DataError(f"unknown relation {relation!r}; expected one of the {len(categories)} "
                                    f"relations in {CATEGORY_FILE}", path=path, line=lineno, key="relation")
                if not caption:
                    raise DataError("empty caption", path=path, line=lineno, key="caption")
            except DataError as err:
                if not skip_invalid:
                    raise
                report.skip(path, err)
                continue
            if relation in UNLISTED_RELATIONS:
                unlisted_used[relation] = unlisted_used.get(relation, 0) + 1
            subject, obj = parse_arguments(caption, relation)
            unparsed += subject is None or obj is None
            out.append(Example(
                id=f"vsr/{variant}/{s}/{lineno}", dataset="vsr", split=s, text=caption,
                relation=relation, category=categories[relation], subject=subject, object=obj,
                truth=bool(label), image=image, group=f"image:{image}", origin=f"{path}:{lineno}", source=rec,
            ))
    for rel, n in unlisted_used.items():
        report.note(f"VSR {variant}: relation {rel!r} ({n} records) is in no category of {CATEGORY_FILE}; "
                    f"rule: assigned to {UNLISTED_RELATIONS[rel]!r}")
    if unparsed:
        report.note(f"VSR {variant}: subject/object could not be parsed from {unparsed} caption(s) "
                    f"(relation phrase not found verbatim); their subject/object are left empty")
    report.warn_skipped()
    return out
