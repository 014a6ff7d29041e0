"""Check a whole run config before any work: every problem at once, each naming its field and what was expected.

A run embeds, probes and writes for minutes to hours; a typo in the last encoder, a task option the
loader does not take, or a layer a control lacks used to surface only after the first units had run
(or, for ``Cs: [0.0]`` and repeated seeds, never: the results were simply wrong). :func:`validate_run_config`
resolves every encoder (registered name, control, folder, Hugging Face id; configs only, no weights
loaded), every task option against the task loader's keyword signature, every layer list against every
encoder's layers, the seeds, the Cs and the ``model_paths`` keys, and returns all problems together.
It writes nothing.
"""

from __future__ import annotations

import inspect
import math
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spatial_probing.errors import UnknownNameError, close_matches
from spatial_probing.probe.splits import SPLIT_POLICIES

if TYPE_CHECKING:
    from spatial_probing.pipeline import RunConfig

#: Keywords every dataset loader takes that the runner sets itself (not task options).
_RUNNER_KEYWORDS = {"data_dir", "split", "skip_invalid", "report"}
_PATTERN_CHARS = "*?["


class RunConfigError(ValueError):
    """A run config with problems; ``problems`` lists each one (field: what is wrong, what was expected)."""

    def __init__(self, problems: list[str], source: str | Path | None = None) -> None:
        self.problems, self.source = list(problems), source
        where = f"{source}: " if source is not None else ""
        n = len(self.problems)
        super().__init__(f"{where}run config has {n} problem{'s' if n != 1 else ''} (nothing was run or "
                         f"written):\n" + "\n".join(f"  - {p}" for p in self.problems))


def _suggest(name: str, known: Iterable[str]) -> str:
    close = close_matches(name, known)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


def task_parameters(task_name: str) -> tuple[set[str], bool]:
    """The keyword options a task's loader declares (``task_options`` keys) and whether it takes any (``**kw``)."""
    from spatial_probing.data import DATASETS
    from spatial_probing.probe.tasks import get_task

    task = get_task(task_name)
    names: set[str] = {"variant"}  # load_dataset passes it on to every loader
    open_ended = False
    for fn in (DATASETS[task.spec.dataset], type(task).load):
        for p in inspect.signature(fn).parameters.values():
            if p.kind is p.VAR_KEYWORD:
                open_ended = open_ended or fn is DATASETS[task.spec.dataset]
            elif p.name not in _RUNNER_KEYWORDS | {"self"}:
                names.add(p.name)
    return names, open_ended


def _check_numbers(config: RunConfig, add: Callable[[str], None]) -> None:
    for seed, count in Counter(config.seeds).items():
        if count > 1:
            add(f"seeds: {seed} appears {count} times; expected distinct seeds (a repeat would be counted twice "
                f"in every mean)")
    for seed in sorted(s for s in set(config.seeds) if s < 0):
        add(f"seeds: {seed} is negative; expected integers >= 0")
    for c in config.Cs:
        if not (math.isfinite(c) and c > 0):
            add(f"Cs: {c} is not a positive number; expected inverse L2 strengths > 0 (e.g. [0.01, 0.1, 1, 10])")
    if config.split is not None and config.split not in SPLIT_POLICIES:
        add(f"split: {config.split!r} is not a split policy; expected one of {', '.join(SPLIT_POLICIES)} (or "
            f"leave it out for each task's own)")


def _check_task_options(config: RunConfig, add: Callable[[str], None]) -> None:
    from spatial_probing.probe.tasks import TASKS

    for task, options in config.task_options.items():  # options of tasks this run leaves out are checked too
        if task not in TASKS:
            add(f"task_options.{task}: {UnknownNameError('task', task, TASKS)}")
            continue
        if not isinstance(options, dict):
            add(f"task_options.{task}: expected a mapping of loader keywords, got {type(options).__name__}")
            continue
        allowed, open_ended = task_parameters(task)
        if open_ended:
            continue
        for key in options:
            if key not in allowed:
                add(f"task_options.{task}.{key}: not a parameter of the task's loader{_suggest(key, allowed)}; "
                    f"expected some of {', '.join(sorted(allowed))}")


def _check_paths(config: RunConfig, add: Callable[[str], None]) -> None:
    for field in ("data_dir", "image_dir", "lab"):
        path = getattr(config, field)
        if path is not None and not Path(path).exists():
            add(f"{field}: {path} does not exist; expected an existing "
                f"{'file' if field == 'lab' else 'folder'}")
    for i, path in enumerate(config.encoder_registries):
        if not Path(path).is_file():
            add(f"encoder_registries[{i}]: {path} is not a file; expected an encoder registry YAML")
    for name, path in config.model_paths.items():
        if not Path(path).is_dir():
            add(f"model_paths.{name}: {path} is not a directory; expected a saved model folder (config.json, or "
                f"modules.json for sentence-transformers)")


def _encoder_fields(config: RunConfig) -> list[tuple[str, list[str]]]:
    """(field, encoder names) for every place a run config names encoders."""
    fields = [("encoders", list(config.encoders))]
    fields += [(f"task_encoders.{t}", list(v)) for t, v in config.task_encoders.items()]
    if config.lexical_floor:
        fields.append(("lexical_floor", list(config.lexical_floor)))
    return fields


def _known_names(config: RunConfig, add: Callable[[str], None]) -> list[str]:
    """Built-in names plus those of ``encoder_registries`` (registered, as the run would)."""
    from spatial_probing.embed import BUILTIN_ENCODERS, load_registry_file

    known = [c.name for c in BUILTIN_ENCODERS]
    for i, path in enumerate(config.encoder_registries):
        if Path(path).is_file():
            try:
                known += [c.name for c in load_registry_file(path, overwrite=True) if c.name not in known]
            except ValueError as err:
                add(f"encoder_registries[{i}]: {err}")
    if config.lab is not None and Path(config.lab).is_file():
        from spatial_probing.lab import check_probe_data, load_lab_config

        try:
            lab = load_lab_config(config.lab)
            check_probe_data(lab.data, {t: config.task_options.get(t, {}) for t in config.tasks})
        except ValueError as err:
            add(f"lab: {err}")
    return known


def _names_lab_encoder(name: str) -> bool:
    from spatial_probing.lab.config import parse_lab_encoder

    return parse_lab_encoder(name) is not None


def _run_config_how(name: str) -> str:
    return f"with the run config's `model_paths: {{{name}: DIR}}`"


def _resolve_encoders(config: RunConfig, add: Callable[[str], None], weights_how: Callable[[str], str]
                      ) -> dict[str, list[str] | None]:
    """Each concrete encoder name of the run → its layer names (None when it could not be resolved)."""
    from spatial_probing.embed import ModelNotFoundError, load_encoder
    from spatial_probing.pipeline import _expand

    known = _known_names(config, add)
    layers: dict[str, list[str] | None] = {}
    missing_models: set[str | None] = set()
    for field, names in _encoder_fields(config):
        concrete = []
        for name in names:
            if config.lab is not None and _names_lab_encoder(name.rpartition(":")[2]):
                continue  # a lab encoder (or a control of one, e.g. random-init:lab-mlm-s0): checked once trained
            if any(c in name.rpartition(":")[2] for c in _PATTERN_CHARS):
                if config.lab is not None:  # may match encoders the lab has yet to train: checked after it
                    continue
                try:
                    concrete += _expand([name], known, field)
                except ValueError as err:
                    add(str(err))
                continue
            concrete.append(name)
        for name in concrete:
            if name in layers:
                continue
            if name in config.model_paths and not Path(config.model_paths[name]).is_dir():
                layers[name] = None  # reported under model_paths
                continue
            try:
                encoder = load_encoder(name, model_path=config.model_paths.get(name), device="cpu")
                layers[name] = list(encoder.layer_names)
            except ModelNotFoundError as err:
                layers[name] = None
                if err.model_id is not None and err.model_id in missing_models:  # said in full once
                    add(f"{field}: {name!r}: model {err.model_id!r} not found either (see above); provide it "
                        f"{weights_how(name)}")
                else:
                    add(f"{field}: {name!r}: " + str(err.provide_with(weights_how(name))))
                missing_models.add(err.model_id)
            except (KeyError, ValueError, OSError) as err:
                layers[name] = None
                add(f"{field}: {err.args[0] if isinstance(err, KeyError) and err.args else err}")
    return layers


def validate_run_config(config: RunConfig, *, weights_how: Callable[[str], str] = _run_config_how) -> list[str]:
    """Every problem of ``config`` (one line each, naming the field and what was expected); ``[]`` when it can run.

    Encoders are resolved from their config files only (no weights are loaded, nothing is written);
    encoder patterns that may match models the config's ``lab`` is still to train are checked after it.
    ``weights_how(name)`` says how to provide a missing model's weights (default: the config's ``model_paths:``;
    the ``probe`` command says ``--model-path``). Runs and the ``probe`` command give one-layer encoders
    (``bow:``, ``order:``, ``static:…``) their one layer whatever the selector (:meth:`RunConfig.layers_of`), so
    the selector is not checked against them.
    """
    from spatial_probing.embed import select_layers

    problems: list[str] = []
    add = problems.append
    _check_numbers(config, add)
    _check_task_options(config, add)
    _check_paths(config, add)
    try:
        from spatial_probing.embed import resolve_device

        resolve_device(config.device)
    except (ValueError, RuntimeError) as err:
        add(f"device: {str(err).removeprefix(f'--device {config.device}: ')}")
    layers = _resolve_encoders(config, add, weights_how)
    selectors: list[tuple[str, Any]] = [("layers", config.layers)]
    for step in ("rsa", "meaning"):
        settings = getattr(config, step, None)
        if settings is not None and getattr(settings, "layers", None) is not None:
            selectors.append((f"{step}.layers", settings.layers))
    for field, selector in selectors:
        for name, names in layers.items():
            if names is None or len(names) == 1:  # one-layer encoders: their layer, any selector
                continue
            try:
                select_layers(selector, names)
            except ValueError as err:
                add(f"{field}: encoder {name!r}: {err}")
    run_encoders = set(layers)
    for key in config.model_paths:
        if key not in run_encoders and not any(key == n for _, names in _encoder_fields(config) for n in names):
            add(f"model_paths.{key}: names no encoder of this run{_suggest(key, run_encoders)}; expected one of "
                f"{', '.join(sorted(run_encoders)) or '(none resolved)'} (the weights would silently come from "
                f"elsewhere)")
    return problems


def check_run_config(config: RunConfig, source: str | Path | None = None, *,
                     weights_how: Callable[[str], str] = _run_config_how) -> None:
    """Raise :class:`RunConfigError` listing every problem of ``config``; return quietly when it can run."""
    problems = validate_run_config(config, weights_how=weights_how)
    if problems:
        raise RunConfigError(problems, source)
