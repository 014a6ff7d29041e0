"""Writers of small caption-choice files in the exact upstream formats (SugarCrepe, ARO VG-Relation, What'sUp).

Layouts copied from:
* SugarCrepe: github RAIVNLab/sugar-crepe @ 0047054b243992f0fad63d6f64f7544862daf846, ``data/swap_obj.json`` etc.
  (an object keyed "0", "1", … of ``{filename, caption, negative_caption}``; as in ../shared/data/sugarcrepe).
* ARO: github mertyg/vision-language-models-are-bows @ 09e1fcffea60b7e8f31f93cb0844b344af1d0642,
  ``dataset_zoo/aro_datasets.py`` (``VG_Relation`` reads ``image_path``, ``true_caption``, ``false_caption``,
  ``relation_name``, ``bbox_x/y/w/h`` from the list in ``visual_genome_relation.json``; ``image_id``, ``subj``,
  ``obj`` are further fields of the released records).
* What'sUp: github amitakamath/whatsup_vlms @ 447c169df27233bc78da8213460e40719eb20d50,
  ``dataset_zoo/aro_datasets.py`` (``Controlled_Images``: list of ``{image_path, caption_options}`` with
  ``image_path`` ``data/controlled_images/<obj1>_<prep>_<obj2>.jpeg``; ``COCO_QA``/``VG_QA``: list of
  ``[image_id, true_caption, false_caption]``; the first option is always the true one).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SUGARCREPE = {
    "swap_obj": {
        "0": {"filename": "000000000001.jpg", "caption": "A dog chases a cat.", "negative_caption": "A cat chases a dog."},
        "1": {"filename": "000000000001.jpg", "caption": "A man is left of a tree.",
              "negative_caption": "A tree is left of a man."},
        "2": {"filename": "000000000002.jpg", "caption": "The cup is on the table.",
              "negative_caption": "The table is on the cup."},
    },
    "replace_rel": {
        "0": {"filename": "000000000003.jpg", "caption": "A bird sits on a pole.",
              "negative_caption": "A bird sits behind a pole."},
        "1": {"filename": "000000000004.jpg", "caption": "A car is parked near a house.",
              "negative_caption": "A car is parked inside a house."},
    },
    "swap_att": {
        "0": {"filename": "000000000005.jpg", "caption": "A red car and a blue bus.",
              "negative_caption": "A blue car and a red bus."},
    },
}

ARO = [
    {"image_id": "2315375", "relation_name": "is holding", "true_caption": "the man is holding the racket",
     "false_caption": "the racket is holding the man", "image_path": "2315375.jpg", "bbox_x": 2, "bbox_y": 1,
     "bbox_w": 20, "bbox_h": 18, "subj": "man", "obj": "racket"},
    {"image_id": "2315375", "relation_name": "is on", "true_caption": "the cup is on the table",
     "false_caption": "the table is on the cup", "image_path": "2315375.jpg", "bbox_x": 0, "bbox_y": 0,
     "bbox_w": 30, "bbox_h": 30, "subj": "cup", "obj": "table"},
    {"image_id": "2400001", "relation_name": "is on", "true_caption": "the book is on the shelf",
     "false_caption": "the shelf is on the book", "image_path": "2400001.jpg", "bbox_x": 4, "bbox_y": 4,
     "bbox_w": 16, "bbox_h": 16, "subj": "book", "obj": "shelf"},
]


def _controlled(a: str, b: str, prep: str, folder: str) -> dict:
    words = {"left_of": "to the left of", "right_of": "to the right of", "on": "on", "under": "under"}
    options = [words[prep]] + [w for p, w in words.items() if p != prep]
    an, bn = a.replace("-", " "), b.replace("-", " ")
    return {"image_path": f"data/{folder}/{a}_{prep}_{b}.jpeg",
            "caption_options": [f"A {an} {o} a {bn}" for o in options]}


WHATSUP = {
    "controlled_images_dataset.json": [_controlled("beer-bottle", "armchair", p, "controlled_images")
                                       for p in ("on", "under", "left_of", "right_of")],
    "coco_qa_one_obj.json": [[397133, "A photo of a dog on the left", "A photo of a dog on the right"],
                             [37777, "A photo of a cup on the top", "A photo of a cup on the bottom"]],
    "vg_qa_two_obj.json": [[2417, "A cat to the left of a dog", "A cat to the right of a dog"]],
}


def write_sugarcrepe(root: Path, data: dict | None = None) -> Path:
    folder = root / "sugarcrepe"
    folder.mkdir(parents=True, exist_ok=True)
    for change, items in (data or SUGARCREPE).items():
        (folder / f"{change}.json").write_text(json.dumps(items, indent=4))
    return root


def write_aro(root: Path, records: list | None = None) -> Path:
    (root / "aro").mkdir(parents=True, exist_ok=True)
    (root / "aro" / "visual_genome_relation.json").write_text(json.dumps(ARO if records is None else records))
    return root


def write_whatsup(root: Path, files: dict | None = None) -> Path:
    (root / "whatsup").mkdir(parents=True, exist_ok=True)
    for name, records in (files or WHATSUP).items():
        (root / "whatsup" / name).write_text(json.dumps(records))
    return root


def write_png(path: Path, seed: int, size: int = 40) -> Path:
    """A small random RGB PNG (a stand-in for a COCO / Visual Genome image)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path
