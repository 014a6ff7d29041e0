"""StepGame (Shi et al. 2022): multi-hop spatial QA over 9 directions, k = 1..10 hops.

Upstream layout (github ZhengxiangShi/StepGame, ``Dataset/``):
``CompleteVersion/{clean,noise}/qa{k}_{train,valid,test}.json`` (objects keyed "0", "1", ...)
and ``TrainVersion/qa{k}_{split}.json`` plus ``TrainVersion/{train,valid,test}.jsonl``
(one object per line with ``k_hop``). In TrainVersion a split's combined ``.jsonl`` holds the
same records as its ``qa{k}_{split}.json`` files, so where it exists it wins and those files are
skipped (announced). k is taken from the file name where it has one and
from ``k_hop`` otherwise; a record whose ``k_hop`` contradicts its file name is an error.
Note: about 10% of the original labels are known to be wrong (Li, Hogg and Cohn, AAAI 2024).
The queried pair's grid offset composed along the story (scene geometry) is derived where it is used, by the RSA
``geometry`` reference (:mod:`spatial_probing.data.stepgame_geometry`), not on every load.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from spatial_probing.data._read import LoadReport, field_of, iter_jsonl, load_json, require_file
from spatial_probing.data.errors import DataError
from spatial_probing.data.paths import resolve_dataset_dir
from spatial_probing.data.schema import STEPGAME_DIRECTIONS, Example

VARIANTS = {"clean": "CompleteVersion/clean", "noise": "CompleteVersion/noise", "train_version": "TrainVersion"}
SPLITS = ("train", "valid", "test")
KS = tuple(range(1, 11))
_FILE = re.compile(r"^qa(\d+)_(train|valid|test)\.json$")
_QUESTION = re.compile(r"relation of the agent (\w+) to the agent (\w+)", re.IGNORECASE)


def direction_category(label: str) -> str:
    """Group the 9 labels: ``cardinal`` (left/right/above/below), ``diagonal``, ``overlap``."""
    dx, dy = STEPGAME_DIRECTIONS[label]
    return "overlap" if (dx, dy) == (0, 0) else "diagonal" if dx and dy else "cardinal"


def available_files(root: Path, variant: str) -> dict[tuple[int, str], Path]:
    """Map (k, split) → file for the ``qa{k}_{split}.json`` files present in a variant's folder."""
    folder = root / VARIANTS[variant]
    found: dict[tuple[int, str], Path] = {}
    if folder.is_dir():
        for p in folder.iterdir():
            m = _FILE.match(p.name)
            if m:
                found[(int(m.group(1)), m.group(2))] = p
    return found


def _example(rec: dict[str, Any], *, k: int, split: str, variant: str, path: Path, key: str,
             line: int | None) -> Example:
    record = None if line is not None else key
    story = field_of(rec, "story", (list, str), path=path, line=line, record=record)
    if isinstance(story, list) and not all(isinstance(s, str) for s in story):
        raise DataError("expected a list of sentences (strings)", path=path, line=line, key="story")
    question = field_of(rec, "question", str, path=path, line=line, record=record)
    label = field_of(rec, "label", str, path=path, line=line, record=record)
    if label not in STEPGAME_DIRECTIONS:
        where = f"record {key!r}: " if line is None else ""
        raise DataError(f"{where}unknown label {label!r}; expected one of {sorted(STEPGAME_DIRECTIONS)}",
                        path=path, line=line, key="label")
    sentences = story if isinstance(story, list) else [story]
    text = " ".join(s.strip() for s in sentences) + " " + question.strip()
    m = _QUESTION.search(question)
    uid = f"stepgame/{variant}/{split}/k{k}/{key}"
    return Example(id=uid, dataset="stepgame", split=split, text=text, relation=label,
                   category=direction_category(label), subject=m.group(1) if m else None,
                   object=m.group(2) if m else None, k=k, answer=label, group=uid,
                   origin=f"{path}:{line}" if line is not None else f"{path}#{key}", source=rec)


def _k_hop(rec: dict[str, Any], path: Path, line: int | None, key: str) -> int | None:
    if "k_hop" not in rec:
        return None
    try:
        return int(rec["k_hop"])
    except (TypeError, ValueError):
        raise DataError(f"record {key!r}: expected an integer hop count, got {rec['k_hop']!r}",
                        path=path, line=line, key="k_hop") from None


def load_stepgame(data_dir: str | Path | None = None, *, variant: str = "clean", split: str | None = None,
                  k: int | list[int] | None = None, skip_invalid: bool = False,
                  report: LoadReport | None = None) -> list[Example]:
    """Load StepGame ``variant`` for the given split(s) and hop counts (absent files are reported)."""
    if variant not in VARIANTS:
        raise DataError(f"unknown StepGame variant {variant!r}; expected one of {sorted(VARIANTS)}")
    if split is not None and split not in SPLITS:
        raise DataError(f"unknown StepGame split {split!r}; expected one of {SPLITS}")
    report = report if report is not None else LoadReport()
    root = resolve_dataset_dir(data_dir, "stepgame", "CompleteVersion")
    ks = KS if k is None else tuple([k] if isinstance(k, int) else k)
    splits = SPLITS if split is None else (split,)
    files = available_files(root, variant)
    combined = {s for s in splits if variant == "train_version" and (root / VARIANTS[variant] / f"{s}.jsonl").is_file()}
    if combined:
        report.note(f"StepGame train_version: {', '.join(sorted(combined))}.jsonl hold(s) every k; the per-k "
                    f"qa{{k}}_{{split}}.json files of those splits are not read again (no duplicates)")
        files = {key: p for key, p in files.items() if key[1] not in combined}
    if not files and variant != "train_version":
        raise DataError(f"no qa{{k}}_{{split}}.json files; expected StepGame's {VARIANTS[variant]} folder",
                        path=root / VARIANTS[variant])
    out: list[Example] = []
    missing = [f"qa{kk}_{s}" for kk in ks for s in splits if (kk, s) not in files and s not in combined]
    for (kk, s), path in sorted(files.items()):
        if kk not in ks or s not in splits:
            continue
        require_file(path, "a StepGame JSON object keyed '0', '1', ...")
        data = load_json(path, report)
        if not isinstance(data, dict) or not data:
            raise DataError("expected a non-empty JSON object keyed '0', '1', ...", path=path)
        for key, rec in data.items():
            try:
                if not isinstance(rec, dict):
                    raise DataError(f"record {key!r}: expected an object with story/question/label", path=path)
                hop = _k_hop(rec, path, None, key)
                if hop is not None and hop != kk:
                    raise DataError(f"record {key!r}: k_hop {hop} contradicts the file name (k={kk})",
                                    path=path, key="k_hop")
                out.append(_example(rec, k=kk, split=s, variant=variant, path=path, key=key, line=None))
            except DataError as err:
                if not skip_invalid:
                    raise
                report.skip(path, err)
    if variant == "train_version":
        for s in sorted(combined):
            path = root / VARIANTS[variant] / f"{s}.jsonl"
            for lineno, rec in iter_jsonl(require_file(path, "StepGame JSON lines"), report,
                                          skip_invalid=skip_invalid):
                try:
                    hop = _k_hop(rec, path, lineno, str(lineno))
                    if hop is None:
                        raise DataError("missing required field; the .jsonl files carry the hop count",
                                        path=path, line=lineno, key="k_hop")
                    if hop in ks:
                        out.append(_example(rec, k=hop, split=s, variant=variant, path=path,
                                            key=f"jsonl{lineno}", line=lineno))
                except DataError as err:
                    if not skip_invalid:
                        raise
                    report.skip(path, err)
    if missing:
        report.note(f"StepGame {variant}: {len(missing)} file(s) absent and not loaded: "
                    f"{', '.join(missing[:12])}{' ...' if len(missing) > 12 else ''}")
    if not out:
        raise DataError(f"no StepGame records for variant={variant}, split={split}, k={k}",
                        path=root / VARIANTS[variant])
    report.warn_skipped()
    return out
