"""Fetch the upstream benchmark files into ``DIR/<dataset>/`` in the layout the loaders read.

Sources are pinned to the upstream commits this toolkit was developed against, so a
download reproduces the same data. Offline, the first request fails fast with a message
saying what could not be reached and where to put manually downloaded files.

Not every archive can be fetched by a plain HTTP request: ARO and What'sUp live on Google Drive,
and the COCO / Visual Genome images are large archives. :data:`MANUAL_SOURCES` lists where each lives
and where it goes; ``data download NAME`` prints them, and verifies SHA-256 checksums of files present
(SugarCrepe's are pinned here; others when given with ``--sha256 FILE=HEX``).
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
from spatial_probing.io import atomic_path, sha256_bytes, sha256_file

VSR_BASE = "https://raw.githubusercontent.com/cambridgeltl/visual-spatial-reasoning/b27a0af0ee1462d2b6b92c8c83e869d9254a241a"
STEPGAME_BASE = "https://raw.githubusercontent.com/ZhengxiangShi/StepGame/5e6aff1563a6d7f46ee1f1aeff98b94e68c29005/Dataset"
SPARTQA_ZIP = "https://www.cse.msu.edu/~kordjams/data/SpartQA_Human.zip"
SUGARCREPE_BASE = "https://raw.githubusercontent.com/RAIVNLab/sugar-crepe/0047054b243992f0fad63d6f64f7544862daf846"
#: SHA-256 of SugarCrepe's files at the pinned commit (as in ``../shared/data/sugarcrepe``), checked after download.
SUGARCREPE_SHA256 = {
    "add_att.json": "012d88d729693d193760e6f3393b06a1cf874380a9db0062e937201199fe044d",
    "add_obj.json": "1b9d76b93139a937b8dc1ada92a4f05ecc821bb3c291d752428bafadd4bb0682",
    "replace_att.json": "9fe55fd4c0a9ad1f85d486d9f6d0215b41f867eb025026e7f7b5ce44352545ee",
    "replace_obj.json": "9d299600639947e9d15281a9ded1382b376cf4ea088a8d08a1314bfe76e81898",
    "replace_rel.json": "356bcc2fc4c6aed3f4d9fd50acc58489bb1fe70c28791f9368d4cbf9ea39cdc9",
    "swap_att.json": "7a7ce04e5c4c80412b48c6f0c1347fb1a2f5d54c0be6aa429b64d390e442f8d0",
    "swap_obj.json": "073cdb8e253d053614e80710834d9773b09dbc1dd0a412f6f9492262caa1dcad",
}
_GDRIVE = "https://drive.google.com/uc?id="


@dataclass(frozen=True)
class ManualSource:
    """An archive fetched by hand (Google Drive, large image zips): what it is, where it lives, where it goes."""

    what: str
    url: str
    dest: str


#: Per dataset, the archives ``data download`` cannot fetch itself (Google Drive ids from the authors' loaders:
#: mertyg/vision-language-models-are-bows and amitakamath/whatsup_vlms, ``dataset_zoo/aro_datasets.py``).
MANUAL_SOURCES: dict[str, list[ManualSource]] = {
    "sugarcrepe": [ManualSource("COCO val2017 images (image-text matching only)",
                                "http://images.cocodataset.org/zips/val2017.zip", "coco/val2017/")],
    "aro": [ManualSource("VG-Relation annotations visual_genome_relation.json", _GDRIVE + "1kX2iCHEv0CADL8dSO1nMdW-V0NqIAiP3",
                         "aro/visual_genome_relation.json"),
            ManualSource("VG-Relation/VG-Attribution images vgr_vga_images.zip (unzip here)",
                         _GDRIVE + "1qaPlrwhGNMrR3a11iopZUT_GPP_LrgP9", "aro/images/")],
    "whatsup": [
        ManualSource("Controlled-A annotations", _GDRIVE + "1ap8mmmpQjLIjPGuplkpBgc1hoEHCj4hm",
                     "whatsup/controlled_images_dataset.json"),
        ManualSource("Controlled-A images controlled_images.tar.gz (untar here)",
                     _GDRIVE + "19KGYVQjrV3syb00GgcavB2nZTW5NXX0H", "whatsup/controlled_images/"),
        ManualSource("Controlled-B annotations", _GDRIVE + "1unNNosLbdy9NDjgj4l8fsQP3WiAAGA6z",
                     "whatsup/controlled_clevr_dataset.json"),
        ManualSource("Controlled-B images controlled_clevr.tar.gz (untar here)",
                     _GDRIVE + "13jdBpg8t3NqW3jrL6FK8HO93vwsUjDxG", "whatsup/controlled_clevr/"),
        ManualSource("COCO-spatial one-object", _GDRIVE + "1RsMdpE9mmwnK4zzMPpC1-wTU_hNis-dq",
                     "whatsup/coco_qa_one_obj.json"),
        ManualSource("COCO-spatial two-object", _GDRIVE + "1TCEoM0mgFmz8T4cF7PQ3XJmO6JjtiQ-s",
                     "whatsup/coco_qa_two_obj.json"),
        ManualSource("COCO val2017 images", "http://images.cocodataset.org/zips/val2017.zip", "whatsup/val2017/"),
        ManualSource("GQA-spatial one-object", _GDRIVE + "1ARMRzRdohs9QTr1gpIfzyUzvW20wYp_p",
                     "whatsup/vg_qa_one_obj.json"),
        ManualSource("GQA-spatial two-object", _GDRIVE + "1sjVG5O3QMY8s118k7kQM8zzDZH12i_95",
                     "whatsup/vg_qa_two_obj.json"),
        ManualSource("Visual Genome images vg_images.tar.gz (untar here)", _GDRIVE + "1idW7Buoz7fQm4-670n-oERw9U-2JLJvE",
                     "whatsup/vg_images/")],
}
#: The datasets ``data download`` knows (fetched, or listed for manual download).
DOWNLOADABLE = ("vsr", "stepgame", "spartqa", "sugarcrepe", "aro", "whatsup")
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
    if name == "sugarcrepe":
        base = base_url or SUGARCREPE_BASE
        return [Download(f"{base}/data/{f}", f"sugarcrepe/{f}") for f in SUGARCREPE_SHA256]
    if name in ("aro", "whatsup"):
        return []  # Google Drive only: see MANUAL_SOURCES
    raise DataError(f"unknown dataset {name!r} to download; expected one of {', '.join(DOWNLOADABLE)}")


def sources(name: str, *, base_url: str | None = None) -> list[str]:
    """Where every file of ``name`` lives, one line each: fetched URLs, then archives to fetch by hand."""
    lines = [f"fetched: {d.url} -> DIR/{d.dest}" for d in plan(name, base_url=base_url)]
    return lines + [f"by hand: {m.what}: {m.url} -> DIR/{m.dest}" for m in MANUAL_SOURCES.get(name, [])]


def verify_checksums(folder: str | Path, checksums: dict[str, str]) -> list[Path]:
    """Check ``{file relative to folder: sha256 hex}``; a missing file or a mismatch is a DataError naming it."""
    checked = []
    for rel, expected in checksums.items():
        path = Path(folder) / rel
        if not path.is_file():
            raise DataError(f"file not found; a checksum was given for it (expected sha256 {expected})", path=path)
        got = sha256_file(path)
        if got != expected.strip().lower():
            raise DataError(f"checksum mismatch: expected sha256 {expected}, got {got}; the file is corrupt or "
                            f"another version (re-download it with --overwrite)", path=path)
        checked.append(path)
    return checked


def _fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:  # noqa: S310 (fixed upstream URLs)
            return resp.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"cannot download {url}: {reason}. If this machine is offline, fetch the files "
                        f"elsewhere and pass their folder with --data-dir") from None


def download(name: str, to: str | Path, *, base_url: str | None = None, overwrite: bool = False,
             checksums: dict[str, str] | None = None, show_progress: bool = True) -> list[Path]:
    """Download dataset ``name`` into ``to``; existing files are kept unless ``overwrite``.

    Each file is written atomically, so an interrupted download resumes where it stopped. ``checksums``
    (file relative to ``to/<name>/`` → sha256) are verified afterwards, also for files placed by hand;
    SugarCrepe's pinned checksums are verified for the files fetched from the pinned upstream.
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
        expected = SUGARCREPE_SHA256.get(dest.name) if name == "sugarcrepe" and base_url is None else None
        if expected is not None and sha256_bytes(data) != expected:
            raise DataError(f"{item.url}: checksum mismatch (expected sha256 {expected}); not written")
        with atomic_path(dest) as tmp:
            tmp.write_bytes(data)
        written.append(dest)
    verify_checksums(root / name, checksums or {})
    return written
