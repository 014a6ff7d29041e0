"""One encoder interface over sentence-transformers, plain transformers and CLIP.

``Encoder.encode`` returns float32 arrays for any subset of layers from one forward
pass per batch. Layer keys are strings: ``"0"`` (input embeddings) … ``"L"`` (last
hidden layer), ``"final"`` (the model's own sentence embedding: SBERT's output,
CLIP's projected embedding, the pooled last layer for a plain transformer), and for
CLIP text+image ``"concat"``, ``"sum"``, ``"product"``, ``"text"``, ``"image"``.

Models are loaded lazily: configs are read at construction (so layer names, dims and
missing-model errors are known at once), weights only on the first ``encode``, so a
run that finds everything in the cache never loads a model.
"""

from __future__ import annotations

import json
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from tqdm.auto import tqdm

from spatial_probing.device import configure_threads, resolve_device
from spatial_probing.embed.config import EncoderConfig, get_encoder_config, infer_kind
from spatial_probing.embed.precision import CHECK_TEXTS, apply_precision, check_precision, faithfulness_note
from spatial_probing.embed.resolve import ModelNotFoundError, ResolvedModel, hash_model_dir, resolve_model
from spatial_probing.io import sha256_bytes

if TYPE_CHECKING:  # torch is imported where it is used: a run served from the cache never loads it
    import torch

#: Bump when the way embeddings are computed changes, so old cache entries are not reused.
EMBED_FORMAT_VERSION = 1

#: Layer keys of CLIP text+image, in order.
JOINT_LAYERS = ("concat", "sum", "product", "text", "image")

_ROBERTA_LIKE = {"roberta", "mpnet", "xlm-roberta", "camembert", "longformer"}


class EncoderInfo(BaseModel):
    """What an embedding came from (JSON-serialisable with ``model_dump()``)."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: str
    source: str
    revision: str | None
    weights_hash: str
    dim: int
    n_layers: int
    pooling: str
    modality: str
    control: str | None
    seed: int | None
    layer_dims: dict[str, int]
    precision: str = "fp32"
    kernel: str | None = None  # which kernel computed the embeddings (None: the model was not loaded)


# ---------------------------------------------------------------------------------------- helpers

def select_layers(selector: str | Sequence[str], layer_names: Sequence[str]) -> list[str]:
    """Resolve a layer selector against an encoder's layer names.

    ``"all"`` → every layer; ``"last"`` → the deepest hidden layer (``"concat"`` for text+image);
    ``"final"`` → the model's own embedding; ``"0,6,12"`` (or a list, mixing these) → those keys, in order.
    """
    names = list(layer_names)
    numeric = [n for n in names if n.isdigit()]
    aliases = {"all": names, "last": [max(numeric, key=int)] if numeric else [names[0]]}
    items = selector.split(",") if isinstance(selector, str) else [str(s) for s in selector]
    requested = [layer for item in items if item.strip()
                 for layer in aliases.get(item.strip(), [item.strip()])]
    if not requested:
        raise ValueError(f"empty layer selector {selector!r}; expected all, last, final or e.g. 0,6,12")
    unknown = [r for r in requested if r not in names]
    if unknown:
        raise ValueError(f"unknown layer(s) {', '.join(unknown)} in selector {selector!r}; this encoder has "
                         f"{', '.join(names)} (or use all / last)")
    return list(dict.fromkeys(requested))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(f"{path}: cannot read ({err}); expected a JSON config in a saved model folder") \
            from err


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """A forked RNG state seeded with ``seed``: re-initialisation never disturbs the caller's RNG."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(states.dtype).unsqueeze(-1)
    return (states * m).sum(-2) / m.sum(-2).clamp(min=1e-9)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    import torch

    return t.detach().to(device="cpu", dtype=torch.float32).numpy()


def _unique(items: Sequence[Any], key=lambda x: x) -> tuple[list[Any], np.ndarray]:
    """Distinct items in first-seen order and, per input, the index of its distinct item."""
    index: dict[Any, int] = {}
    uniq, inverse = [], np.empty(len(items), dtype=np.int64)
    for i, item in enumerate(items):
        k = key(item)
        if k not in index:
            index[k] = len(uniq)
            uniq.append(item)
        inverse[i] = index[k]
    return uniq, inverse


def _expand(arrays: dict[str, np.ndarray], inverse: np.ndarray, n_unique: int) -> dict[str, np.ndarray]:
    if n_unique == len(inverse) and np.array_equal(inverse, np.arange(n_unique)):
        return arrays
    return {k: np.ascontiguousarray(v[inverse]) for k, v in arrays.items()}


# ---------------------------------------------------------------------------------------- base class

class Encoder(ABC):
    """Encode texts and/or images into float32 arrays for any set of layers.

    Attributes:
        config: the :class:`EncoderConfig` it was built from.
        resolved: where its files are (path, source, revision).
        device: the torch device it runs on.
        batch_size: inputs per forward pass.
        n_layers: number of transformer layers (0 for the static control's single layer).
    """

    def __init__(self, config: EncoderConfig, resolved: ResolvedModel, *, device: str | torch.device,
                 batch_size: int = 32, num_threads: int | None = None, precision: str = "fp32") -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.precision, self.kernel = check_precision(precision), None
        self.config, self.resolved, self.batch_size = config, resolved, batch_size
        self._device_request, self._device, self._num_threads = device, None, num_threads
        if device not in ("auto", "cpu"):  # an explicit accelerator that is absent is an error now, not later
            _ = self.device
        self._model: Any = None
        self._weights_hash: str | None = None
        self.n_layers, self._dims = self._read_architecture()

    # -- subclass hooks
    @abstractmethod
    def _read_architecture(self) -> tuple[int, dict[str, int]]:
        """(number of layers, dims of the non-numbered layers and of ``"hidden"``) from config files only."""

    @abstractmethod
    def _load(self) -> None:
        """Load weights (and tokenizer/processor) onto ``self.device``."""

    @abstractmethod
    def _encode(self, texts: list[str] | None, images: list[Any] | None, layers: list[str],
                show_progress: bool) -> dict[str, np.ndarray]:
        """Compute ``layers`` for validated, non-empty inputs."""

    # -- public interface
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def device(self) -> torch.device:
        """The torch device it runs on, resolved (importing torch) on first use: a cached run never needs it."""
        if self._device is None:
            self._device = resolve_device(self._device_request)
            if self._device.type == "cpu":
                configure_threads(self._num_threads)
        return self._device

    @property
    def is_loaded(self) -> bool:
        """Whether the weights were loaded (False when every embedding came from the cache)."""
        return self._model is not None

    @property
    def layer_names(self) -> list[str]:
        """Every layer key this encoder can return, shallow to deep."""
        return [str(i) for i in range(self.n_layers + 1)] + ["final"]

    def layer_dim(self, layer: str) -> int:
        return self._dims[layer] if layer in self._dims else self._dims["hidden"]

    def weights_hash(self, *, memo_file: str | os.PathLike[str] | None = None) -> str:
        """SHA-256 of the model folder's files (weights, configs, tokenizer); memoised."""
        if self._weights_hash is None:
            self._weights_hash = hash_model_dir(self.resolved.path, memo_file=memo_file)
        return self._weights_hash

    @property
    def info(self) -> EncoderInfo:
        default = "final" if "final" in self.layer_names else self.layer_names[0]
        return EncoderInfo(
            name=self.config.name, kind=self.config.kind, source=self.resolved.source,
            revision=self.resolved.revision, weights_hash=self.weights_hash(), dim=self.layer_dim(default),
            n_layers=self.n_layers, pooling=self.config.pooling, modality=self.config.modality,
            control=self.config.control, seed=self.config.seed if self.config.control == "random-init" else None,
            layer_dims={n: self.layer_dim(n) for n in self.layer_names}, precision=self.precision,
            kernel=self.kernel)

    def fingerprint(self, *, memo_file: str | os.PathLike[str] | None = None) -> str:
        """Identity of the embeddings this encoder produces: weights, pooling, control, seed, library versions.

        The registry name is not part of it, so two names for the same model share a cache.
        """
        from importlib.metadata import version

        ident = {
            "format": EMBED_FORMAT_VERSION, "kind": self.config.kind, "modality": self.config.modality,
            "pooling": self.config.pooling, "control": self.config.control,
            "seed": self.config.seed if self.config.control == "random-init" else None,
            "weights": self.weights_hash(memo_file=memo_file),
            "versions": {"torch": version("torch").split("+")[0], "transformers": version("transformers"),
                         "sentence_transformers": version("sentence-transformers")},
        }
        if self.precision != "fp32":  # fp32 keys stay as they were
            ident["precision"] = self.precision
        return sha256_bytes(json.dumps(ident, sort_keys=True).encode("utf-8"))

    def load(self) -> Encoder:
        """Load the weights (once; ``encode`` does it on first use) and apply the precision; returns self."""
        if self._model is None:
            self._load()
            check = self.precision == "int8" and self.config.modality == "text"  # int8 is checked against fp32
            every = list(self.layer_names)
            reference = self._encode(list(CHECK_TEXTS), None, every, False) if check else None
            self.kernel = apply_precision(self._model, self.precision, self.device)
            if reference is not None:
                self.kernel += faithfulness_note(reference, self._encode(list(CHECK_TEXTS), None, every, False),
                                                 self.precision)
        return self

    def encode(self, texts: Sequence[str] | None = None, images: Sequence[Any] | None = None, *,
               layers: str | Sequence[str] = "all", show_progress: bool = False) -> dict[str, np.ndarray]:
        """Embed inputs: ``{layer: float32 array (n, d)}``, rows in input order, one forward pass per batch."""
        needs_text = self.config.modality in ("text", "text+image")
        needs_image = self.config.modality in ("image", "text+image")
        if needs_text != (texts is not None) or needs_image != (images is not None):
            want = {"text": "texts=", "image": "images=", "text+image": "texts= and images= (pairs)"}
            raise ValueError(f"encoder {self.name!r} ({self.config.modality}) takes {want[self.config.modality]}")
        text_list = list(texts) if texts is not None else None
        image_list = list(images) if images is not None else None
        if text_list is not None:
            for i, t in enumerate(text_list):
                if not isinstance(t, str):
                    raise TypeError(f"texts[{i}]: expected str, got {type(t).__name__}")
        if image_list is not None:
            from PIL import Image

            for i, im in enumerate(image_list):
                if not isinstance(im, Image.Image):
                    raise TypeError(f"images[{i}]: expected a PIL.Image.Image, got {type(im).__name__}")
        n = len(text_list) if text_list is not None else len(image_list or [])
        if text_list is not None and image_list is not None and len(text_list) != len(image_list):
            raise ValueError(f"text+image needs one image per text: got {len(text_list)} texts, "
                             f"{len(image_list)} images")
        if n == 0:
            raise ValueError("nothing to encode: got 0 inputs")
        wanted = select_layers(layers, self.layer_names)
        self.load()
        out = self._encode(text_list, image_list, wanted, show_progress)
        return {k: out[k] for k in wanted}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, source={self.resolved.source!r}, device={self.device})"


# ---------------------------------------------------------------------------------------- text encoders

class _TextEncoder(Encoder):
    """Shared text path: de-duplicate, sort by token length, batch, pool each layer."""

    tokenizer: Any
    max_length: int

    def _features(self, batch: list[str]) -> dict[str, Any]:
        feats = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return {k: v.to(self.device) for k, v in feats.items()}

    @abstractmethod
    def _forward(self, feats: dict[str, Any], layers: list[str]) -> dict[str, torch.Tensor]:
        """One batch → ``{layer: (b, d) tensor}``."""

    def batch_order(self, uniq: list[str]) -> np.ndarray:
        """The order in which distinct texts are batched: longest first (stable), so a batch pads little.

        A distributed run cuts this order into shards of whole batches, so that every text is embedded in
        the same batch, with the same padding, as in one local pass (:mod:`spatial_probing.executor`).
        """
        lengths = [len(ids) for ids in
                   self.load().tokenizer(uniq, truncation=True, max_length=self.max_length)["input_ids"]]
        n_long = sum(ln >= self.max_length for ln in lengths)
        if n_long:
            warnings.warn(f"{self.name}: {n_long} of {len(uniq)} texts reach the {self.max_length}-token limit "
                          f"and may be truncated", stacklevel=5)
        return np.argsort(-np.asarray(lengths), kind="stable")

    def _encode_texts(self, texts: list[str], layers: list[str], show_progress: bool) -> dict[str, np.ndarray]:
        import torch

        uniq, inverse = _unique(texts)
        order = self.batch_order(uniq)
        out: dict[str, np.ndarray] = {}
        with torch.inference_mode(), tqdm(total=len(uniq), desc=f"embed {self.name}", unit="text",
                                          disable=not show_progress, leave=False) as bar:
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                res = self._forward(self._features([uniq[i] for i in idx]), layers)
                for k, v in res.items():
                    if k not in out:
                        out[k] = np.empty((len(uniq), v.shape[-1]), dtype=np.float32)
                    out[k][idx] = _to_numpy(v)
                bar.update(len(idx))
        return _expand(out, inverse, len(uniq))

    def _encode(self, texts, images, layers, show_progress):
        return self._encode_texts(texts, layers, show_progress)

    def _pool_layers(self, hidden: Sequence[torch.Tensor], mask: torch.Tensor, layers: list[str],
                     pooling: str, eos_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = {}
        for layer in layers:
            if not layer.isdigit():
                continue
            h = hidden[int(layer)].float()  # pool in float32 whatever the model's precision
            if pooling == "mean":
                out[layer] = _masked_mean(h, mask)
            elif pooling == "cls":
                out[layer] = h[:, 0]
            elif pooling == "eos":
                import torch

                out[layer] = h[torch.arange(h.shape[0], device=h.device), eos_index]
            else:
                raise ValueError(f"{self.name}: pooling {pooling!r} is not defined for hidden layers")
        return out


def _max_length(tokenizer: Any, config: Any) -> int:
    n = int(getattr(tokenizer, "model_max_length", 10**9) or 10**9)
    pos = getattr(config, "max_position_embeddings", None)
    if pos:
        offset = (int(getattr(config, "pad_token_id", 1) or 1) + 1) if config.model_type in _ROBERTA_LIKE else 0
        n = min(n, int(pos) - offset)
    return n


def _reinit_(model: torch.nn.Module, seed: int, build) -> None:
    """Replace ``model``'s weights with a fresh seeded initialisation of the same architecture."""
    with _seeded(seed):
        fresh = build()
    model.load_state_dict(fresh.state_dict())


class HFEncoder(_TextEncoder):
    """A plain ``transformers`` text model (BERT, MPNet, ...): mean or CLS pooling of every layer."""

    def _read_architecture(self):
        from transformers import AutoConfig

        self._hf_config = AutoConfig.from_pretrained(self.resolved.path, local_files_only=True)
        hidden = int(self._hf_config.hidden_size)
        return int(self._hf_config.num_hidden_layers), {"hidden": hidden, "final": hidden}

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = self.resolved.path
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            if self.config.control == "random-init":
                with _seeded(self.config.seed):
                    model = AutoModel.from_config(self._hf_config)
            else:
                model = AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as err:
            raise ModelNotFoundError(f"cannot load transformers model from {path}: {err}") from err
        self.max_length = _max_length(self.tokenizer, self._hf_config)
        self._model = model.to(self.device).eval()

    def _forward(self, feats, layers):
        hidden = self._model(**feats, output_hidden_states=True).hidden_states
        res = self._pool_layers(hidden, feats["attention_mask"], layers, self.config.pooling)
        if "final" in layers:
            last = str(self.n_layers)
            res["final"] = res[last] if last in res else \
                self._pool_layers(hidden, feats["attention_mask"], [last], self.config.pooling)[last]
        return res


def _sbert_transformer_dir(root: Path) -> Path:
    """The folder of a sentence-transformers model's Transformer module (``""`` in most models)."""
    for m in _read_json(root / "modules.json"):
        if str(m.get("type", "")).endswith("Transformer"):
            return root / m.get("path", "")
    raise ModelNotFoundError(f"{root / 'modules.json'}: no Transformer module listed")


class SBERTEncoder(_TextEncoder):
    """A sentence-transformers model: ``final`` is exactly its ``encode`` output; layers are masked means
    (or first tokens with pooling ``cls``)."""

    def _read_architecture(self):
        cfg = _read_json(_sbert_transformer_dir(self.resolved.path) / "config.json")
        hidden = int(cfg["hidden_size"])
        final = hidden
        for m in _read_json(self.resolved.path / "modules.json"):
            if str(m.get("type", "")).endswith("Dense"):
                final = int(_read_json(self.resolved.path / m["path"] / "config.json")["out_features"])
        return int(cfg["num_hidden_layers"]), {"hidden": hidden, "final": final}

    def _load(self) -> None:
        from sentence_transformers import SentenceTransformer

        try:
            st = SentenceTransformer(str(self.resolved.path), device=str(self.device), local_files_only=True)
        except (OSError, ValueError) as err:
            raise ModelNotFoundError(f"cannot load sentence-transformers model from {self.resolved.path}: {err}") \
                from err
        if self.config.control == "random-init":
            from transformers import AutoModel

            backbone = st[0].auto_model
            _reinit_(backbone, self.config.seed, lambda: AutoModel.from_config(backbone.config))
            with _seeded(self.config.seed + 1):
                for module in list(st)[1:]:
                    for sub in module.modules():
                        if hasattr(sub, "reset_parameters"):
                            sub.reset_parameters()
        self.tokenizer = st.tokenizer
        self.max_length = int(st.max_seq_length or _max_length(st.tokenizer, st[0].auto_model.config))
        self._model = st.eval()

    def _features(self, batch):
        feats = self._model.preprocess(batch)
        return {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in feats.items()}

    def _forward(self, feats, layers):
        cfg = self._model[0].auto_model.config
        cfg.output_hidden_states = any(layer.isdigit() for layer in layers)
        try:
            out = self._model(feats)
        finally:
            cfg.output_hidden_states = False
        res = {}
        if hidden := out.get("all_layer_embeddings"):
            pooling = "cls" if self.config.pooling == "cls" else "mean"
            res = self._pool_layers(hidden, feats["attention_mask"], layers, pooling)
        if "final" in layers:
            res["final"] = out["sentence_embedding"]
        return res


class CLIPEncoder(_TextEncoder):
    """CLIP via ``transformers.CLIPModel``: text tower, image tower, or both jointly."""

    def _read_architecture(self):
        from transformers import AutoConfig

        self._hf_config = cfg = AutoConfig.from_pretrained(self.resolved.path, local_files_only=True)
        if cfg.model_type != "clip":
            raise ModelNotFoundError(f"{self.resolved.path}: config model_type is {cfg.model_type!r}; "
                                     f"encoder {self.name!r} needs a CLIP model")
        proj = int(cfg.projection_dim)
        if self.config.modality == "text+image":
            return 0, {"concat": 2 * proj, "sum": proj, "product": proj, "text": proj, "image": proj, "hidden": proj}
        tower = cfg.text_config if self.config.modality == "text" else cfg.vision_config
        return int(tower.num_hidden_layers), {"hidden": int(tower.hidden_size), "final": proj}

    @property
    def layer_names(self) -> list[str]:
        return list(JOINT_LAYERS) if self.config.modality == "text+image" else super().layer_names

    def _load(self) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        path = self.resolved.path
        try:
            if self.config.modality != "image":
                self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            if self.config.modality != "text":
                self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True, backend="pil")
            if self.config.control == "random-init":
                with _seeded(self.config.seed):
                    model = CLIPModel(self._hf_config)
            else:
                model = CLIPModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as err:
            raise ModelNotFoundError(f"cannot load CLIP model from {path}: {err}") from err
        if self.config.modality != "image":
            self.max_length = min(int(self._hf_config.text_config.max_position_embeddings),
                                  int(getattr(self.tokenizer, "model_max_length", 10**9) or 10**9))
        self._model = model.to(self.device).eval()

    def _eos_index(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Where CLIP's text tower pools: as ``CLIPTextModel`` does, for old and new configs."""
        import torch

        eos = self._hf_config.text_config.eos_token_id
        if eos == 2:  # legacy configs: the end-of-text token has the highest id
            return input_ids.to(torch.int).argmax(dim=-1)
        return (input_ids.to(torch.int) == eos).int().argmax(dim=-1)

    def _forward(self, feats, layers):
        numbered = any(layer.isdigit() for layer in layers)
        out = self._model.get_text_features(input_ids=feats["input_ids"], attention_mask=feats["attention_mask"],
                                            output_hidden_states=numbered)
        res = {}
        if numbered:
            res = self._pool_layers(out.hidden_states, feats["attention_mask"], layers, "eos",
                                    self._eos_index(feats["input_ids"]))
        res["final"] = out.pooler_output
        return res

    def _encode_images(self, images: list[Any], layers: list[str], show_progress: bool) -> dict[str, np.ndarray]:
        import torch

        uniq, inverse = _unique(images, key=id)
        numbered = any(layer.isdigit() for layer in layers)
        out: dict[str, np.ndarray] = {}
        with torch.inference_mode(), tqdm(total=len(uniq), desc=f"embed {self.name} images", unit="image",
                                          disable=not show_progress, leave=False) as bar:
            for start in range(0, len(uniq), self.batch_size):
                batch = uniq[start:start + self.batch_size]
                pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
                o = self._model.get_image_features(pixel_values=pixels, output_hidden_states=numbered)
                res: dict[str, torch.Tensor] = {"final": o.pooler_output}
                for layer in layers:
                    if layer.isdigit():
                        h = o.hidden_states[int(layer)]
                        res[layer] = h[:, 0] if self.config.pooling == "cls" else h.mean(dim=1)
                for k, v in res.items():
                    if k in layers:
                        out.setdefault(k, np.empty((len(uniq), v.shape[-1]), dtype=np.float32))
                        out[k][start:start + len(batch)] = _to_numpy(v)
                bar.update(len(batch))
        return _expand(out, inverse, len(uniq))

    def _encode(self, texts, images, layers, show_progress):
        if self.config.modality == "text":
            return self._encode_texts(texts, layers, show_progress)
        if self.config.modality == "image":
            return self._encode_images(images, layers, show_progress)
        t = self._encode_texts(texts, ["final"], show_progress)["final"]
        v = self._encode_images(images, ["final"], show_progress)["final"]
        t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        joint = {"concat": np.concatenate([t, v], axis=1), "sum": t + v, "product": t * v, "text": t, "image": v}
        return {k: np.ascontiguousarray(joint[k], dtype=np.float32) for k in layers}


class StaticEncoder(_TextEncoder):
    """Control: the mean of a model's input token embeddings (no context, no position), one layer ``"0"``."""

    def _read_architecture(self):
        if self.config.kind == "sbert":
            self._backbone_dir = _sbert_transformer_dir(self.resolved.path)
        else:
            self._backbone_dir = self.resolved.path
        cfg = _read_json(self._backbone_dir / "config.json")
        hidden = int(cfg["text_config"]["hidden_size"] if self.config.kind == "clip" else cfg["hidden_size"])
        return 0, {"hidden": hidden}

    @property
    def layer_names(self) -> list[str]:
        return ["0"]

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer, CLIPModel

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self._backbone_dir, local_files_only=True)
            if self.config.kind == "clip":
                model = CLIPModel.from_pretrained(self._backbone_dir, local_files_only=True).text_model
            else:
                model = AutoModel.from_pretrained(self._backbone_dir, local_files_only=True)
        except (OSError, ValueError) as err:
            raise ModelNotFoundError(f"cannot load token embeddings from {self._backbone_dir}: {err}") from err
        self.max_length = _max_length(self.tokenizer, model.config)
        self._model = model.get_input_embeddings().to(self.device).eval()

    def _features(self, batch):
        feats = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                               return_special_tokens_mask=True, return_tensors="pt")
        return {k: v.to(self.device) for k, v in feats.items()}

    def _forward(self, feats, layers):
        import torch

        mask = feats["attention_mask"].bool() & ~feats["special_tokens_mask"].bool()
        mask = torch.where(mask.any(dim=1, keepdim=True), mask, feats["attention_mask"].bool())
        return {"0": _masked_mean(self._model(feats["input_ids"]), mask)}


# ---------------------------------------------------------------------------------------- loading

def load_encoder(name_or_config: str | EncoderConfig, *, model_path: str | os.PathLike[str] | None = None,
                 device: str | torch.device = "auto", batch_size: int = 32,
                 num_threads: int | None = None, precision: str = "fp32") -> Encoder:
    """Build an encoder by registry name, control name (``random-init:NAME``, ``static:NAME``), lexical-floor name
    (``bow:``, ``order:``; fit it on training examples before embedding), folder, Hugging Face hub id
    (``org/name[@REVISION]``) or config.

    ``model_path`` points at local weights instead of the hub id (for offline use). Files are found
    (or a clear :class:`ModelNotFoundError` raised) now; weights load on the first ``encode``. ``precision``
    (``fp32`` | ``bf16`` | ``int8``, :mod:`spatial_probing.embed.precision`) is applied when the weights load.
    """
    config = get_encoder_config(name_or_config, model_path=model_path) if isinstance(name_or_config, str) \
        else name_or_config
    if config.kind == "lexical":  # bow:, order: — no weights; fitted on a training split before use
        from spatial_probing.embed.lexical import build_lexical_encoder

        if model_path is not None:
            raise ValueError(f"encoder {config.name!r} has no weights: model_path={str(model_path)!r} does not apply")
        return build_lexical_encoder(config)
    resolved = resolve_model(config.model_id, revision=config.revision, model_path=model_path,
                             fallback_package=config.fallback_package)
    kind = infer_kind(resolved.path)
    if kind != config.kind:
        raise ModelNotFoundError(f"encoder {config.name!r} expects a {config.kind} model but {resolved.path} "
                                 f"holds a {kind} model")
    cls: type[Encoder]
    if config.control == "static":
        cls = StaticEncoder
    else:
        cls = {"sbert": SBERTEncoder, "hf": HFEncoder, "clip": CLIPEncoder}[config.kind]
    return cls(config, resolved, device=device, batch_size=batch_size, num_threads=num_threads, precision=precision)
