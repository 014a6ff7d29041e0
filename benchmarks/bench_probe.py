"""Benchmark: the batched torch L-BFGS probe sweep vs per-probe scikit-learn LogisticRegression.

Sweep = every layer of all-mpnet-base-v2 (0..12 and "final") × 5 seeds × (task, control) on VSR
relation identity (66-way; random split, train → test). Both fit the same objective
(multinomial logistic regression, standardised features, the same fixed C, ``tol`` and
``max_iter``) so their test accuracies should agree; the batched engine fits all probes as one
computation (per-problem L-BFGS in lockstep, preconditioned, identical problems fitted once —
see :mod:`spatial_probing.probe.batched`). Seeds change the control task only, so the task probe
is the same problem for every seed: the JSON also gives the ratio against sklearn's time on the
distinct problems alone, i.e. the speed-up without that de-duplication.

Run by hand (needs the real model and data):
    python benchmarks/bench_probe.py [--model /work/models/all-mpnet-base-v2] [--data-dir ../shared/data]
Writes benchmarks/results/probe.json. For a machine without the model (a GPU box), export some
layers here and pass the file there:
    python benchmarks/bench_probe.py --export-features feats.npz:0,4,8,12
    python benchmarks/bench_probe.py --features feats.npz --device cuda --out benchmarks/results/probe-gpu.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sklearn
import torch
from threadpoolctl import threadpool_info
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from spatial_probing.data import load_dataset
from spatial_probing.embed import embed_examples, load_encoder
from spatial_probing.io import atomic_write_json
from spatial_probing.embed import resolve_device
from spatial_probing.probe.batched import fit_softmax_batched, standardize
from spatial_probing.probe.controls import control_labels

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/work/models/all-mpnet-base-v2")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--cache-dir", default=str(ROOT / "benchmarks" / ".cache"))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--C", type=float, default=0.1)
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--device", default="cpu", help="device of the batched engine (sklearn always runs on the CPU)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "probe.json"))
    ap.add_argument("--export-features", metavar="NPZ:LAYERS", help="write LAYERS (e.g. 0,4,8,12) as float16 and stop")
    ap.add_argument("--features", metavar="NPZ", help="read an --export-features file instead of the model and data")
    args = ap.parse_args()

    if args.features:
        inputs = dict(np.load(args.features, allow_pickle=False))
        layers = [str(v) for v in inputs["layers"]]
        emb_tr = {l: inputs[f"train_{l}"] for l in layers}
        emb_te = {l: inputs[f"test_{l}"] for l in layers}
        y, yt = inputs["y_train"].astype(object).tolist(), inputs["y_test"].astype(object)
        types_tr, types_te = inputs["types_train"].tolist(), inputs["types_test"].tolist()
        weights_hash, features = str(inputs["weights_sha256"]), f"{args.features} (float16 export of the cached embeddings)"
    else:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        ex = load_dataset("vsr", data_dir=args.data_dir, variant="random")
        train = [e for e in ex if e.split == "train"]
        test = [e for e in ex if e.split == "test"]
        encoder = load_encoder("sbert-mpnet", model_path=args.model, device="cpu")
        emb_tr = embed_examples(train, encoder, layers="all", cache_dir=args.cache_dir)
        emb_te = embed_examples(test, encoder, layers="all", cache_dir=args.cache_dir)
        layers = list(emb_tr)
        y = [e.relation for e in train]
        yt = np.array([e.relation for e in test], dtype=object)
        types_tr = [f"{e.subject}|{e.object}" for e in train]
        types_te = [f"{e.subject}|{e.object}" for e in test]
        weights_hash, features = encoder.info.weights_hash, "embedding cache (float32)"
        if args.export_features:  # for a machine without the model (e.g. a GPU box): chosen layers, float16
            keep = args.export_features.split(":")[1].split(",")
            arrays = {f"{part}_{l}": e[l].astype(np.float16) for l in keep for part, e in (("train", emb_tr), ("test", emb_te))}
            np.savez(args.export_features.split(":")[0], layers=np.array(keep), y_train=np.array(y), y_test=yt.astype(str),
                     types_train=np.array(types_tr), types_test=np.array(types_te), weights_sha256=weights_hash, **arrays)
            return
    classes = np.array(sorted(set(y)), dtype=object)
    idx = {c: i for i, c in enumerate(classes)}
    seeds = list(range(args.seeds))
    sets = [("task", s, np.array(y, dtype=object), yt) for s in seeds]
    for s in seeds:
        sets.append(("control", s, control_labels(types_tr, y, seed=s), control_labels(types_te, y, seed=s)))
    Ytr = np.stack([[idx[v] for v in lab] for _, _, lab, _ in sets])
    Xtr = np.stack([standardize(np.asarray(emb_tr[l], np.float64), np.asarray(emb_te[l], np.float64))[0] for l in layers])
    Xte = np.stack([standardize(np.asarray(emb_tr[l], np.float64), np.asarray(emb_te[l], np.float64))[1] for l in layers])
    n_probes = len(layers) * len(sets)
    print(f"{n_probes} probes: {len(layers)} layers × {len(seeds)} seeds × (task, control); n_train={len(y)}, "
          f"n_test={len(yt)}, dim={Xtr.shape[2]}, classes={len(classes)}")

    t0 = time.perf_counter()
    W, b = fit_softmax_batched(Xtr, np.broadcast_to(Ytr, (len(layers), *Ytr.shape)), n_classes=len(classes), C=args.C,
                               max_iter=args.max_iter, tol=args.tol, device=args.device)
    t_batched = time.perf_counter() - t0
    pred_b = (np.einsum("lmd,lqdk->lqmk", Xte, W) + b[:, :, None]).argmax(-1)
    acc_b = np.array([[np.mean(classes[pred_b[li, q]] == sets[q][3]) for q in range(len(sets))]
                      for li in range(len(layers))])
    print(f"batched torch L-BFGS: {t_batched:.1f} s")

    acc_s = np.zeros_like(acc_b)
    sec_s = np.zeros_like(acc_b)
    iters_s = np.zeros(acc_b.shape, dtype=int)
    n_unconverged = 0
    t0 = time.perf_counter()
    for li in range(len(layers)):
        for q in range(len(sets)):
            t1 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                lr = LogisticRegression(C=args.C, max_iter=args.max_iter, tol=args.tol).fit(Xtr[li], sets[q][2])
            n_unconverged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
            acc_s[li, q] = np.mean(lr.predict(Xte[li]) == sets[q][3])
            sec_s[li, q], iters_s[li, q] = time.perf_counter() - t1, int(lr.n_iter_.max())
        print(f"  sklearn layer {layers[li]} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    t_sklearn = time.perf_counter() - t0
    distinct = [0] + list(range(len(seeds), len(sets)))  # the task problem once, every control
    t_sklearn_distinct = float(sec_s[:, distinct].sum())
    diff = 100 * (acc_b - acc_s)
    task = slice(0, len(seeds))
    result = {
        "benchmark": "probe sweep: batched torch L-BFGS vs per-probe sklearn LogisticRegression (lbfgs)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "sklearn": sklearn.__version__, "batched_device": str(resolve_device(args.device)),
                    "gpu": torch.cuda.get_device_name() if resolve_device(args.device).type == "cuda" else None,
                    "sklearn_device": "cpu",
                    "blas_threads": max((p["num_threads"] for p in threadpool_info()), default=None)},
        "data": {"dataset": "VSR random split, relation identity (66-way)", "n_train": len(y), "n_test": len(yt),
                 "encoder": "sbert-mpnet (all-mpnet-base-v2)", "weights_sha256": weights_hash, "features": features,
                 "layers": layers, "dim": int(Xtr.shape[2]), "n_classes": len(classes)},
        "sweep": {"n_probes": n_probes, "distinct_problems": len(layers) * len(distinct), "seeds": len(seeds),
                  "C": args.C, "max_iter": args.max_iter, "tol": args.tol,
                  "features": "standardised with training statistics (both methods)"},
        "seconds": {"batched_torch": round(t_batched, 2), "sklearn_per_probe": round(t_sklearn, 2),
                    "sklearn_distinct_problems_only": round(t_sklearn_distinct, 2)},
        "speedup": round(t_sklearn / t_batched, 2),
        "speedup_without_deduplication": round(t_sklearn_distinct / t_batched, 2),
        "sklearn_iterations": {"task_median": int(np.median(iters_s[:, : len(seeds)])),
                               "control_median": int(np.median(iters_s[:, len(seeds):])),
                               "max": int(iters_s.max())},
        "accuracy_points": {
            "batched_task_mean": round(100 * acc_b[:, task].mean(), 3),
            "sklearn_task_mean": round(100 * acc_s[:, task].mean(), 3),
            "batched_control_mean": round(100 * acc_b[:, len(seeds):].mean(), 3),
            "sklearn_control_mean": round(100 * acc_s[:, len(seeds):].mean(), 3),
            "mean_abs_diff": round(float(np.abs(diff).mean()), 3), "max_abs_diff": round(float(np.abs(diff).max()), 3)},
        "sklearn_unconverged_fits": n_unconverged,
        "per_layer_task_accuracy": {l: {"batched": round(100 * acc_b[i, 0], 2), "sklearn": round(100 * acc_s[i, 0], 2)}
                                    for i, l in enumerate(layers)},
        "targets": {"accuracy_within_0.5_points": bool(np.abs(diff).max() <= 0.5),
                    "at_least_10x_faster": bool(t_sklearn / t_batched >= 10)},
    }
    atomic_write_json(args.out, result)
    print(result["seconds"], result["speedup"], result["accuracy_points"], result["targets"])


if __name__ == "__main__":
    main()
