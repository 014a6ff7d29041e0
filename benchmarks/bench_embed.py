"""Embed-stage benchmark: our encoder and cache vs ``SentenceTransformer.encode``, side by side in one run.

On 2,000 VSR captions (random split, train) with real all-mpnet-base-v2 on this machine's CPU:

* final-layer throughput ÷ ``SentenceTransformer.encode`` throughput     (target ≥ 1.0)
  — reported on the 2,000 captions as given (duplicates included, which our encoder
  embeds once) and, separately, on the distinct captions only (the engine alone);
* all-layers extraction time ÷ final-layer time                          (target ≤ 1.1);
* warm-cache time ÷ cold time for ``embed_examples`` with a fresh encoder (target ≤ 0.02);
* peak resident memory of each job, each in a fresh process;
* ``--precision-only``: bf16 and int8 rows (throughput ÷ ``SentenceTransformer.encode``, target ≥ 2.0;
  min and mean cosine to our fp32 output over every layer, target ≥ 0.999) and the kernel each ran;
* ``--precision-probe``: the default probe unit (vsr-relation, 3,000 / 2,195 captions, every layer,
  ``ProbeSettings()``) on fp32 and on bf16 embeddings: bf16's task accuracy inside fp32's 95% interval.

Timings are medians over ``--repeats`` interleaved runs. The machine may be shared with other
work, so each job's process CPU time is recorded next to its wall time, ratios are given for
both, and the load average is logged at the start and end.
Run by hand:  python benchmarks/bench_embed.py [--model-path DIR] [--data-dir DIR]
Writes benchmarks/results/embed.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_CAPTIONS = 2000
BATCH_SIZE = 32


def _default_model_dir() -> Path | None:
    for c in (os.environ.get("SPATIAL_PROBING_MPNET_DIR"), "/work/models/all-mpnet-base-v2",
              ROOT.parent / "shared" / "models" / "all-mpnet-base-v2"):
        if c and Path(c).is_dir():
            return Path(c)
    return None


def _captions(data_dir: Path) -> list:
    from spatial_probing.data import load_dataset

    return load_dataset("vsr", data_dir=data_dir, variant="random", split="train")[:N_CAPTIONS]


def _peak_rss_job(job: str, model_dir: str, data_dir: str, queue) -> None:
    """Child process: run one job once and report its peak RSS in MiB."""
    from sentence_transformers import SentenceTransformer

    from spatial_probing.embed import configure_threads, load_encoder

    examples = _captions(Path(data_dir))
    texts = [e.text for e in examples]
    configure_threads()
    if job == "sentence_transformers":
        SentenceTransformer(model_dir, device="cpu").encode(texts, batch_size=BATCH_SIZE)
    else:
        load_encoder("sbert-mpnet", model_path=model_dir, device="cpu", batch_size=BATCH_SIZE).encode(
            texts, layers="final" if job == "ours_final" else "all")
    queue.put(_vm_hwm_mib())


def _vm_hwm_mib() -> float:
    """This process's peak resident memory (VmHWM). Not ``ru_maxrss``: on Linux that survives fork + exec,
    so a spawned child would report its (bigger) parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss(job: str, model_dir: Path, data_dir: Path) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_rss_job, args=(job, str(model_dir), str(data_dir), queue))
    proc.start()
    value = queue.get()
    proc.join()
    return round(value, 1)


def _torch_version() -> str:
    import torch

    return torch.__version__


def _cli_embed_timings() -> dict:
    """Whole-process ``spatial-probing embed`` timings, cold and fully cached, from ``bench_cli.py``'s JSON (run it
    first; this benchmark times encoders in-process)."""
    import json

    path = ROOT / "benchmarks" / "results" / "cli.json"
    if not path.is_file():
        return {"missing": f"{path.relative_to(ROOT)}: run benchmarks/bench_cli.py first"}
    cli = json.loads(path.read_text())
    return {"source": str(path.relative_to(ROOT)), "date": cli.get("date"), "load_average": cli.get("load_average"),
            **cli.get("embed", {})}


def precision_rows(args: argparse.Namespace) -> None:
    """bf16 / int8 rows: throughput against ``SentenceTransformer.encode`` (fp32) and cosine to our fp32 output,
    on ``--n-precision`` distinct captions, every layer; added to the JSON under ``precision`` (other keys kept)."""
    import json

    import numpy as np
    from sentence_transformers import SentenceTransformer

    from spatial_probing.embed import configure_threads, load_encoder
    from spatial_probing.embed.precision import cpu_flags
    from spatial_probing.io import atomic_write_json

    texts = list(dict.fromkeys(e.text for e in _captions(args.data_dir)))[: args.n_precision]
    threads = configure_threads()
    st = SentenceTransformer(str(args.model_path), device="cpu")
    encoders = {p: load_encoder("sbert-mpnet", model_path=args.model_path, device="cpu", batch_size=BATCH_SIZE,
                                precision=p) for p in ("fp32", "bf16", "int8")}
    for enc in encoders.values():
        enc.encode(texts[:32], layers="final")  # load, convert and warm up before timing
    st.encode(texts[:32], batch_size=BATCH_SIZE)
    jobs = {"sentence_transformers": lambda: st.encode(texts, batch_size=BATCH_SIZE),
            **{f"ours_{p}": (lambda e=e: e.encode(texts, layers="final")) for p, e in encoders.items()}}
    load_start = os.getloadavg()
    wall: dict[str, list[float]] = {k: [] for k in jobs}
    cpu: dict[str, list[float]] = {k: [] for k in jobs}
    for r in range(args.repeats):  # interleaved, so load changes hit every job alike
        for name, fn in jobs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
            print(f"repeat {r + 1} {name}: {wall[name][-1]:.2f} s wall, {cpu[name][-1]:.2f} s CPU", flush=True)
    ref = encoders["fp32"].encode(texts, layers="all")
    rows = {}
    for p in ("fp32", "bf16", "int8"):
        got = encoders[p].encode(texts, layers="all") if p != "fp32" else ref
        cos = {layer: (got[layer] * ref[layer]).sum(1) / (np.linalg.norm(got[layer], axis=1)
                                                          * np.linalg.norm(ref[layer], axis=1)) for layer in ref}
        st_w, st_c = statistics.median(wall["sentence_transformers"]), statistics.median(cpu["sentence_transformers"])
        w, c = statistics.median(wall[f"ours_{p}"]), statistics.median(cpu[f"ours_{p}"])
        rows[p] = {"kernel": encoders[p].info.kernel, "seconds_median": round(w, 3), "cpu_seconds_median": round(c, 3),
                   "throughput_vs_sentence_transformers": round(st_w / w, 3),
                   "cpu_throughput_vs_sentence_transformers": round(st_c / c, 3),
                   "cosine_to_fp32_final": {"min": round(float(cos["final"].min()), 6),
                                            "mean": round(float(cos["final"].mean()), 6)},
                   "cosine_to_fp32_all_layers": {"min": round(float(min(v.min() for v in cos.values())), 6),
                                                 "mean": round(float(np.mean([v.mean() for v in cos.values()])), 6)},
                   "targets": {"throughput_ge_2x": st_w / w >= 2.0,
                               "every_cosine_ge_0.999": bool(min(v.min() for v in cos.values()) >= 0.999)}}
        print(p, rows[p], flush=True)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {}
    result["precision"] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "setup": {"model": "all-mpnet-base-v2", "n_distinct_captions": len(texts), "batch_size": BATCH_SIZE,
                  "repeats": args.repeats, "torch_threads": threads, "cpu_flags": sorted(cpu_flags())},
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
        "rows": rows,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": _torch_version()},
        "cli_cold_and_warm": _cli_embed_timings(),
    }
    atomic_write_json(out, result)
    print(f"wrote {out} (precision)")


def precision_probe(args: argparse.Namespace) -> None:
    """Does bf16 change what a probe finds? The default-settings unit (vsr-relation, 3,000 train / 2,195 test
    captions, every mpnet layer, ``ProbeSettings()``) probed on fp32 and on bf16 embeddings: per layer, each
    task accuracy with its 95% image-clustered bootstrap interval, and whether bf16's lies inside fp32's.
    Added to the JSON under ``precision.probe`` (other keys kept)."""
    import json

    import numpy as np
    import torch

    from spatial_probing.embed import configure_threads, embed_examples, load_encoder
    from spatial_probing.io import atomic_write_json
    from spatial_probing.probe.engine import ProbeSettings, probe_arrays
    from spatial_probing.probe.runner import task_examples
    from spatial_probing.probe.splits import outer_folds
    from spatial_probing.probe.stats import bootstrap_metric
    from spatial_probing.probe.tasks import get_task

    task = get_task("vsr-relation")
    items = task.items(task_examples("vsr-relation", data_dir=args.data_dir, split="own", max_train=3000, seed=0))
    (fold,) = outer_folds("own", items.splits, items.concepts, train_splits=task.spec.train_splits,
                          test_splits=task.spec.test_splits)
    tr, te = fold.train, fold.test
    threads = configure_threads()
    settings = ProbeSettings(device="cpu")
    rows, kernels = {}, {}
    for precision in ("fp32", "bf16"):
        encoder = load_encoder("sbert-mpnet", model_path=args.model_path, device="cpu", batch_size=BATCH_SIZE,
                               precision=precision)
        kernels[precision] = encoder.info.kernel
        emb = embed_examples(items.examples, encoder, layers="all", cache_dir=args.cache_dir, show_progress=True)
        feats = {k: items.features(np.asarray(v, dtype=np.float32)) for k, v in emb.items()}
        torch.set_num_threads(threads)
        res = probe_arrays({k: v[tr] for k, v in feats.items()}, items.labels[tr], {k: v[te] for k, v in feats.items()},
                           groups_train=[items.groups[i] for i in tr],
                           control_types_train=[items.control_types[i] for i in tr],
                           control_types_test=[items.control_types[i] for i in te], settings=settings,
                           show_progress=True)
        rows[precision] = {r.layer: r.y_pred for r in res if r.seed == settings.seeds[0]}  # the task probe is seed-free
        print(f"{precision}: probed {len(rows[precision])} layers", flush=True)
    y_test, clusters = items.labels[te], [items.groups[i] for i in te]
    layers = {}
    for layer, pred32 in rows["fp32"].items():
        acc32 = bootstrap_metric("accuracy", y_test, pred32, clusters=clusters, seed=0)
        acc16 = bootstrap_metric("accuracy", y_test, rows["bf16"][layer], clusters=clusters, seed=0)
        layers[layer] = {"fp32": [round(100 * x, 2) for x in acc32], "bf16": [round(100 * x, 2) for x in acc16],
                         "diff_points": round(100 * (acc16[0] - acc32[0]), 2),
                         "bf16_inside_fp32_interval": bool(acc32[1] <= acc16[0] <= acc32[2]),
                         "predictions_that_differ": int(np.sum(rows["bf16"][layer] != pred32))}
        print(layer, layers[layer], flush=True)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {}
    result.setdefault("precision", {})["probe"] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "what": "vsr-relation × all-mpnet-base-v2, 3,000 train / 2,195 test, ProbeSettings() defaults; task accuracy "
                "(points) with its 95% image-clustered bootstrap interval [value, low, high] per layer",
        "kernels": kernels, "layers": layers,
        "max_abs_diff_points": max(abs(v["diff_points"]) for v in layers.values()),
        "targets": {"bf16_accuracy_inside_fp32_interval_every_layer":
                    all(v["bf16_inside_fp32_interval"] for v in layers.values())},
    }
    atomic_write_json(out, result)
    print(f"wrote {out} (precision.probe)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", type=Path, default=_default_model_dir())
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("SPATIAL_PROBING_DATA",
                                                                           ROOT.parent / "shared" / "data")))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "embed.json")
    parser.add_argument("--precision-only", action="store_true", help="only the bf16/int8 rows (fp32 baseline)")
    parser.add_argument("--n-precision", type=int, default=512, help="distinct captions for the precision rows")
    parser.add_argument("--precision-probe", action="store_true",
                        help="only the probe check: the default unit probed on fp32 and bf16 embeddings")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "benchmarks" / ".cache",
                        help="--precision-probe: embedding cache (fp32 entries are reused)")
    args = parser.parse_args()
    if args.model_path is None or not args.model_path.is_dir():
        sys.exit("all-mpnet-base-v2 not found: pass --model-path DIR (../shared/tools/get-models.sh DIR)")
    if args.precision_only:
        return precision_rows(args)
    if args.precision_probe:
        return precision_probe(args)

    import numpy as np
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    from spatial_probing.embed import configure_threads, embed_examples, load_encoder
    from spatial_probing.io import atomic_write_json

    examples = _captions(args.data_dir)
    texts = [e.text for e in examples]
    unique = list(dict.fromkeys(texts))
    threads = configure_threads()
    st = SentenceTransformer(str(args.model_path), device="cpu")
    ours = load_encoder("sbert-mpnet", model_path=args.model_path, device="cpu", batch_size=BATCH_SIZE)
    ours.encode(texts[:64], layers="final")  # load weights and warm up both before timing
    st.encode(texts[:64], batch_size=BATCH_SIZE)

    def timed(fn) -> tuple[float, float]:
        """(wall seconds, process CPU seconds) of one call."""
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - start, time.process_time() - cpu

    jobs = {
        "sentence_transformers": lambda: st.encode(texts, batch_size=BATCH_SIZE),
        "ours_final": lambda: ours.encode(texts, layers="final"),
        "ours_all_layers": lambda: ours.encode(texts, layers="all"),
        "sentence_transformers_unique": lambda: st.encode(unique, batch_size=BATCH_SIZE),
        "ours_final_unique": lambda: ours.encode(unique, layers="final"),
    }
    load_start = os.getloadavg()
    times: dict[str, list[float]] = {k: [] for k in jobs}
    cpu: dict[str, list[float]] = {k: [] for k in jobs}
    for r in range(args.repeats):  # interleaved, so load changes hit every job alike
        for name, fn in jobs.items():
            wall, used = timed(fn)
            times[name].append(wall)
            cpu[name].append(used)
            print(f"repeat {r + 1}/{args.repeats} {name}: {wall:.2f} s wall, {used:.2f} s CPU", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}

    # equality check alongside the speed figures
    ref = st.encode(texts, batch_size=BATCH_SIZE)
    max_abs_diff = float(np.abs(ours.encode(texts, layers="final")["final"] - ref).max())

    cold, warm = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            enc = load_encoder("sbert-mpnet", model_path=args.model_path, device="cpu", batch_size=BATCH_SIZE)
            cold.append(timed(lambda: embed_examples(examples, enc, layers="all", cache_dir=cache,
                                                     show_progress=False))[0])
            enc = load_encoder("sbert-mpnet", model_path=args.model_path, device="cpu", batch_size=BATCH_SIZE)
            warm.append(timed(lambda: embed_examples(examples, enc, layers="all", cache_dir=cache,
                                                     show_progress=False))[0])
            assert enc._model is None, "a warm run must not load the model"
            print(f"cache cold {cold[-1]:.2f} s, warm {warm[-1]:.3f} s", flush=True)

    peak = {job: _peak_rss(job, args.model_path, args.data_dir) for job in ("sentence_transformers", "ours_all_layers")}
    load_end = os.getloadavg()
    final_ratio = med["sentence_transformers"] / med["ours_final"]
    unique_ratio = med["sentence_transformers_unique"] / med["ours_final_unique"]
    all_ratio = med["ours_all_layers"] / med["ours_final"]
    cpu_final_ratio = med_cpu["sentence_transformers"] / med_cpu["ours_final"]
    cpu_unique_ratio = med_cpu["sentence_transformers_unique"] / med_cpu["ours_final_unique"]
    cpu_all_ratio = med_cpu["ours_all_layers"] / med_cpu["ours_final"]
    cache_ratio = statistics.median(warm) / statistics.median(cold)
    result = {
        "benchmark": "embed",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
                    "torch_threads": threads, "python": platform.python_version(), "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "sentence_transformers": sentence_transformers.__version__,
                    "load_average_1_5_15min": {"start": [round(x, 2) for x in load_start],
                                               "end": [round(x, 2) for x in load_end]}},
        "setup": {"model": "sentence-transformers/all-mpnet-base-v2", "model_path": str(args.model_path),
                  "data": "VSR random split, train, first 2,000 captions", "n_captions": len(texts),
                  "n_distinct_captions": len(unique), "batch_size": BATCH_SIZE, "device": "cpu",
                  "repeats": args.repeats, "n_layers_all": len(ours.layer_names)},
        "seconds_median": {k: round(v, 3) for k, v in med.items()},
        "seconds_all": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "cpu_seconds_median": {k: round(v, 3) for k, v in med_cpu.items()},
        "cache_seconds": {"cold": [round(x, 3) for x in cold], "warm": [round(x, 4) for x in warm]},
        "throughput_captions_per_s": {"sentence_transformers": round(len(texts) / med["sentence_transformers"], 1),
                                      "ours_final": round(len(texts) / med["ours_final"], 1),
                                      "ours_all_layers": round(len(texts) / med["ours_all_layers"], 1)},
        "peak_rss_mib_fresh_process": peak,
        "final_vs_sentence_transformers_max_abs_diff": max_abs_diff,
        "ratios": {
            "final_throughput_vs_sentence_transformers": {"value": round(final_ratio, 3), "target": ">= 1.0",
                                                          "met": final_ratio >= 1.0,
                                                          "cpu_time_ratio": round(cpu_final_ratio, 3)},
            "final_throughput_vs_sentence_transformers_distinct_inputs": {
                "value": round(unique_ratio, 3), "target": "(engine only; no target)",
                "cpu_time_ratio": round(cpu_unique_ratio, 3),
                "note": "both embed the same distinct captions, so de-duplication plays no part"},
            "all_layers_time_vs_final_time": {"value": round(all_ratio, 3), "target": "<= 1.1",
                                              "met": all_ratio <= 1.1, "cpu_time_ratio": round(cpu_all_ratio, 3)},
            "warm_cache_time_vs_cold_time": {"value": round(cache_ratio, 4), "target": "<= 0.02",
                                             "met": cache_ratio <= 0.02},
        },
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    for k, v in result["ratios"].items():
        print(f"  {k}: {v['value']} (target {v['target']})")
    print(f"  peak RSS MiB: {peak}")


if __name__ == "__main__":
    main()
