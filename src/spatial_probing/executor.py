"""Where embeddings and units run: in this process (``executor: local``, the default) or on Ray (``ray``).

A study is encoders × datasets × layers × tasks × seeds and outgrows one machine fast. Ray is the
ecosystem's executor for it (actors that hold a model for batch embedding, tasks for independent jobs);
this module keeps it out of the stages, which call two seams:

* :meth:`RayExecutor.embed`: the inputs of one (dataset, encoder) are cut into *shards of whole batches
  of the encoder's own batching order* (:meth:`~spatial_probing.embed.encoders._TextEncoder.batch_order`:
  distinct texts, longest first), so every text is embedded in the same batch, with the same padding, as in
  one local pass. Each shard is embedded by an actor that loads the model once and is written to the
  embedding cache as an ordinary content-keyed entry (atomically: two workers never corrupt an entry; a shard
  whose worker died is missing and redone). The driver then concatenates the shards into the (dataset,
  encoder) entry, byte for byte the one a local run writes, so a later local run finds it.
* :func:`map_units`: each probe or RSA unit is one Ray task (retried when its worker dies) that reads the
  cache and writes its part, under the same skip-if-current rule as a local run; the driver assembles the
  tables from the parts exactly as before, so the tables are byte-identical to a local run's.

The cache and run folders must be on a path every node sees (NFS, or object storage mounted at the same
path); :meth:`RayExecutor.check_shared` proves it with a probe file before any work.
"""

from __future__ import annotations

import math
import os
import uuid
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from spatial_probing.data.schema import Example

__all__ = ["EXECUTORS", "EmbedJob", "MissingExtraError", "RayExecutor", "RaySettings", "executor_for", "import_ray",
           "map_units", "open_executor", "unit_embed_jobs"]

#: Executor names of the ``executor:`` setting and the ``--executor`` option.
EXECUTORS = ("local", "ray")


class MissingExtraError(ImportError, ValueError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`MissingExtraError` naming the extra that installs it."""
    try:
        import ray
    except ImportError as err:
        raise MissingExtraError("executor='ray' needs Ray, which is not installed: pip install "
                                "'spatial-probing[ray]' (or pip install ray)") from err
    return ray


class RaySettings(BaseModel):
    """How work is laid out on Ray (the ``ray:`` section of a run config, used with ``executor: ray``).

    ``num_gpus_per_actor`` (embedding actors) defaults to one GPU per actor when the cluster has GPUs, none
    otherwise; a fraction (0.25) lets small models share a GPU. ``num_actors`` defaults to as many actors as the
    cluster's GPUs (or CPUs) allow. ``shard_size`` (distinct texts per shard) is rounded up to whole batches.
    ``unit_cpus``/``unit_gpus`` are each probe or RSA task's resources; ``max_retries`` how often a task or actor
    whose worker died is retried. ``threads`` sets torch's threads in every worker (default: Ray's
    ``OMP_NUM_THREADS``, the worker's CPUs); tables are byte-identical to a local run with as many threads.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_cpus_per_actor: float = Field(default=1.0, gt=0)
    num_gpus_per_actor: float | None = Field(default=None, ge=0)
    num_actors: int | None = Field(default=None, ge=1)
    shard_size: int = Field(default=2048, ge=1)
    unit_cpus: float = Field(default=1.0, gt=0)
    unit_gpus: float = Field(default=0.0, ge=0)
    max_retries: int = Field(default=3, ge=0)
    threads: int | None = Field(default=None, ge=1)


@dataclass(frozen=True)
class EmbedJob:
    """One embedding a local run would compute with ``embed_examples(examples, load_encoder(encoder, ...))``."""

    encoder: str
    examples: tuple[Example, ...]
    layers: str = "all"
    model_path: str | None = None
    device: str = "auto"
    batch_size: int = 32
    precision: str = "fp32"
    image_dir: str | None = None


# ----------------------------------------------------------------------------------------------- workers

_REGISTERED: set[str] = set()


def _setup_worker(threads: int | None, registries: tuple[str, ...]) -> None:
    """In a Ray worker: torch's thread count, and the run's encoder registries (once per process)."""
    from spatial_probing.device import configure_threads

    configure_threads(threads)
    if registries:
        from spatial_probing.embed import load_registry_file

        for path in registries:
            if path not in _REGISTERED:
                load_registry_file(path, overwrite=True)
                _REGISTERED.add(path)


def _unit_task(fn: Callable[[Any, Any], Any], unit: Any, model_path: Any,
               setup: tuple[int | None, tuple[str, ...]]) -> None:
    """The body of one probe or RSA unit's Ray task."""
    _setup_worker(*setup)
    fn(unit, model_path)


class EmbedWorker:
    """A Ray actor's state: the encoder it was last asked for, loaded once, embedding shards into the shared cache.

    One pool of actors serves every encoder of a run (shards are queued encoder by encoder), so an actor starts
    once and loads each encoder at most once, instead of a pool (process start-up, imports) per encoder.
    """

    def __init__(self, cache_dir: str, setup: tuple[int | None, tuple[str, ...]]) -> None:
        _setup_worker(*setup)
        self.cache_dir = cache_dir
        self.spec: EmbedJob | None = None
        self.encoder: Any = None

    def _encoder(self, spec: EmbedJob) -> Any:
        if spec != self.spec:
            from spatial_probing.embed import load_encoder

            self.encoder = None  # free the previous model first
            self.encoder = load_encoder(spec.encoder, model_path=spec.model_path, device=spec.device,
                                        batch_size=spec.batch_size, precision=spec.precision)
            self.spec = spec
        return self.encoder

    def order(self, spec: EmbedJob, texts: list[str]) -> np.ndarray:
        """The encoder's batching order of these distinct texts."""
        return self._encoder(spec).batch_order(texts)

    def embed(self, spec: EmbedJob, examples: list[Example], layers: list[str], image_dir: str | None) -> int:
        """Embed ``examples`` (a shard, or a whole job) into the cache as one entry; returns how many."""
        from spatial_probing.embed import embed_examples

        embed_examples(examples, self._encoder(spec), layers=layers, cache_dir=self.cache_dir, image_dir=image_dir,
                       show_progress=False)
        return len(examples)


def _answer_probe(path: str, token: str) -> str:
    """In a worker: read the driver's probe file and write the answer beside it (the folder is shared both ways)."""
    import socket

    try:
        seen = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        return f"{socket.gethostname()}: cannot read {path} ({err})"
    if seen != token:
        return f"{socket.gethostname()}: {path} holds another file than the driver wrote"
    Path(f"{path}.{socket.gethostname()}.{os.getpid()}").write_text(token, encoding="utf-8")
    return ""


# ----------------------------------------------------------------------------------------------- the executor

@dataclass(frozen=True)
class RayExecutor:
    """Embeddings and units on a running Ray instance (see the module docstring); made by :func:`open_executor`."""

    settings: RaySettings
    registries: tuple[str, ...] = ()

    @property
    def _setup(self) -> tuple[int | None, tuple[str, ...]]:
        return self.settings.threads, self.registries

    def check_shared(self, folders: Sequence[str | Path]) -> None:
        """Raise unless a task on every node can read a file written here into each folder and write one back."""
        ray = import_ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        probe = ray.remote(_answer_probe)
        for folder in dict.fromkeys(Path(f).resolve() for f in folders):
            folder.mkdir(parents=True, exist_ok=True)
            token = uuid.uuid4().hex
            path = folder / f".ray-probe-{token}"
            path.write_text(token, encoding="utf-8")
            try:
                answers = ray.get([probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
                    node, soft=False)).remote(str(path), token) for node in nodes])
                replies = list(folder.glob(f"{path.name}.*"))
            finally:
                for p in [path, *folder.glob(f"{path.name}.*")]:
                    p.unlink(missing_ok=True)
            problems = [a for a in answers if a] + ([] if len(replies) == len(nodes) else [
                f"{len(nodes) - len(replies)} of {len(nodes)} node(s) wrote a file this machine cannot see"])
            if problems:
                raise ValueError(f"{folder} is not shared with the Ray workers ({'; '.join(problems)}): the embedding "
                                 f"cache and the run folder must be on a path every node sees at the same place "
                                 f"(NFS, or object storage mounted there); set cache_dir/out to such a path")

    def _gpus_per_actor(self, resources: dict[str, float]) -> float:
        if self.settings.num_gpus_per_actor is not None:
            return self.settings.num_gpus_per_actor
        return 1.0 if resources.get("GPU", 0) > 0 else 0.0

    def _n_actors(self, resources: dict[str, float], gpus: float) -> int:
        if self.settings.num_actors is not None:
            return self.settings.num_actors
        if gpus > 0:
            return max(1, int(resources.get("GPU", 0) / gpus))
        return max(1, int(resources.get("CPU", 1) / self.settings.num_cpus_per_actor))

    def embed(self, jobs: Sequence[EmbedJob], *, cache_dir: str | Path, log: Callable[[str], Any] = print,
              show_progress: bool = False) -> None:
        """Embed every job into the cache (skipping those already there), shard by shard on one pool of actors;
        lexical encoders (``bow:``, ``order:``) are skipped, they are fitted inside their units."""
        from spatial_probing.embed import EmbeddingCache, LexicalEncoder, load_encoder

        cache = EmbeddingCache(cache_dir)
        groups: dict[EmbedJob, list[EmbedJob]] = {}
        for job in jobs:  # the encoder's settings, without the inputs, name an encoder group
            groups.setdefault(replace(job, examples=(), layers="", image_dir=None), []).append(job)
        plans: list[tuple[EmbedJob, Any, list[_Plan]]] = []
        for spec, group in groups.items():
            # fingerprints and layer names need no weights: the driver never loads a model
            encoder = load_encoder(spec.encoder, model_path=spec.model_path, device="cpu",
                                   batch_size=spec.batch_size, precision=spec.precision)
            if not isinstance(encoder, LexicalEncoder):
                todo = [p for p in (_Plan.make(job, encoder, cache) for job in group) if p is not None]
                if todo:
                    plans.append((spec, encoder, todo))
        if plans:
            self._embed_plans(plans, cache, log=log, show_progress=show_progress)

    def _embed_plans(self, plans: list[tuple[EmbedJob, Any, list[_Plan]]], cache: Any, *,
                     log: Callable[[str], Any], show_progress: bool) -> None:
        """Shard every plan and embed the shards on one actor pool, encoder by encoder, then assemble each job's
        entries."""
        ray = import_ray()
        from tqdm.auto import tqdm

        resources = ray.cluster_resources()
        gpus = self._gpus_per_actor(resources)
        sizes = {spec: math.ceil(self.settings.shard_size / enc.batch_size) * enc.batch_size for spec, enc, _ in plans}
        n_shards = sum(p.n_shards(sizes[spec]) for spec, _, todo in plans for p in todo)
        worker = ray.remote(EmbedWorker).options(
            num_cpus=self.settings.num_cpus_per_actor, num_gpus=gpus, max_restarts=self.settings.max_retries,
            max_task_retries=self.settings.max_retries)
        actors = [worker.remote(str(cache.root), self._setup)
                  for _ in range(min(self._n_actors(resources, gpus), n_shards))]
        log(f"embed (ray): {', '.join(enc.name for _, enc, _ in plans)}: {n_shards} shard(s) of ≤ "
            f"{max(sizes.values())} texts on {len(actors)} actor(s) ({self.settings.num_cpus_per_actor:g} CPU, "
            f"{gpus:g} GPU each)")
        try:
            with tqdm(total=n_shards, desc="embed (ray)", unit="shard", disable=not show_progress) as bar:
                for spec, encoder, todo in plans:  # encoder by encoder: each actor loads each model at most once
                    refs = {i: actors[i % len(actors)].order.remote(spec, p.uniq_texts)
                            for i, p in enumerate(todo) if p.sharded}
                    orders = dict(zip(refs, ray.get(list(refs.values()))))
                    shards = [s for i, p in enumerate(todo) for s in p.cut(orders.get(i), sizes[spec], encoder, cache)]
                    queue, free, running = [s for s in shards if not s.done], list(actors), {}
                    bar.update(len(shards) - len(queue))
                    while queue or running:
                        while free and queue:
                            actor, shard = free.pop(), queue.pop(0)
                            running[actor.embed.remote(spec, list(shard.examples), shard.layers,
                                                       shard.image_dir)] = actor
                        ready, _ = ray.wait(list(running), num_returns=1)
                        for ref in ready:
                            ray.get(ref)
                            free.append(running.pop(ref))
                            bar.update()
        finally:
            for actor in actors:
                ray.kill(actor)
        for _, encoder, todo in plans:
            for plan in todo:
                plan.assemble(encoder, cache)


@dataclass(frozen=True)
class _Shard:
    examples: tuple[Example, ...]
    layers: list[str]
    image_dir: str | None
    done: bool


@dataclass
class _Plan:
    """One job's missing layers; for a text encoder its distinct texts, cut into shards once their order is known."""

    job: EmbedJob
    fingerprint: str
    inputs_key: str
    layers: list[str]
    sharded: bool
    uniq_examples: list[Example]
    inverse: np.ndarray
    shard_keys: list[tuple[np.ndarray, str]] | None = None

    @property
    def uniq_texts(self) -> list[str]:
        return [e.text for e in self.uniq_examples]

    @classmethod
    def make(cls, job: EmbedJob, encoder: Any, cache: Any) -> _Plan | None:
        """The plan of ``job``, or None when every layer it needs is cached already."""
        from spatial_probing.embed import inputs_hash, select_layers
        from spatial_probing.embed.encoders import _TextEncoder, _unique

        fp = encoder.fingerprint(memo_file=cache.root / "weights-sha256.json")
        key = inputs_hash(job.examples, encoder, image_dir=job.image_dir)
        missing = [layer for layer in select_layers(job.layers, encoder.layer_names)
                   if cache.load(fp, key, layer) is None]
        if not missing:
            return None
        # text-only encoders batch distinct texts longest first: shards are runs of whole batches of that order;
        # image inputs are embedded by one actor as a whole (one shard)
        sharded = isinstance(encoder, _TextEncoder) and encoder.config.modality == "text"
        uniq, inverse = _unique(list(job.examples), key=lambda e: e.text) if sharded else (list(job.examples), None)
        return cls(job, fp, key, missing, sharded, uniq, inverse)

    def n_shards(self, size: int) -> int:
        return math.ceil(len(self.uniq_examples) / size) if self.sharded else 1

    def cut(self, order: np.ndarray | None, size: int, encoder: Any, cache: Any) -> list[_Shard]:
        """The shards of this job (each marked done when all its layers are cached)."""
        if not self.sharded or order is None:
            return [_Shard(self.job.examples, self.layers, self.job.image_dir, False)]
        from spatial_probing.embed import inputs_hash

        self.shard_keys, shards = [], []
        for start in range(0, len(order), size):
            rows = np.asarray(order[start:start + size])
            examples = tuple(self.uniq_examples[i] for i in rows)
            key = inputs_hash(examples, encoder)
            self.shard_keys.append((rows, key))
            done = all(cache.load(self.fingerprint, key, layer) is not None for layer in self.layers)
            shards.append(_Shard(examples, self.layers, None, done))
        return shards

    def assemble(self, encoder: Any, cache: Any) -> None:
        """Concatenate the shards' entries into the job's own entries (the rows a single local pass would write)."""
        from spatial_probing.embed.cache import save_embeddings

        if not self.sharded:
            return  # the actor wrote the job's own entries
        arrays: dict[str, np.ndarray] = {}
        for layer in self.layers:
            parts = []
            for rows, key in self.shard_keys or []:
                part = cache.load(self.fingerprint, key, layer)
                if part is None:
                    raise ValueError(f"embedding shard {key[:12]} of {self.job.encoder} (layer {layer}) is not in "
                                     f"{cache.root} after its worker finished: the workers write to another folder "
                                     f"(cache_dir must be a path every node shares)")
                parts.append((rows, part))
            out = np.empty((len(self.uniq_examples), parts[0][1].shape[1]), dtype=np.float32)
            for rows, part in parts:
                out[rows] = part
            identity = np.array_equal(self.inverse, np.arange(len(self.uniq_examples)))
            arrays[layer] = out if identity else np.ascontiguousarray(out[self.inverse])
        save_embeddings(cache, encoder, self.fingerprint, self.inputs_key, list(self.job.examples), arrays)


# ----------------------------------------------------------------------------------------------- seams

def map_units(fn: Callable[[Any, str | Path | None], Any], units: Sequence[Any], *, executor: RayExecutor | None,
              stage: str, label: Callable[[Any], str], done: Callable[[Any, str], bool],
              model_paths: dict[str, str | Path] | None, cache_dir: str | Path, log: Callable[[str], Any] = print,
              show_progress: bool = False, group: Callable[[Any], Hashable] | None = None,
              on_group_done: Callable[[Any], Any] | None = None) -> None:
    """Call ``fn(unit, model_path)`` for every unit whose part is not current (``done(unit, weights_hash)``).

    ``executor=None``: here, in order, one group (``group(unit)``, e.g. the task) after the other with
    ``on_group_done(key)`` after each, as the runners always did. A :class:`RayExecutor`: every pending unit is
    one Ray task, submitted at once; ``on_group_done`` runs when a group's last unit has finished, and a progress
    bar on the driver counts finished units (with ETA). ``fn`` must write the unit's part itself.
    """
    from spatial_probing.probe.runner import encoder_weights_hash, pending_units

    key_of = group or (lambda _: None)
    keys = list(dict.fromkeys(key_of(u) for u in units))
    if executor is None:
        for key in keys:
            for unit, model_path in pending_units([u for u in units if key_of(u) == key], done, stage=stage,
                                                  label=label, model_paths=model_paths, cache_dir=cache_dir, log=log,
                                                  show_progress=show_progress):
                fn(unit, model_path)
            if on_group_done is not None:
                on_group_done(key)
        return
    ray = import_ray()
    from tqdm.auto import tqdm

    s = executor.settings
    task = ray.remote(_unit_task).options(num_cpus=s.unit_cpus, num_gpus=s.unit_gpus, max_retries=s.max_retries)
    fn_ref = ray.put(fn)
    left = Counter(key_of(u) for u in units)
    running: dict[Any, Any] = {}

    def finished(unit: Any) -> None:
        left[key_of(unit)] -= 1
        if left[key_of(unit)] == 0 and on_group_done is not None:
            on_group_done(key_of(unit))

    with tqdm(total=len(units), desc=f"{stage} (ray)", unit="unit", disable=not show_progress) as bar:
        for unit in units:
            model_path = (model_paths or {}).get(unit.encoder)
            if done(unit, encoder_weights_hash(unit.encoder, model_path=model_path, cache_dir=cache_dir)):
                log(f"skip {stage} {label(unit)}: done (config {unit.digest()}, same weights, data and format)")
                bar.update()
                finished(unit)
            else:
                running[task.remote(fn_ref, unit, model_path, executor._setup)] = unit
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                unit = running.pop(ref)
                ray.get(ref)  # a unit's own error is raised here (as its original type)
                log(f"{stage} {label(unit)}: finished on ray")
                bar.set_postfix_str(label(unit), refresh=False)
                bar.update()
                finished(unit)


@contextmanager
def open_executor(kind: str = "local", *, address: str | None = None, settings: RaySettings | None = None,
                  registries: Sequence[str | Path] = (), shared: Sequence[str | Path] = (),
                  log: Callable[[str], Any] = print) -> Iterator[RayExecutor | None]:
    """The executor named ``kind``: None for ``local``; for ``ray`` a :class:`RayExecutor` on the running Ray
    instance, else on the cluster at ``address`` (or ``$RAY_ADDRESS``), else on a local instance sized to this
    machine (shut down on exit). ``shared`` folders are checked to be visible to every node's workers;
    ``registries`` (encoder YAML files) are registered in every worker."""
    if kind not in EXECUTORS:
        raise ValueError(f"executor={kind!r}: expected one of {', '.join(EXECUTORS)}")
    if kind == "local":
        yield None
        return
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address=address, include_dashboard=False)  # address None and no $RAY_ADDRESS: a local instance
    try:
        resources = ray.cluster_resources()
        where = address or os.environ.get("RAY_ADDRESS") or ("a local instance" if started else "the running instance")
        log(f"ray: {where}, {len([n for n in ray.nodes() if n.get('Alive')])} node(s), "
            f"{resources.get('CPU', 0):g} CPU, {resources.get('GPU', 0):g} GPU")
        executor = RayExecutor(settings or RaySettings(), tuple(str(Path(r).resolve()) for r in registries))
        executor.check_shared(shared)
        yield executor
    finally:
        if started:
            ray.shutdown()


def executor_for(config: Any, *, log: Callable[[str], Any] = print) -> AbstractContextManager[RayExecutor | None]:
    """:func:`open_executor` for a run config (its ``executor``, ``ray_address``, ``ray``, registries, folders)."""
    cache = config.cache_dir if config.cache_dir is not None else Path(config.out) / "cache"
    return open_executor(config.executor, address=config.ray_address, settings=config.ray,
                         registries=config.encoder_registries, shared=[config.out, cache], log=log)


def unit_embed_jobs(units: Sequence[Any], *, data_dir: str | Path | None = None,
                    model_paths: dict[str, str | Path] | None = None,
                    image_dir: str | Path | None = None) -> list[EmbedJob]:
    """The embeddings the probe units will read (one job per encoder × examples × layers; lexical ones left out)."""
    from spatial_probing.embed import get_encoder_config
    from spatial_probing.probe.runner import examples_hash, task_examples
    from spatial_probing.probe.tasks import get_task

    loaded: dict[str, tuple[Example, ...]] = {}
    jobs: dict[tuple, EmbedJob] = {}
    for u in units:
        model_path = (model_paths or {}).get(u.encoder)
        if get_encoder_config(u.encoder, model_path=model_path).kind == "lexical":
            continue
        which = repr((u.task, u.split, sorted(u.load_kwargs.items()), u.max_train, u.max_test, u.settings.seeds[0]))
        if which not in loaded:
            loaded[which] = tuple(get_task(u.task).items(task_examples(
                u.task, data_dir=data_dir, split=u.split, load_kwargs=u.load_kwargs, max_train=u.max_train,
                max_test=u.max_test, seed=u.settings.seeds[0])).examples)
        examples = loaded[which]
        precision = getattr(u, "precision", "fp32")
        key = (u.encoder, u.layers, u.settings.device, precision, examples_hash(examples))
        jobs.setdefault(key, EmbedJob(u.encoder, examples, layers=u.layers, device=u.settings.device,
                                      precision=precision, model_path=None if model_path is None else str(model_path),
                                      image_dir=None if image_dir is None else str(image_dir)))
    return list(jobs.values())
