"""Data stage: one :class:`Example` record for VSR, StepGame, SpartQA-Human, synthetic scenes, and the
caption-choice benchmarks SugarCrepe, ARO VG-Relation and What'sUp.

``load_dataset(name, ...)`` is the single entry point; datasets are registered by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from spatial_probing.data._read import DataWarning, LoadReport
from spatial_probing.data.aro import load_aro
from spatial_probing.data.errors import DataError, UnknownDatasetError
from spatial_probing.data.schema import STEPGAME_DIRECTIONS, Example
from spatial_probing.data.spartqa import load_spartqa
from spatial_probing.data.stepgame import load_stepgame
from spatial_probing.data.sugarcrepe import load_sugarcrepe
from spatial_probing.data.synthetic import RELATION_DIRECTIONS, generate, generate_converse_twins, render
from spatial_probing.data.vsr import load_vsr
from spatial_probing.data.whatsup import load_whatsup

__all__ = ["DATASETS", "DataError", "DataWarning", "Example", "LoadReport", "RELATION_DIRECTIONS",
           "STEPGAME_DIRECTIONS", "load_dataset", "open_image"]


def _synthetic(data_dir: Any = None, *, split: str | None = None, variant: str | None = None,
               n_scenes: int = 480, seed: int = 0, split_scheme: str = "random", design: str = "scenes",
               skip_invalid: bool = False, report: LoadReport | None = None) -> list[Example]:
    """Synthetic scenes need no files; ``variant`` filters caption variants (original, swapped, ...).

    ``design="converse-twins"`` gives :func:`~spatial_probing.data.synthetic.generate_converse_twins`
    (``n_scenes // 2`` twins; ``split_scheme`` does not apply).
    """
    if design == "scenes":
        examples = generate(n_scenes=n_scenes, seed=seed, split_scheme=split_scheme)  # type: ignore[arg-type]
    elif design == "converse-twins":
        examples = generate_converse_twins(n_twins=max(n_scenes // 2, 1), seed=seed)
    else:
        raise DataError(f"unknown synthetic design={design!r}; expected 'scenes' or 'converse-twins'")
    if report is not None:
        report.files.append(f"synthetic(design={design}, n_scenes={n_scenes}, seed={seed}, "
                            f"split_scheme={split_scheme})")
    return [e for e in examples if (split is None or e.split == split) and (variant is None or e.variant == variant)]


#: Dataset name → loader. Every loader takes ``data_dir`` and the keywords ``split``, ``skip_invalid``, ``report``.
DATASETS: dict[str, Callable[..., list[Example]]] = {
    "vsr": load_vsr,
    "stepgame": load_stepgame,
    "spartqa": load_spartqa,
    "synthetic": _synthetic,
    "sugarcrepe": load_sugarcrepe,
    "aro": load_aro,
    "whatsup": load_whatsup,
}


def load_dataset(name: str, *, data_dir: str | Path | None = None, split: str | None = None,
                 variant: str | None = None, skip_invalid: bool = False, report: LoadReport | None = None,
                 **kwargs: Any) -> list[Example]:
    """Load a dataset by name as a list of :class:`Example`.

    ``variant`` picks VSR's ``random``/``zeroshot`` split, StepGame's ``clean``/``noise``/
    ``train_version`` folder, or a synthetic caption variant. Other keywords go to the loader
    (``k=`` for StepGame, ``authors_filter=`` for SpartQA, ``n_scenes=``/``seed=`` for synthetic).
    """
    if name not in DATASETS:
        raise UnknownDatasetError(name, DATASETS)
    if variant is not None:
        kwargs["variant"] = variant
    return DATASETS[name](data_dir, split=split, skip_invalid=skip_invalid, report=report, **kwargs)


def open_image(example: Example, image_dir: str | Path | None = None) -> Image.Image:
    """The image an example is about: synthetic scenes are re-rendered, VSR images read from ``image_dir``."""
    if example.image is None:
        raise DataError(f"{example.id}: this example has no image")
    if example.image.startswith("synthetic:"):
        return render(example)
    if image_dir is None:
        raise DataError(f"{example.id}: image {example.image!r} needs --image-dir DIR holding the COCO-2017 "
                        f"images (file names as in the 'image' field); they are not bundled")
    path = Path(image_dir) / example.image
    if not path.is_file():
        raise DataError(f"{example.id}: image not found; expected the COCO-2017 file {example.image!r} "
                        f"(download: {example.source.get('image_link', 'http://images.cocodataset.org/')})",
                        path=path)
    return Image.open(path).convert("RGB")
