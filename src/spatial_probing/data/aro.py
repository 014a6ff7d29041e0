"""ARO VG-Relation (Yuksekgonul et al., ICLR 2023): a Visual Genome image crop, a true caption and its
argument-swapped false caption ("the horse is eating the grass" / "the grass is eating the horse").

Upstream file ``visual_genome_relation.json`` (layout as read by ``VG_Relation`` in
github mertyg/vision-language-models-are-bows @ 09e1fcff, ``dataset_zoo/aro_datasets.py``): a JSON list
of records with ``image_path`` (file name under the ``images/`` folder), ``true_caption``,
``false_caption``, ``relation_name`` and the crop ``bbox_x``, ``bbox_y``, ``bbox_w``, ``bbox_h`` (the
upstream evaluation crops the image to this box). ``image_id``, ``subj`` and ``obj`` are read when
present. The archive is on Google Drive, not on the hub (see ``spatial-probing data download aro``).

Each record becomes two :class:`Example` records (``true``/``negative``), ``relation`` the relation
name, ``group`` the image, ``origin`` ``file#index``; ``image`` is ``images/<image_path>`` relative to
the ``aro`` folder, which is the default image directory for image–text matching.
"""

from __future__ import annotations

from pathlib import Path

from spatial_probing.data._choice import caption, choice_examples
from spatial_probing.data._read import LoadReport, field_of, load_json, require_file
from spatial_probing.data.errors import DataError
from spatial_probing.data.paths import resolve_dataset_dir
from spatial_probing.data.schema import Example

ANNOTATION_FILE = "visual_genome_relation.json"
IMAGE_FOLDER = "images"
BBOX_FIELDS = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")


def load_aro(data_dir: str | Path | None = None, *, variant: str | None = None, split: str | None = None,
             skip_invalid: bool = False, report: LoadReport | None = None) -> list[Example]:
    """Load ARO VG-Relation as true/negative caption records (``variant``: only ``vg_relation``)."""
    if variant not in (None, "vg_relation"):
        raise DataError(f"unknown ARO variant {variant!r}; expected 'vg_relation' (VG-Attribution, COCO/Flickr "
                        f"order are not spatial and not loaded)")
    if split not in (None, "test"):
        raise DataError(f"ARO has one split, 'test' (an evaluation set); got split={split!r}")
    report = report if report is not None else LoadReport()
    root = resolve_dataset_dir(data_dir, "aro", ANNOTATION_FILE)
    path = require_file(root / ANNOTATION_FILE, "ARO's JSON list of {image_path, true_caption, false_caption, "
                                               "relation_name, bbox_x, bbox_y, bbox_w, bbox_h}")
    data = load_json(path, report)
    if not isinstance(data, list) or not data:
        raise DataError("expected a non-empty JSON list of records", path=path)
    out: list[Example] = []
    for i, rec in enumerate(data):
        where = str(i)
        try:
            if not isinstance(rec, dict):
                raise DataError(f"record {where}: expected an object, got {type(rec).__name__}", path=path)
            image = field_of(rec, "image_path", str, path=path, record=where).strip()
            true, false = (caption(rec, k, path=path, record=where) for k in ("true_caption", "false_caption"))
            relation = field_of(rec, "relation_name", str, path=path, record=where).strip()
            for key in BBOX_FIELDS:
                if field_of(rec, key, (int, float), path=path, record=where) < 0:
                    raise DataError(f"record {where}: expected a non-negative number", path=path, key=key)
        except DataError as err:
            if not skip_invalid:
                raise
            report.skip(path, err)
            continue
        group = f"image:{rec.get('image_id', image)}"
        subj, obj = rec.get("subj"), rec.get("obj")
        out.extend(choice_examples(dataset="aro", item_id=f"aro/vg_relation/{i}", options=[true, false], correct=0,
                                   image=f"{IMAGE_FOLDER}/{image}", group=group, origin=f"{path}#{i}", source=rec,
                                   category="vg_relation", relations=[relation, relation],
                                   subject=subj if isinstance(subj, str) else None,
                                   object=obj if isinstance(obj, str) else None))
    report.warn_skipped()
    return out
