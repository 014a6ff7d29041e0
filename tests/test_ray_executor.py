"""``executor: ray`` on a local 2-CPU Ray instance: the same tables and cache entries as a local run, byte for
byte; a worker killed mid-shard and mid-unit is retried; a rerun skips finished units.

The config is tiny (one synthetic task, a tiny random SBERT with the lexical floor, one seed): what is tested is
the executor, not the probes. Skipped (with the reason) only where Ray is not installed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from conftest_models import build_tiny_sbert

from spatial_probing.executor import MissingExtraError, import_ray
from spatial_probing.pipeline import RunConfig, load_run_config, run

pytestmark = pytest.mark.ray
TABLES = ("results.parquet", "results.csv", "predictions.parquet", "comparisons.parquet", "comparisons.csv",
          "rsa.parquet", "rsa.csv", "rsa_pairs.parquet")


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray instance with 2 CPUs, no dashboard, no usage reporting; shut down after the module."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ.setdefault("RAY_raylet_start_wait_time_s", "180")  # Ray's 60 s runs out on a loaded machine
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'spatial-probing[ray]')")
    # the killing wrappers below are defined here: ship them by value (workers cannot import test modules)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20,
             configure_logging=False)
    yield ray
    ray.shutdown()


def write_config(tmp: Path, sbert: Path, name: str, **extra) -> RunConfig:
    cfg = {"out": f"{name}/run", "cache_dir": f"{name}/cache", "tasks": ["synthetic-relation"],
           "encoders": ["sbert-minilm"], "seeds": [0], "Cs": [1.0], "n_boot": 100, "mdl_seeds": 0, "device": "cpu",
           "meaning": None, "report": False, "task_options": {"synthetic-relation": {"n_scenes": 24}},
           "rsa": {"n_permutations": 50, "n_boot": 50}, "model_paths": {"sbert-minilm": str(sbert)},
           "ray": {"shard_size": 20, "max_retries": 2}, **extra}  # rounded up to whole batches (32): 3 shards
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_run_config(path)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The reference: the same config under the local executor (tmp folder, tiny SBERT)."""
    tmp = tmp_path_factory.mktemp("ray-exec")
    sbert = build_tiny_sbert(tmp / "sbert")
    config = write_config(tmp, sbert, "local")
    run(config, log=lambda *_: None, show_progress=False)
    return tmp, sbert


def _same_tables(a: Path, b: Path, tables: tuple[str, ...] = TABLES) -> None:
    for name in tables:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _entries(cache: Path, encoder: str | None = None) -> dict[Path, bytes]:
    """Every entry file (``CACHE/<fingerprint>/<inputs>/<layer>.npy|.json``), or only ``encoder``'s."""
    return {p.relative_to(cache): p.read_bytes() for p in cache.rglob("*") if p.suffix in (".npy", ".json")
            and p.parent.parent.parent == cache and (encoder is None or json.loads(
                (p.parent.parent / "encoder.json").read_text())["name"] == encoder)}


def test_ray_tables_and_cache_entries_are_byte_identical_to_local(ray_session, local_run) -> None:
    tmp, sbert = local_run
    config = write_config(tmp, sbert, "ray", executor="ray")
    lines: list[str] = []
    run(config, log=lines.append, show_progress=False)
    _same_tables(tmp / "local/run", tmp / "ray/run")
    local, remote = _entries(tmp / "local/cache"), _entries(tmp / "ray/cache")
    assert local and all(remote.get(k) == v for k, v in local.items())  # the (dataset, encoder) entries
    shards = set(remote) - set(local)
    assert len([s for s in shards if s.suffix == ".npy"]) >= 2 * 4  # ≥ 2 shards × 4 layers, kept as entries
    assert any(line.startswith("embed (ray): sbert-minilm:") for line in lines)
    assert sum("finished on ray" in line for line in lines) == 6  # 3 probe + 3 RSA units (with bow:, order:)

    # a rerun under ray finds every part current: nothing recomputed, the same tables
    parts = sorted((tmp / "ray/run/parts").iterdir()) + sorted((tmp / "ray/run/rsa_parts").iterdir())
    mtimes = [p.stat().st_mtime_ns for p in parts]
    lines.clear()
    run(config, log=lines.append, show_progress=False)
    assert [p.stat().st_mtime_ns for p in parts] == mtimes
    assert sum(line.startswith("skip ") for line in lines) == 6 and not any("finished on" in x for x in lines)
    _same_tables(tmp / "local/run", tmp / "ray/run")


def _dies_once(marker: Path, real):
    """``real`` wrapped so that its first call in any worker kills that worker (os._exit) mid-work."""
    def call(*args, **kwargs):
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # the first attempt wins the marker
        except FileExistsError:
            return real(*args, **kwargs)
        os.close(fd)
        os._exit(1)
    return call


def test_workers_killed_mid_shard_and_mid_unit_are_retried_with_identical_tables(
        ray_session, local_run, monkeypatch: pytest.MonkeyPatch) -> None:
    import spatial_probing.executor as executor
    import spatial_probing.probe.runner as runner

    tmp, sbert = local_run
    unit_marker, shard_marker = tmp / "unit-killed", tmp / "shard-killed"
    monkeypatch.setattr(runner, "compute_unit", _dies_once(unit_marker, runner.compute_unit))

    class DyingWorker(executor.EmbedWorker):
        def embed(self, spec, examples, layers, image_dir):
            return _dies_once(shard_marker, super().embed)(spec, examples, layers, image_dir)

    monkeypatch.setattr(executor, "EmbedWorker", DyingWorker)
    config = write_config(tmp, sbert, "killed", executor="ray", rsa=None)  # the probe tables suffice here
    run(config, log=lambda *_: None, show_progress=False)
    assert unit_marker.exists() and shard_marker.exists()  # both workers did die once
    _same_tables(tmp / "local/run", tmp / "killed/run", TABLES[:5])
    local = _entries(tmp / "local/cache", "sbert-minilm")  # (RSA's bow:, order: entries are not made here)
    assert local and all(_entries(tmp / "killed/cache").get(k) == v for k, v in local.items())


def test_executor_setting_is_validated_and_a_missing_ray_names_the_extra(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="executor"):
        RunConfig(tasks=["synthetic-relation"], encoders=["bow:"], executor="dask")
    with pytest.raises(ValueError, match="shard_size"):
        RunConfig(tasks=["synthetic-relation"], encoders=["bow:"], ray={"shard_size": 0})
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as where it is not installed
    with pytest.raises(MissingExtraError, match=r"spatial-probing\[ray\]"):
        import_ray()


def test_cli_embed_and_run_take_executor(ray_session, local_run) -> None:
    from typer.testing import CliRunner

    from spatial_probing.cli import app

    tmp, sbert = local_run
    args = ["embed", "--dataset", "synthetic", "--encoder", str(sbert), "--split", "test", "--layers", "last,final",
            "--device", "cpu", "--batch-size", "16"]
    for name, extra in (("cli-local", []), ("cli-ray", ["--executor", "ray"])):
        result = CliRunner().invoke(app, [*args, "--out", str(tmp / name), *extra])
        assert result.exit_code == 0, result.output
    local = _entries(tmp / "cli-local")
    assert local and all(_entries(tmp / "cli-ray").get(k) == v for k, v in local.items())
    bad = CliRunner().invoke(app, ["run", str(tmp / "local.yaml"), "--executor", "dask"])
    assert bad.exit_code == 2 and "dask" in bad.output


def _blind_worker(path: str, token: str) -> str:
    """A worker on a node that does not mount the folder: it neither reads the probe file nor answers there."""
    return f"node-b: cannot read {path} ([Errno 2] No such file or directory)"


def test_a_cache_the_workers_cannot_see_is_a_clear_error(ray_session, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import spatial_probing.executor as executor

    ex = executor.RayExecutor(executor.RaySettings())
    ex.check_shared([tmp_path / "cache"])  # this machine's own folder: seen by its workers
    monkeypatch.setattr(executor, "_answer_probe", _blind_worker)
    with pytest.raises(ValueError, match=r"cache is not shared with the Ray workers \(node-b: cannot read .*"
                                         r"NFS, or object storage"):
        ex.check_shared([tmp_path / "cache"])
    assert not list((tmp_path / "cache").iterdir())  # the probe files are cleaned up
