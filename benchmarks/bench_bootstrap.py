"""Benchmark: the vectorised, clustered bootstrap of one probe unit (``runner.summarize_unit``).

Shape of the unit issue 17 names: vsr-relation (66 relations in 7 categories) × 14 mpnet layers ×
3 seeds × 2,195 test items, 1,000 resamples, items clustered by image (≈ 1.5 captions per image).
Predictions are synthetic arrays of that shape (the bootstrap's cost does not depend on which
labels are right). Every interval of the unit — accuracy, control accuracy, selectivity and the
majority baseline on every subset (1 + 7 + 66), macro-F1 on ``all`` — comes from one matrix of
cluster draws. Writes benchmarks/results/bootstrap.json.

    python benchmarks/bench_bootstrap.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from spatial_probing.io import atomic_write_json
from spatial_probing.probe.engine import LayerSeedResult
from spatial_probing.probe.runner import summarize_unit
from spatial_probing.probe.tasks import ProbeItems

ROOT = Path(__file__).resolve().parents[1]


def synthetic_unit(n_test: int = 2195, n_layers: int = 14, n_seeds: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    relations = np.array([f"rel{i:02d}" for i in range(66)], dtype=object)
    categories = np.array([f"cat{i % 7}" for i in range(66)], dtype=object)
    y = rng.integers(0, 66, n_test)
    images = np.sort(rng.integers(0, int(n_test / 1.5), n_test))
    items = ProbeItems(ids=[f"vsr/{i}" for i in range(n_test)], labels=relations[y], control_types=["t"] * n_test,
                       groups=[f"image:{g}" for g in images], splits=["test"] * n_test, concepts=[("a", "b")] * n_test,
                       subsets={"category": list(categories[y]), "relation": list(relations[y])},
                       rows_a=np.arange(n_test))
    results = []
    for layer in range(n_layers):
        for s in range(n_seeds):
            right = rng.random(n_test) < 0.3 + 0.04 * layer
            pred = np.where(right, relations[y], relations[rng.integers(0, 66, n_test)])
            ctrl = relations[rng.integers(0, 66, n_test)]
            results.append(LayerSeedResult(str(layer), s, pred, ctrl, np.where(rng.random(n_test) < 0.5, ctrl, pred),
                                           1.0, 1.0, 0.5, 0.3))
    return items, results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bootstrap.json"))
    args = ap.parse_args()
    items, results = synthetic_unit()
    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        res, _ = summarize_unit(items, np.arange(len(items.ids)), results, dataset="vsr", task="vsr-relation",
                                encoder="sbert-mpnet", probe="linear", split="random",
                                train_labels=list(items.labels), report_by=["category", "relation"],
                                n_boot=args.n_boot, chance=None)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    out = {"what": "summarize_unit: clustered bootstrap of one unit (vsr-relation shape)", "n_test": len(items.ids),
           "layers": 14, "seeds": 3, "subsets": int(res[res.metric == "accuracy"].groupby(["subset_kind", "subset"])
                                                   .ngroups), "n_boot": args.n_boot,
           "n_clusters": len(set(items.groups)), "seconds": times, "best_s": min(times), "cpu_seconds": cpu,
           "best_cpu_s": min(cpu),
           "load_average": os.getloadavg(), "cpus": os.cpu_count(),
           "machine": platform.processor() or platform.machine(),
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(Path(args.out), out)
    print(f"summarize_unit ({out['subsets']} subsets × 42 layer-seeds × {args.n_boot} resamples, clustered): "
          f"best {min(times):.2f} s wall, {min(cpu):.2f} s CPU of {args.repeats}; load {out['load_average'][0]:.1f}")


if __name__ == "__main__":
    main()
