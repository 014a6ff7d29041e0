"""``spatial-probing run CONFIG.yaml``: data → embed → probe → RSA → report for every combination in a config.

Each (task, encoder, probe) unit reads its embeddings from the shared cache and writes its part
of the tables atomically with its configuration hash, so re-running the same config after an
interruption skips finished units and resumes with the next one.

Example ``run.yaml``::

    out: runs/main
    data_dir: ../shared/data
    tasks: [vsr-relation, vsr-category, synthetic-argument-order]
    encoders: [sbert-mpnet, bert, clip-text, static:bert, random-init:bert]
    probes: [linear]
    layers: all
    seeds: [0, 1, 2, 3, 4]
    model_paths: {sbert-mpnet: /models/all-mpnet-base-v2}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spatial_probing.embed.config import LEXICAL_ENCODERS, is_lexical_floor
from spatial_probing.errors import UnknownNameError
from spatial_probing.executor import RaySettings, executor_for, unit_embed_jobs
from spatial_probing.io import read_yaml_model
from spatial_probing.probe.engine import ProbeSettings
from spatial_probing.probe.erasure import ErasureSettings
from spatial_probing.probe.estimators import DEFAULT_CS
from spatial_probing.probe.runner import UnitConfig, run_units
from spatial_probing.probe.tasks import TASKS
from spatial_probing.report.verdicts import VerdictRules
from spatial_probing.rsa.meaning import MeaningSettings, MeaningUnit, run_meaning
from spatial_probing.rsa.pairs import PairsSettings, pairs_units, run_pairs
from spatial_probing.rsa.runner import RSASettings, RSAUnit, run_rsa
from spatial_probing.validate import RunConfigError, check_run_config, validate_run_config

__all__ = ["RunConfig", "RunConfigError", "check_run_config", "load_run_config", "prepare_encoders", "run",
           "run_rsa_step", "validate_run_config"]


class RunConfig(BaseModel):
    """A whole study: every task × encoder × probe, with shared probe settings and paths.

    Relative paths are resolved against the YAML file's folder by :func:`load_run_config`.
    ``task_options`` maps a task name to ``load_dataset`` keywords (e.g. ``{stepgame-answer: {k: [1, 2]}}``).
    ``task_encoders`` replaces ``encoders`` for the tasks it names (e.g. image-text encoders only for
    ``vsr-truth``, whose images exist; StepGame has no images to give them).
    ``rsa`` configures the RSA step run after the probes (:class:`~spatial_probing.rsa.runner.RSASettings`;
    on by default, ``rsa: null`` turns it off).
    ``encoder_registries`` are encoder YAML files (:func:`~spatial_probing.embed.load_registry_file`) registered
    before any unit runs; ``lab`` is a grounding-lab config trained first (resumable) whose ``encoders.yaml``
    is registered too. Encoder names may be patterns over registered names (``lab-*``, ``static:lab-mlm-*``).
    ``meaning`` configures the meaning-over-words step (:class:`~spatial_probing.rsa.meaning.MeaningSettings`;
    on by default for synthetic and VSR tasks, ``meaning: null`` turns it off).
    ``report`` writes ``report.html`` and ``figures/`` at the end (``spatial-probing report OUT`` does it later).
    ``verdicts`` sets the verdict rules' thresholds (α, the ±3-point equivalence margin, the ceiling; see
    :class:`~spatial_probing.report.verdicts.VerdictRules`); the report reads them from the manifest.
    ``lexical_floor`` encoders (default ``bow:`` and ``order:``) are added to every task's encoders (also those
    named in ``task_encoders``), so every number has what the words alone give beside it; ``[]`` opts out.
    ``pairs`` runs the caption-choice step (SugarCrepe, ARO, What'sUp: ``pairs.parquet``/``.csv``;
    :class:`~spatial_probing.rsa.pairs.PairsSettings`; off unless given).
    ``protocol: founding-study`` runs the founding study's VSR probing protocol and the corrected one instead of
    the task units (:mod:`spatial_probing.probe.replicate`; ``tasks`` must then be ``[vsr-relation]``).
    ``erasure`` adds the LEACE causal test (:mod:`spatial_probing.probe.erasure`; ``erasure.parquet``/``.csv``).
    ``control_cv`` (``first-seed`` | ``every-seed``): whether the control task's C is searched on the first seed's
    control mapping only and reused (default) or for every seed (:class:`~spatial_probing.probe.engine.ProbeSettings`).
    ``precision`` (``fp32`` | ``bf16`` | ``int8``, :mod:`spatial_probing.embed.precision`) is the probe units'
    encoding precision (opt-in; part of the embedding cache key); the RSA and meaning steps encode in fp32.
    ``executor: ray`` embeds (in shards) and runs the probe and RSA units on Ray (:mod:`spatial_probing.executor`):
    on the cluster at ``ray_address`` (or ``$RAY_ADDRESS``), else on a local Ray instance; ``ray`` sets actor and
    task resources (:class:`~spatial_probing.executor.RaySettings`). The tables are those of ``executor: local``.
    """

    model_config = ConfigDict(extra="forbid")

    out: Path = Path("runs/main")
    data_dir: Path | None = None
    cache_dir: Path | None = None
    image_dir: Path | None = None
    tasks: list[str] = Field(min_length=1)
    encoders: list[str] = Field(min_length=1)
    probes: list[str] = Field(default=["linear"], min_length=1)
    layers: str = "all"
    split: str | None = None
    seeds: list[int] = Field(default=[0, 1, 2, 3, 4], min_length=1)
    Cs: list[float] = Field(default=list(DEFAULT_CS), min_length=1)
    inner_folds: int = Field(default=3, ge=2)
    max_iter: int = Field(default=100, ge=1)
    mdl_seeds: int = Field(default=1, ge=0)
    control_cv: Literal["first-seed", "every-seed"] = "first-seed"
    n_boot: int = Field(default=1000, ge=100)
    max_train: int | None = Field(default=None, ge=2)
    max_test: int | None = Field(default=None, ge=1)
    device: str = "auto"
    model_paths: dict[str, Path] = Field(default_factory=dict)
    task_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    task_encoders: dict[str, list[str]] = Field(default_factory=dict)
    rsa: RSASettings | None = Field(default_factory=RSASettings)
    meaning: MeaningSettings | None = Field(default_factory=MeaningSettings)
    encoder_registries: list[Path] = Field(default_factory=list)
    lab: Path | None = None
    report: bool = True
    verdicts: VerdictRules = Field(default_factory=VerdictRules)
    lexical_floor: list[str] = Field(default_factory=lambda: ["bow:", "order:"])
    pairs: PairsSettings | None = None
    protocol: Literal["standard", "founding-study"] = "standard"
    erasure: ErasureSettings | None = None
    precision: Literal["fp32", "bf16", "int8"] = "fp32"
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    ray: RaySettings = Field(default_factory=RaySettings)

    @field_validator("lexical_floor")
    @classmethod
    def _floor_names(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not is_lexical_floor(n)]
        if bad:
            raise ValueError(f"lexical_floor: {bad} are not lexical-floor encoders; expected names such as bow:, "
                             f"order:, static:NAME or random-init:NAME (or [] to opt out)")
        return names

    def layers_of(self, encoder: str) -> str:
        """``layers``, except for the one-layer encoders (``bow:``, ``order:``, ``static:…``): their one layer."""
        return "all" if encoder in LEXICAL_ENCODERS or encoder.startswith("static:") else self.layers

    def task_encoder_names(self, task: str) -> list[str]:
        """The encoders of ``task``: ``task_encoders[task]`` or ``encoders``, then the lexical floor."""
        names = self.task_encoders.get(task, self.encoders)
        return names + [f for f in self.lexical_floor if f not in names]

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str]) -> list[str]:
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ValueError("; ".join(str(UnknownNameError("task", t, TASKS)) for t in unknown))
        return tasks

    @field_validator("task_encoders")
    @classmethod
    def _known_task_encoders(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = [t for t in value if t not in TASKS]
        if unknown:
            raise ValueError(f"task_encoders names unknown task(s) {unknown}; expected some of {sorted(TASKS)}")
        return value

    @field_validator("probes")
    @classmethod
    def _known_probes(cls, probes: list[str]) -> list[str]:
        bad = [p for p in probes if p not in ("linear", "mlp")]
        if bad:
            raise ValueError("; ".join(str(UnknownNameError("probe", p, ("linear", "mlp"))) for p in bad))
        return probes

    @model_validator(mode="after")
    def _founding_study_tasks(self) -> RunConfig:
        if self.protocol == "founding-study" and self.tasks != ["vsr-relation"]:
            raise ValueError(f"protocol: founding-study probes VSR relations only; set tasks: [vsr-relation] "
                             f"(got tasks: {self.tasks})")
        return self

    def units(self) -> list[UnitConfig]:
        """Every (task, encoder, probe) unit, in config order."""
        return [UnitConfig(task=t, encoder=e, split=self.split, layers=self.layers_of(e),
                           max_train=self.max_train,
                           max_test=self.max_test, load_kwargs=self.task_options.get(t, {}),
                           settings=ProbeSettings(probe=p, seeds=tuple(self.seeds), Cs=tuple(self.Cs),
                                                  inner_folds=self.inner_folds, max_iter=self.max_iter,
                                                  mdl_seeds=self.mdl_seeds, control_cv=self.control_cv,
                                                  n_boot=self.n_boot, device=self.device), precision=self.precision)
                for t in self.tasks for e in self.task_encoder_names(t) for p in self.probes]

    def rsa_units(self) -> list[RSAUnit]:
        """Every (task, encoder) RSA unit (none when ``rsa`` is null), on the probe units' examples."""
        if self.rsa is None:
            return []
        return [RSAUnit(task=t, encoder=e, settings=self.rsa, layers=self.layers_of(e),
                        split=self.split,
                        load_kwargs=self.task_options.get(t, {}), max_train=self.max_train, max_test=self.max_test,
                        probe_seed=self.seeds[0], device=self.device)
                for t in self.rsa.pick_tasks(self.tasks) for e in self.task_encoder_names(t)]

    def meaning_units(self) -> list[MeaningUnit]:
        """Every (dataset, encoder) meaning-over-words unit (none when ``meaning`` is null or no run task has
        triples), on the examples of the run's first task on that dataset."""
        if self.meaning is None:
            return []
        return [MeaningUnit(dataset=d, task=t, encoder=e, settings=self.meaning, layers=self.layers_of(e),
                            split=self.split,
                            load_kwargs=self.task_options.get(t, {}), max_train=self.max_train,
                            max_test=self.max_test, probe_seed=self.seeds[0], device=self.device)
                for d, t in self.meaning.pick_tasks(self.tasks).items() for e in self.task_encoder_names(t)]


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate a run YAML; errors name the file and the offending field."""
    path = Path(path)
    config = read_yaml_model(path, RunConfig, what="run config", expected="out, tasks, encoders, ...")
    base = path.resolve().parent

    def here(p: Path | None) -> Path | None:  # relative to the YAML's folder, normalised
        return p if p is None or Path(p).is_absolute() else Path(os.path.normpath(base / p))

    fix = {k: here(getattr(config, k)) for k in ("out", "data_dir", "cache_dir", "image_dir", "lab")}
    paths = {k: here(v) for k, v in config.model_paths.items()}
    registries = [here(p) for p in config.encoder_registries]
    if config.pairs is not None and config.pairs.image_dirs:
        fix["pairs"] = config.pairs.model_copy(update={"image_dirs": {k: here(v) for k, v in config.pairs.image_dirs.items()}})
    return config.model_copy(update={**fix, "model_paths": paths, "encoder_registries": registries})


def _expand(names: list[str], known: list[str], where: str) -> list[str]:
    """Encoder names with shell-style patterns (``lab-*``) replaced by the matching ``known`` names."""
    from fnmatch import fnmatchcase

    out: list[str] = []
    for name in names:
        prefix, colon, pattern = name.rpartition(":")
        if not any(c in pattern for c in "*?["):
            out.append(name)
            continue
        matches = [f"{prefix}{colon}{m}" for m in known if fnmatchcase(m, pattern)]
        if not matches:
            raise ValueError(f"{where}: pattern {name!r} matches no encoder built in or in encoder_registries/lab; "
                             f"those are: {', '.join(known)}")
        out.extend(m for m in matches if m not in out)
    return out


def prepare_encoders(config: RunConfig, *, log=print) -> RunConfig:
    """Train the ``lab`` (reusing encoders trained with the same settings), register ``encoder_registries``
    and expand encoder patterns over the built-in and these registries' names (not whatever else this process
    registered); returns the config to run (the lab's registry then in ``encoder_registries``)."""
    from spatial_probing.embed import BUILTIN_ENCODERS, load_registry_file

    registries = list(config.encoder_registries)
    if config.lab is not None:
        from spatial_probing.lab import check_probe_data, load_lab_config, train_lab
        from spatial_probing.lab.train import REGISTRY_FILE

        lab = load_lab_config(config.lab)
        check_probe_data(lab.data, {t: config.task_options.get(t, {}) for t in config.tasks})
        train_lab(lab, log=log)
        registries.append(lab.out / REGISTRY_FILE)
    known = [c.name for c in BUILTIN_ENCODERS]
    for path in registries:
        known += [c.name for c in load_registry_file(path, overwrite=True) if c.name not in known]
    return config.model_copy(update={
        "lab": None, "encoder_registries": registries, "encoders": _expand(config.encoders, known, "encoders"),
        "task_encoders": {t: _expand(v, known, f"task_encoders.{t}") for t, v in config.task_encoders.items()}})


def _checked_and_prepared(config: RunConfig, *, log=print) -> RunConfig:
    """``config`` checked as a whole before any work (:class:`RunConfigError` listing every problem), its lab
    trained and encoder patterns expanded, then the encoders the lab added checked too."""
    check_run_config(config)
    had_lab = config.lab is not None
    config = prepare_encoders(config, log=log)
    if had_lab:
        check_run_config(config)
    return config


def run(config: RunConfig, *, command: str = "", log=print, show_progress: bool = True,
        executor: Any = None) -> dict[str, Path]:
    """Run (or resume) every unit of ``config`` and assemble the run directory's tables (then the RSA step).

    The whole config is checked first (:func:`validate_run_config`); a config with problems raises
    :class:`RunConfigError` before anything is embedded, probed or written. With ``executor: ray`` the
    embeddings and the probe and RSA units run on Ray (``executor``: an open one to reuse).
    """
    config = _checked_and_prepared(config, log=log)
    if config.protocol == "founding-study":
        return _run_founding_study(config, command=command, log=log)
    if config.executor == "ray" and executor is None:
        with executor_for(config, log=log) as executor:
            return run(config, command=command, log=log, show_progress=show_progress, executor=executor)
    if executor is not None:  # embeddings first, in shards over the cluster; the units then read the cache
        executor.embed(unit_embed_jobs(config.units(), data_dir=config.data_dir, model_paths=dict(config.model_paths),
                                       image_dir=config.image_dir),
                       cache_dir=config.cache_dir or config.out / "cache", log=log, show_progress=show_progress)
    paths = run_units(config.units(), config.out, data_dir=config.data_dir, model_paths=dict(config.model_paths),
                      cache_dir=config.cache_dir, image_dir=config.image_dir, command=command,
                      run_config=config.model_dump(mode="json"), log=log, show_progress=show_progress,
                      executor=executor)
    if config.rsa is not None:
        paths.update(run_rsa_step(config, command=command, log=log, show_progress=show_progress, executor=executor))
    if config.meaning_units():
        paths.update(run_meaning_step(config, command=command, log=log))
    if config.pairs is not None:
        paths.update(run_pairs_step(config, command=command, log=log))
    paths.update(_run_erasure_step(config, log=log))
    return _with_report(config, paths, log=log, show_progress=show_progress)


def _with_report(config: RunConfig, paths: dict[str, Path], *, log=print,
                 show_progress: bool = False) -> dict[str, Path]:
    """``paths`` plus ``report.html`` when the config asks for the report."""
    if config.report:
        from spatial_probing.report import build_report

        paths["report"] = build_report(config.out, show_progress=show_progress)
        log(f"report: {paths['report']}")
    return paths


def _run_founding_study(config: RunConfig, *, command: str = "", log=print) -> dict[str, Path]:
    """``protocol: founding-study``: the replication tables, a manifest, and the report with its Replication section."""
    from datetime import datetime, timezone

    from spatial_probing.io import atomic_write_json
    from spatial_probing.probe.replicate import run_founding_study

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    paths = run_founding_study(config, command=command, log=log)
    paths.update(_run_erasure_step(config, log=log))
    paths["manifest"] = atomic_write_json(Path(config.out) / "manifest.json", {
        "command": command, "config": config.model_dump(mode="json"), "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "protocol": config.protocol})
    return _with_report(config, paths, log=log)


def _run_erasure_step(config: RunConfig, *, log=print) -> dict[str, Path]:
    """The LEACE erasure table when ``erasure`` is set (nothing otherwise)."""
    if config.erasure is None:
        return {}
    from spatial_probing.probe.erasure import run_erasure

    return run_erasure(config.erasure, config.encoders, config.out, data_dir=config.data_dir,
                       model_paths=dict(config.model_paths), cache_dir=config.cache_dir or Path(config.out) / "cache",
                       task_options=config.task_options, device=config.device, log=log)


def run_rsa_step(config: RunConfig, *, command: str = "", log=print, show_progress: bool = True,
                 executor: Any = None) -> dict[str, Path]:
    """Only the RSA step of ``config`` (``rsa.parquet``/``.csv``, ``rdms/``), sharing the run's embedding cache."""
    if config.rsa is None:
        raise ValueError("the run config has `rsa: null`: the RSA step is turned off")
    config = _checked_and_prepared(config, log=log)
    if config.executor == "ray" and executor is None:
        with executor_for(config, log=log) as executor:
            return run_rsa_step(config, command=command, log=log, show_progress=show_progress, executor=executor)
    return run_rsa(config.rsa_units(), config.out, data_dir=config.data_dir, model_paths=dict(config.model_paths),
                   cache_dir=config.cache_dir, image_dir=config.image_dir, command=command,
                   run_config=config.model_dump(mode="json"), log=log, show_progress=show_progress,
                   executor=executor)


def run_meaning_step(config: RunConfig, *, command: str = "", log=print) -> dict[str, Path]:
    """Only the meaning-over-words step of ``config`` (``meaning.parquet``/``.csv``), sharing the embedding cache."""
    if config.meaning is None:
        raise ValueError("the run config has `meaning: null`: the meaning-over-words step is turned off")
    config = _checked_and_prepared(config, log=log)
    units = config.meaning_units()
    if not units:
        raise ValueError(f"no run task reads a dataset with meaning-over-words triples (synthetic or vsr); tasks: "
                         f"{config.tasks}")
    return run_meaning(units, config.out, data_dir=config.data_dir, model_paths=dict(config.model_paths),
                       cache_dir=config.cache_dir, command=command, run_config=config.model_dump(mode="json"), log=log)


def run_pairs_step(config: RunConfig, *, command: str = "", log=print) -> dict[str, Path]:
    """Only the caption-choice step of ``config`` (``pairs.parquet``/``.csv``), sharing the run's embedding cache."""
    if config.pairs is None:
        raise ValueError("the run config has no `pairs:` section: the caption-choice step is off")
    config = prepare_encoders(config, log=log)
    units = pairs_units(config.pairs, config.encoders, lexical_floor=config.lexical_floor, layers=config.layers,
                        device=config.device)
    return run_pairs(units, config.out, data_dir=config.data_dir, model_paths=dict(config.model_paths),
                     cache_dir=config.cache_dir, command=command, run_config=config.model_dump(mode="json"), log=log)
