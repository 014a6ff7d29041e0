"""What'sUp (Kamath, Hessel and Chang, EMNLP 2023): one image, captions that differ only in the preposition.

Upstream files (layout as read by ``Controlled_Images``, ``COCO_QA`` and ``VG_QA`` in
github amitakamath/whatsup_vlms @ 447c169d, ``dataset_zoo/aro_datasets.py``; the first caption option
is always the true one):

* Controlled-A ``controlled_images_dataset.json`` and Controlled-B ``controlled_clevr_dataset.json``:
  a JSON list of ``{"image_path": "data/controlled_images/<obj1>_<prep>_<obj2>.jpeg", "caption_options":
  [four captions]}`` (4-way: left of / right of / on / under, or … / in front of / behind); images in
  ``controlled_images/`` and ``controlled_clevr/``.
* COCO-spatial ``coco_qa_{one,two}_obj.json`` and GQA-spatial ``vg_qa_{one,two}_obj.json``: a JSON list of
  ``[image_id, true_caption, false_caption]`` (2-way); images ``val2017/<id, 12 digits>.jpg`` and
  ``vg_images/<id>.jpg``.

The files are on Google Drive, not on the hub (see ``spatial-probing data download whatsup``). Each
item becomes one :class:`Example` per option (``truth`` for the first), ``relation`` the preposition the
option states, ``category`` the subset, ``group`` the image, ``origin`` ``file#index``; ``image`` is
relative to the ``whatsup`` folder, the default image directory for image–text matching.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spatial_probing.data._choice import choice_examples
from spatial_probing.data._read import LoadReport, field_of, load_json, require_file
from spatial_probing.data.errors import DataError
from spatial_probing.data.paths import resolve_dataset_dir
from spatial_probing.data.schema import Example

#: Subset → (annotation file, image folder, record layout).
SUBSETS: dict[str, tuple[str, str, str]] = {
    "controlled_a": ("controlled_images_dataset.json", "controlled_images", "options"),
    "controlled_b": ("controlled_clevr_dataset.json", "controlled_clevr", "options"),
    "coco_one": ("coco_qa_one_obj.json", "val2017", "triple"),
    "coco_two": ("coco_qa_two_obj.json", "val2017", "triple"),
    "gqa_one": ("vg_qa_one_obj.json", "vg_images", "triple"),
    "gqa_two": ("vg_qa_two_obj.json", "vg_images", "triple"),
}
#: Preposition phrases in order of priority: longer phrases first ("to the left of" over "left"), and the
#: one-object captions' final word ("a dog on the left") over the "on" before it.
_PREPOSITIONS = ("to the left of", "to the right of", "in front of", "on top of", "left of", "right of", "behind",
                 "under", "above", "below", "left", "right", "top", "bottom", "on")
_PREP_RES = [(p, re.compile(rf"\b{re.escape(p)}\b", re.IGNORECASE)) for p in _PREPOSITIONS]
_PREP_RE = re.compile(r"\b(" + "|".join(re.escape(p) for p in _PREPOSITIONS) + r")\b", re.IGNORECASE)


def preposition(text: str) -> str | None:
    """The spatial preposition a What'sUp caption states (``"left of"``, ``"on"``, ``"top"`` …), or None."""
    for phrase, pattern in _PREP_RES:
        if pattern.search(text):
            return phrase.removeprefix("to the ")
    return None


def _without_preposition(text: str) -> str:
    return " ".join(_PREP_RE.sub(" ", text.lower()).replace(" the ", " ").split())


def _controlled(rec: Any, path: Path, index: int, folder: str) -> tuple[list[str], str, dict[str, Any], tuple]:
    where = str(index)
    if not isinstance(rec, dict):
        raise DataError(f"record {where}: expected an object with image_path and caption_options, got "
                        f"{type(rec).__name__}", path=path)
    image_path = field_of(rec, "image_path", str, path=path, record=where)
    options = field_of(rec, "caption_options", list, path=path, record=where)
    if len(options) < 2 or not all(isinstance(o, str) and o.strip() for o in options):
        raise DataError(f"record {where}: expected a list of ≥ 2 non-empty caption strings, got {options!r:.80}",
                        path=path, key="caption_options")
    name = Path(image_path).name
    parts = Path(name).stem.split("_")
    subj = obj = None
    if len(parts) >= 3:  # <obj1>_<prep...>_<obj2>.jpeg
        subj, obj = parts[0].replace("-", " "), parts[-1].replace("-", " ")
    return [o.strip() for o in options], f"{folder}/{name}", rec, (subj, obj)


def _triple(rec: Any, path: Path, index: int, folder: str) -> tuple[list[str], str, dict[str, Any], tuple]:
    if not isinstance(rec, list) or len(rec) != 3:
        raise DataError(f"record {index}: expected [image_id, true_caption, false_caption], got {rec!r:.80}", path=path)
    image_id, true, false = rec
    if not isinstance(image_id, (int, str)) or isinstance(image_id, bool):
        raise DataError(f"record {index}: expected an image id (int or str) at position 0, got {image_id!r}",
                        path=path, key="[0] image_id")
    for pos, text in ((1, true), (2, false)):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"record {index}: expected a non-empty caption at position {pos}, got {text!r:.60}",
                            path=path, key=f"[{pos}] caption")
    name = f"{int(image_id):012d}.jpg" if folder == "val2017" else f"{image_id}.jpg"
    source = {"image_id": image_id, "true_caption": true, "false_caption": false}
    return [true.strip(), false.strip()], f"{folder}/{name}", source, (None, None)


def _subsets(variant: str | Sequence[str] | None, root: Path, report: LoadReport) -> list[str]:
    if variant is None:
        present = [s for s, (f, _, _) in SUBSETS.items() if (root / f).is_file()]
        if not present:
            raise DataError(f"no What'sUp files; expected some of {[f for f, _, _ in SUBSETS.values()]}", path=root)
        absent = [s for s in SUBSETS if s not in present]
        if absent:
            report.note(f"What'sUp: {len(absent)} subset(s) absent and not loaded: {', '.join(absent)}")
        return present
    wanted = [variant] if isinstance(variant, str) else list(variant)
    bad = [s for s in wanted if s not in SUBSETS]
    if bad:
        raise DataError(f"unknown What'sUp subset(s) {bad}; expected some of {list(SUBSETS)}")
    return wanted


def load_whatsup(data_dir: str | Path | None = None, *, variant: str | Sequence[str] | None = None,
                 split: str | None = None, skip_invalid: bool = False,
                 report: LoadReport | None = None) -> list[Example]:
    """Load What'sUp subset(s) ``variant`` (default: every file present), one record per caption option."""
    if split not in (None, "test"):
        raise DataError(f"What'sUp has one split, 'test' (an evaluation set); got split={split!r}")
    report = report if report is not None else LoadReport()
    root = resolve_dataset_dir(data_dir, "whatsup", "")
    out: list[Example] = []
    for subset in _subsets(variant, root, report):
        file, folder, layout = SUBSETS[subset]
        path = require_file(root / file, f"What'sUp {subset}: a JSON list of "
                                         + ("{image_path, caption_options}" if layout == "options"
                                            else "[image_id, true_caption, false_caption]"))
        data = load_json(path, report)
        if not isinstance(data, list) or not data:
            raise DataError("expected a non-empty JSON list of records", path=path)
        not_minimal = 0
        for i, rec in enumerate(data):
            try:
                options, image, source, (subj, obj) = (_controlled if layout == "options" else _triple)(
                    rec, path, i, folder)
            except DataError as err:
                if not skip_invalid:
                    raise
                report.skip(path, err)
                continue
            not_minimal += len({_without_preposition(o) for o in options}) > 1
            out.extend(choice_examples(dataset="whatsup", item_id=f"whatsup/{subset}/{i}", options=options,
                                       correct=0, image=image, group=f"image:{image}", origin=f"{path}#{i}",
                                       source=source, category=subset, relations=[preposition(o) for o in options],
                                       subject=subj, object=obj))
        if not_minimal:
            report.note(f"What'sUp {subset}: in {not_minimal} item(s) the options differ in more than the "
                        f"preposition (articles ignored); they are kept")
    report.warn_skipped()
    return out
