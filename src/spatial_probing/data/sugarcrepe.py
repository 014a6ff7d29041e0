"""SugarCrepe (Hsieh et al., NeurIPS 2023): a true COCO caption and one hard negative per item.

Upstream layout (github RAIVNLab/sugar-crepe @ 0047054b, folder ``data/``): one JSON file per change
type (``replace_rel.json``, ``swap_obj.json``, …), each an object keyed by item id ("0", "1", …) whose
values are ``{"filename": "<COCO val2017 image>", "caption": "...", "negative_caption": "..."}``.

Each item becomes two :class:`Example` records (``variant`` ``true``/``negative``, one ``pair_id``),
``category`` is the change type and ``group`` the COCO image, so the pairs of one image cluster.
``origin`` is ``file#key``. The images are COCO val2017 (``image`` = the file name; pass the val2017
folder as the image directory for image–text matching).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from spatial_probing.data._choice import caption, choice_examples
from spatial_probing.data._read import LoadReport, field_of, load_json, require_file
from spatial_probing.data.errors import DataError
from spatial_probing.data.paths import resolve_dataset_dir
from spatial_probing.data.schema import Example

#: The seven change types (file stems) of SugarCrepe; the first three change relations or argument order.
CHANGES = ("replace_rel", "swap_obj", "swap_att", "replace_obj", "replace_att", "add_obj", "add_att")
#: The change types whose negative keeps the words or the objects and changes a relation or who-does-what.
SPATIAL_CHANGES = ("replace_rel", "swap_obj", "swap_att")


def _changes(variant: str | Sequence[str] | None, root: Path, report: LoadReport) -> list[str]:
    if variant is None:
        present = [c for c in CHANGES if (root / f"{c}.json").is_file()]
        absent = [c for c in CHANGES if c not in present]
        if not present:
            raise DataError(f"no SugarCrepe files; expected some of {[c + '.json' for c in CHANGES]}", path=root)
        if absent:
            report.note(f"SugarCrepe: {len(absent)} change type(s) absent and not loaded: {', '.join(absent)}")
        return present
    wanted = [variant] if isinstance(variant, str) else list(variant)
    bad = [c for c in wanted if c not in CHANGES]
    if bad:
        raise DataError(f"unknown SugarCrepe change type(s) {bad}; expected some of {list(CHANGES)}")
    return wanted


def load_sugarcrepe(data_dir: str | Path | None = None, *, variant: str | Sequence[str] | None = None,
                    split: str | None = None, skip_invalid: bool = False,
                    report: LoadReport | None = None) -> list[Example]:
    """Load SugarCrepe change type(s) ``variant`` (default: every file present) as true/negative records."""
    if split not in (None, "test"):
        raise DataError(f"SugarCrepe has one split, 'test' (an evaluation set); got split={split!r}")
    report = report if report is not None else LoadReport()
    root = resolve_dataset_dir(data_dir, "sugarcrepe", "swap_obj.json")
    out: list[Example] = []
    for change in _changes(variant, root, report):
        path = require_file(root / f"{change}.json", f"SugarCrepe's {change}.json (an object keyed by item id)")
        data = load_json(path, report)
        if not isinstance(data, dict) or not data:
            raise DataError("expected a non-empty JSON object keyed '0', '1', ... of {filename, caption, "
                            "negative_caption}", path=path)
        for key, rec in data.items():
            try:
                if not isinstance(rec, dict):
                    raise DataError(f"record {key!r}: expected an object with filename, caption, negative_caption, "
                                    f"got {type(rec).__name__}", path=path)
                image = field_of(rec, "filename", str, path=path, record=key).strip()
                true, negative = (caption(rec, k, path=path, record=key) for k in ("caption", "negative_caption"))
            except DataError as err:
                if not skip_invalid:
                    raise
                report.skip(path, err)
                continue
            out.extend(choice_examples(dataset="sugarcrepe", item_id=f"sugarcrepe/{change}/{key}",
                                       options=[true, negative], correct=0, image=image, group=f"image:{image}",
                                       origin=f"{path}#{key}", source=rec, category=change))
    report.warn_skipped()
    return out
