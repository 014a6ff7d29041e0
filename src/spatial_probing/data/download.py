"""Fetch the upstream benchmark files into ``DIR/<dataset>/`` in the layout the loaders read.

Sources are pinned to the upstream commits this toolkit was developed against, so a
download reproduces the same data. Offline, the first request fails fast with a message
saying what could not be reached and where to put manually downloaded files.
"""

from __future__ import annotations

import io
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from spatial_probing.data.errors import DataError
from spatial_probing.io import atomic_path

VSR_BASE = "https://raw.githubusercontent.com/cambridgeltl/visual-spatial-reasoning/b27a0af0ee1462d2b6b92c8c83e869d9254a241a"
STEPGAME_BASE = "https://raw.githubusercontent.com/ZhengxiangShi/StepGame/5e6aff1563a6d7f46ee1f1aeff98b94e68c29005/Dataset"
SPARTQA_ZIP = "https://www.cse.msu.edu/~kordjams/data/SpartQA_Human.zip"
#: Mirrors documented for users (the Hugging Face hub copies of the same data).
MIRRORS = {"vsr": "hf://datasets/cambridgeltl/vsr_random, hf://datasets/cambridgeltl/vsr_zeroshot",
           "stepgame": "hf://datasets/michaelszx/StepGame", "spartqa": SPARTQA_ZIP}
TIMEOUT_S = 15


@dataclass(frozen=True)
class Download:
    """One file to fetch: its URL and where it goes relative to ``DIR``."""

    url: str
    dest: str
    unzip: bool = False


def plan(name: str, *, base_url: str | None = None) -> list[Download]:
    """The files ``download(name)`` fetches; ``base_url`` replaces the upstream root (mirrors, tests)."""
    if name == "vsr":
        base = base_url or VSR_BASE
        files = [Download(f"{base}/data/splits/{v}/{s}.jsonl", f"vsr/splits/{v}/{s}.jsonl")
                 for v in ("random", "zeroshot") for s in ("train", "dev", "test")]
        return files + [Download(f"{base}/analysis_scripts/rel_meta_category_dict.txt",
                                 "vsr/rel_meta_category_dict.txt")]
    if name == "stepgame":
        base = base_url or STEPGAME_BASE
        return [Download(f"{base}/CompleteVersion/{v}/qa{k}_{s}.json", f"stepgame/CompleteVersion/{v}/qa{k}_{s}.json")
                for v in ("clean", "noise") for k in range(1, 11) for s in ("train", "valid", "test")]
    if name == "spartqa":
        return [Download(base_url.rstrip("/") + "/SpartQA_Human.zip" if base_url else SPARTQA_ZIP, "spartqa",
                         unzip=True)]
    raise DataError(f"unknown dataset {name!r} to download; expected one of vsr, stepgame, spartqa")


def _fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:  # noqa: S310 (fixed upstream URLs)
            return resp.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"cannot download {url}: {reason}. If this machine is offline, fetch the files "
                        f"elsewhere and pass their folder with --data-dir") from None


def download(name: str, to: str | Path, *, base_url: str | None = None, overwrite: bool = False,
             show_progress: bool = True) -> list[Path]:
    """Download dataset ``name`` into ``to``; existing files are kept unless ``overwrite``.

    Each file is written atomically, so an interrupted download resumes where it stopped.
    """
    root = Path(to)
    written: list[Path] = []
    for item in tqdm(plan(name, base_url=base_url), desc=f"download {name}", unit="file", disable=not show_progress):
        dest = root / item.dest
        if item.unzip:
            if (dest / "human_train.json").exists() and not overwrite:
                continue
            data = _fetch(item.url)
            try:
                archive = zipfile.ZipFile(io.BytesIO(data))
            except zipfile.BadZipFile:
                raise DataError(f"{item.url}: not a zip archive") from None
            dest.mkdir(parents=True, exist_ok=True)
            for member in archive.namelist():
                fname = Path(member).name
                if fname.startswith("human_") and fname.endswith(".json") and "__MACOSX" not in member:
                    with atomic_path(dest / fname) as tmp, archive.open(member) as src, open(tmp, "wb") as out:
                        shutil.copyfileobj(src, out)
                    written.append(dest / fname)
            if not (dest / "human_train.json").exists():
                raise DataError(f"{item.url}: archive holds no human_train.json")
            continue
        if dest.exists() and not overwrite:
            continue
        data = _fetch(item.url)
        with atomic_path(dest) as tmp:
            tmp.write_bytes(data)
        written.append(dest)
    return written
