"""The grounding lab's configuration: one pydantic model, read from YAML with errors that name the field."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spatial_probing.data.synthetic import RELATIONS
from spatial_probing.io import read_yaml_model

Objective = Literal["mlm", "textcl", "vision"]
OBJECTIVES: tuple[Objective, ...] = ("mlm", "textcl", "vision")
#: What each objective is, in words (registry descriptions and reports).
OBJECTIVE_DESCRIPTIONS: dict[str, str] = {
    "mlm": "distributional: masked language modelling",
    "textcl": "text-only contrastive: InfoNCE between two true captions of one scene",
    "vision": "visual contrastive: CLIP-style InfoNCE between caption and rendered scene image",
}


#: Bump when the training code changes what a config trains, so encoders trained before are retrained, not reused.
#: 2: the scene CNN's batch-norm statistics are recomputed at its current weights before every evaluation.
TRAINING_VERSION = 2
#: Training settings that change where or how fast encoders train, not what they learn (left out of the hashes).
UNHASHED_TRAIN_FIELDS = ("device", "workers")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """The one text architecture every objective trains (a small BERT), plus the heads' sizes.

    ``image_size`` is the side the 224-px scene renders are resized to for the CNN image encoder.
    """

    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(2, ge=1, le=12)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(128, ge=8)
    max_position_embeddings: int = Field(48, ge=16)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    proj_dim: int = Field(64, ge=8)
    image_size: int = Field(32, ge=16, le=224)
    image_channels: tuple[int, int, int] = (16, 32, 64)

    @model_validator(mode="after")
    def _heads_divide(self) -> "ModelSpec":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        if self.image_size % 8:
            raise ValueError(f"image_size ({self.image_size}) must be a multiple of 8 (three stride-2 convolutions)")
        return self


class DataSpec(_Strict):
    """Training scenes: synthetic scenes from ``seed``, disjoint from the probing scenes (``probe_seed``).

    ``heldout="compositional"`` drops every training scene that contains a colour–shape
    combination the probe's compositional split holds out for test (for ``probe_seed``), so a
    probe run with ``task_options: {synthetic-relation: {split_scheme: compositional}}`` tests on
    objects that neither the encoder nor the probe saw. ``heldout_relations`` drops every scene
    whose relation or its converse is listed: the encoder never trains on those relations.
    """

    n_scenes: int = Field(4800, ge=8)
    seed: int = 1
    probe_seed: int = 0
    probe_n_scenes: int = Field(7200, ge=1)
    heldout: Literal["none", "compositional"] = "compositional"
    heldout_relations: tuple[str, ...] = ()
    eval_seed: int = 2
    eval_n_scenes: int = Field(384, ge=8)

    @field_validator("heldout_relations")
    @classmethod
    def _known_relations(cls, rels: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [r for r in rels if r not in RELATIONS]
        if unknown:
            raise ValueError(f"unknown relation(s) {unknown}; expected some of {list(RELATIONS)}")
        return tuple(sorted(set(rels)))

    @model_validator(mode="after")
    def _disjoint(self) -> "DataSpec":
        if self.seed == self.probe_seed:
            raise ValueError(f"seed ({self.seed}) must differ from probe_seed ({self.probe_seed}): the lab trains on "
                             f"scenes disjoint from the ones it is probed on")
        if self.eval_seed in (self.seed, self.probe_seed):
            raise ValueError(f"eval_seed ({self.eval_seed}) must differ from seed ({self.seed}) and probe_seed "
                             f"({self.probe_seed}): held-out scenes are neither trained on nor probed")
        return self


class TrainSpec(_Strict):
    """Optimisation, identical for every objective: steps, batch of scenes, AdamW with warmup + linear decay.

    A batch holds ``batch_size`` scenes, each with its two true captions (original and converse);
    ``num_threads`` is fixed so CPU results are bit-identical for a seed. ``workers`` processes train
    encoders at once (each with ``num_threads`` threads): every encoder is trained exactly as alone, so
    ``workers`` changes the wall time, not the weights, and is not hashed. Tiny models keep only about
    1.2 cores busy with two threads, so on 2 cores ``workers: 2, num_threads: 1`` is the fast setting.
    """

    steps: int = Field(400, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_frac: float = Field(0.1, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0)
    mask_prob: float = Field(0.15, gt=0, lt=1)
    temperature: float = Field(0.07, gt=0, description="initial temperature of the learnable contrastive logit scale")
    num_threads: int = Field(1, ge=1)
    workers: int = Field(2, ge=1, description="processes training encoders at once (not hashed: same weights)")
    device: str = "auto"
    eval_every: int = Field(0, ge=0, description="steps between held-out evaluations; 0: steps // 10")
    plateau_tol: float = Field(0.05, gt=0, lt=1, description="converged when the held-out loss fell by at most this "
                                                             "share of its total fall over the last quarter of steps")

    def eval_steps(self) -> list[int]:
        """Steps (1-based, after the update) at which the held-out metrics are logged; always includes 0 and the last."""
        every = self.eval_every or max(1, self.steps // 10)
        return sorted({0, *range(every, self.steps, every), self.steps})


class LabConfig(_Strict):
    """A lab run: every objective × seed trains the same architecture on the same data in the same order."""

    out: Path = Path("runs/lab")
    name_prefix: str = Field("lab", pattern=r"^[A-Za-z0-9_.]+$")
    objectives: tuple[Objective, ...] = Field(OBJECTIVES, min_length=1)
    seeds: tuple[int, ...] = Field((0, 1, 2, 3, 4), min_length=1)
    hard_negatives: tuple[float, ...] = Field((0.0, 1.0), min_length=1)
    label: str = Field("default lab", description="how reports name this lab (e.g. 'demo lab'); not hashed")
    model: ModelSpec = ModelSpec()
    data: DataSpec = DataSpec()
    train: TrainSpec = TrainSpec()

    @field_validator("objectives", "seeds", "hard_negatives")
    @classmethod
    def _unique(cls, values: tuple) -> tuple:
        if len(set(values)) != len(values):
            raise ValueError(f"duplicates in {list(values)}")
        return values

    @field_validator("hard_negatives")
    @classmethod
    def _fractions(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        bad = [v for v in values if not 0.0 <= v <= 1.0]
        if bad:
            raise ValueError(f"hard-negative fractions must lie in [0, 1], got {bad}")
        tags = [hn_tag(v) for v in values]
        if len(set(tags)) != len(tags):
            raise ValueError(f"fractions {list(values)} give the same name tag(s) {tags}; use at most two decimals")
        return values

    def arms(self) -> list[tuple[str, float]]:
        """(objective, hard-negative fraction) of every encoder per seed: ``mlm`` once (it has no negatives),
        each contrastive objective at every fraction of ``hard_negatives``."""
        return [(o, f) for o in self.objectives for f in ((0.0,) if o == "mlm" else self.hard_negatives)]

    def hash(self) -> str:
        """SHA-256 of everything that changes what is trained (not ``out`` or the device)."""
        payload = self.model_dump(mode="json", exclude={"out", "label"})
        for key in UNHASHED_TRAIN_FIELDS:
            payload["train"].pop(key)
        payload["training_version"] = TRAINING_VERSION
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def run_hash(self, objective: str, seed: int, hard_negatives: float = 0.0) -> str:
        """Hash of one encoder's training: the shared settings plus its objective, seed and hard-negative fraction."""
        payload = self.model_dump(mode="json", include={"model", "data", "train"})
        for key in UNHASHED_TRAIN_FIELDS:
            payload["train"].pop(key)
        payload.update(objective=objective, seed=seed, hard_negatives=hard_negatives, training_version=TRAINING_VERSION)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def hn_tag(fraction: float) -> str:
    """Name tag of a hard-negative fraction: 1 → ``1``, 0.5 → ``05``, 0.25 → ``025`` (digits only, for names)."""
    text = f"{round(fraction, 2):g}"
    return text.replace(".", "")


def parse_hn_tag(tag: str) -> float:
    """Inverse of :func:`hn_tag`: ``05`` → 0.5, ``1`` → 1.0."""
    return float(f"0.{tag[1:]}") if len(tag) > 1 and tag.startswith("0") else float(tag)


def arm_label(objective: str, hard_negatives: float = 0.0) -> str:
    """The arm of an encoder in tables: ``vision`` without hard negatives, ``vision-hn1`` with fraction 1."""
    return objective if hard_negatives == 0 else f"{objective}-hn{hn_tag(hard_negatives)}"


_NAME = re.compile(r"^(?P<lab>[A-Za-z0-9_.]+)-(?P<objective>mlm|textcl|vision)(?:-hn(?P<hn>\d+))?-s(?P<seed>\d+)$")
_DIR = re.compile(r"(?:^|.*[/\\])(?P<objective>mlm|textcl|vision)(?:-hn(?P<hn>\d+))?-seed(?P<seed>\d+)[/\\]?$")


def parse_lab_encoder(name: str) -> tuple[str, str, int] | None:
    """``(lab, objective, seed)`` for a lab encoder name or folder, None for any other encoder."""
    parsed = parse_lab_arm(name)
    return (parsed[0], parsed[2], parsed[4]) if parsed else None


def parse_lab_arm(name: str) -> tuple[str, str, str, float, int] | None:
    """``(lab, arm, objective, hard-negative fraction, seed)`` for a lab encoder name or folder, else None:
    ``lab-vision-hn1-s0`` → ``("lab", "vision-hn1", "vision", 1.0, 0)``."""
    m = _NAME.match(name) or _DIR.match(name)
    if not m:
        return None
    fraction = parse_hn_tag(m["hn"]) if m["hn"] else 0.0
    lab = m.groupdict().get("lab") or "lab"
    return lab, arm_label(m["objective"], fraction), m["objective"], fraction, int(m["seed"])


def arm_order(arm: str) -> tuple[int, float]:
    """Sort key of an arm: objectives in :data:`OBJECTIVES` order, then by hard-negative fraction."""
    objective, _, tag = arm.partition("-hn")
    return OBJECTIVES.index(objective) if objective in OBJECTIVES else len(OBJECTIVES), parse_hn_tag(tag) if tag else 0.0


def encoder_name(prefix: str, objective: str, seed: int, hard_negatives: float = 0.0) -> str:
    """Registry name of one lab encoder: ``lab-vision-s0``, or ``lab-vision-hn1-s0`` with hard-negative fraction 1."""
    return f"{prefix}-{arm_label(objective, hard_negatives)}-s{seed}"


def load_lab_config(path: str | Path) -> LabConfig:
    """Read and validate a lab YAML; a relative ``out`` is resolved against the YAML's folder."""
    path = Path(path)
    config = read_yaml_model(path, LabConfig, what="lab config",
                             expected="out, objectives, seeds, model, data, train")
    if not config.out.is_absolute():
        config = config.model_copy(update={"out": path.resolve().parent / config.out})
    return config
