"""Benchmark: train the default grounding lab (configs/lab.yaml, 3 objectives × 3 seeds) on CPU, then probe it.

Records the wall time of every encoder and of the whole lab, peak RSS, loss curves' ends,
machine, date, versions and the load average (other jobs share this CPU). The lab's budget is
≤ 10 minutes on a 2-core CPU. As the reference a user would otherwise write, the same MLM
training (architecture, batch, optimiser, steps) runs as a plain ``transformers`` loop
(``BertForMaskedLM`` + ``DataCollatorForLanguageModeling``) and the steps/s ratio is reported.

Sanity figures, whatever they are: synthetic-relation and synthetic-argument-order probed on the
nine lab encoders (2 probe seeds), per objective with t intervals across the 3 lab seeds.

Run by hand:  python benchmarks/bench_lab.py   → benchmarks/results/lab.json
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import transformers

from spatial_probing.io import atomic_write_json
from spatial_probing.lab import load_lab_config, objective_comparisons, objective_summary, train_lab
from spatial_probing.lab.data import build_corpus, build_tokenizer
from spatial_probing.lab.models import build_text_encoder
from spatial_probing.lab.train import REGISTRY_FILE, _decay_groups, _lr_lambda, deterministic
from spatial_probing.pipeline import RunConfig, prepare_encoders
from spatial_probing.probe.runner import run_units

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["synthetic-relation", "synthetic-argument-order"]
CS, MAX_TRAIN, MAX_TEST = (0.1, 1.0), 800, 400  # a small probe run: the final layer, capped items


def _cpu_s() -> float:
    """User + system CPU seconds of this process, all threads (independent of what else loads the CPU)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def hf_mlm_reference(config, steps: int) -> dict:
    """The same MLM training as a plain transformers loop: BertForMaskedLM + the standard MLM collator."""
    from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

    tokenizer = build_tokenizer(config.model.max_position_embeddings)
    corpus = build_corpus(config.data, tokenizer, max_length=config.model.max_position_embeddings)
    torch.manual_seed(0)
    bert = build_text_encoder(config.model, len(tokenizer), tokenizer.pad_token_id)
    model = BertForMaskedLM(bert.config)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=config.train.mask_prob)
    features = [{"input_ids": ids} for ids in tokenizer(corpus.captions_a + corpus.captions_b)["input_ids"]]
    n = len(corpus)
    opt = torch.optim.AdamW(_decay_groups(model, config.train.weight_decay), lr=config.train.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(steps, config.train.warmup_frac))
    gen = torch.Generator().manual_seed(0)
    model.train()
    losses = []
    with deterministic(config.train.num_threads):
        start = time.perf_counter()
        for _ in range(steps):
            idx = torch.randperm(n, generator=gen)[:config.train.batch_size].tolist()
            batch = collator([features[i] for i in idx] + [features[n + i] for i in idx])
            loss = model(**batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
            opt.step()
            sched.step()
            losses.append(loss.item())
        wall = time.perf_counter() - start
    return {"steps": steps, "wall_s": wall, "steps_per_s": steps / wall, "initial_loss": float(np.mean(losses[:10])),
            "final_loss": float(np.mean(losses[-10:]))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs" / "lab.yaml"))
    ap.add_argument("--work", default=str(ROOT / "benchmarks" / ".cache" / "lab"))
    ap.add_argument("--reference-steps", type=int, default=None, help="default: the lab's train.steps")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lab.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(args.work)
    config = load_lab_config(args.config)

    load_before = os.getloadavg()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0, cpu0 = time.perf_counter(), _cpu_s()
    trained = train_lab(config, out=work / "encoders", force=True, show_progress=False, command="bench_lab")
    lab_wall, lab_cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    load_after = os.getloadavg()
    rss_training = _peak_rss_mib()
    logs = {t.name: pd.read_json(t.log_path, typ="series") for t in trained}

    reference = hf_mlm_reference(config, args.reference_steps or config.train.steps)
    ours_mlm = float(np.mean([logs[t.name]["steps_per_s"] for t in trained if t.objective == "mlm"]))

    t1 = time.perf_counter()
    probe_cfg = RunConfig(out=work / "probe", cache_dir=work / "cache", tasks=TASKS, encoders=["lab-*"],
                          encoder_registries=[work / "encoders" / REGISTRY_FILE], seeds=[0, 1], Cs=list(CS),
                          layers="final", max_train=MAX_TRAIN, max_test=MAX_TEST, mdl_seeds=0, n_boot=200,
                          device="cpu", rsa=None)
    probe_cfg = prepare_encoders(probe_cfg, log=lambda *_: None)  # probes only: no RSA, no report
    paths = run_units(probe_cfg.units(), probe_cfg.out, cache_dir=probe_cfg.cache_dir, command="bench_lab probe",
                      show_progress=False, log=lambda *_: None)
    probe_wall = time.perf_counter() - t1
    results = pd.read_parquet(paths["results"])
    predictions = pd.read_parquet(paths["predictions"])
    summary = objective_summary(results)
    comparisons = objective_comparisons(results, predictions, n_permutations=5000)

    def rows(df: pd.DataFrame, kinds: tuple[str, ...]) -> list[dict]:
        keep = df[df.subset_kind.isin(kinds)].drop(columns=["lab", "dataset", "probe"])
        return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
                for r in keep.round(4).to_dict("records")]

    final_cat = summary[summary.subset_kind == "category"]
    atomic_write_json(args.out, {
        "benchmark": "grounding lab: train configs/lab.yaml (3 objectives × 3 seeds) on CPU, then probe it",
        "date": started, "machine": {"platform": platform.platform(), "processor": platform.processor(),
                                     "cpu_count": os.cpu_count(), "torch_threads": config.train.num_threads},
        "load_average_1_5_15": {"before_training": load_before, "after_training": load_after,
                                "note": "other jobs shared this 2-core CPU during the run"},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "numpy": np.__version__, "pandas": pd.__version__},
        "config": config.model_dump(mode="json", exclude={"out"}), "config_hash": config.hash(),
        "budget_s": 600, "lab_wall_s": round(lab_wall, 1), "within_budget": lab_wall <= 600,
        "lab_cpu_s": round(lab_cpu, 1),
        "lab_cpu_s_note": f"CPU seconds of all {config.train.num_threads} training threads; on an otherwise idle "
                          f"machine the wall time is about lab_cpu_s / {config.train.num_threads}",
        "peak_rss_mib_training": round(rss_training, 1),
        "encoders": [{"name": t.name, "objective": t.objective, "seed": t.seed, "train_wall_s": round(t.wall_s, 1),
                      "steps_per_s": round(float(logs[t.name]["steps_per_s"]), 2),
                      "initial_loss": round(t.initial_loss, 4), "final_loss": round(t.final_loss, 4),
                      "initial_batch_accuracy": round(float(logs[t.name]["initial_batch_accuracy"]), 4),
                      "final_batch_accuracy": round(float(logs[t.name]["final_batch_accuracy"]), 4),
                      "batch_accuracy_kind": logs[t.name]["batch_accuracy_kind"],
                      "init_sha256": logs[t.name]["init_sha256"][:16]} for t in trained],
        "reference_mlm_loop": {
            "what": "the same MLM training as a plain transformers loop (BertForMaskedLM + "
                    "DataCollatorForLanguageModeling), same architecture, batch, optimiser and schedule",
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in reference.items()},
            "ours_mlm_steps_per_s": round(ours_mlm, 3),
            "ratio_ours_over_reference_steps_per_s": round(ours_mlm / reference["steps_per_s"], 3)},
        "probe": {"tasks": TASKS, "probe_seeds": [0, 1], "Cs": list(CS), "layers": "final", "max_train": MAX_TRAIN,
                  "max_test": MAX_TEST, "wall_s": round(probe_wall, 1),
                  "peak_rss_mib_after_probe": round(_peak_rss_mib(), 1),
                  "note": "mean over the 3 lab seeds (each averaged over 2 probe seeds), t interval across lab "
                          "seeds; chance/majority baselines alongside; selectivity = accuracy − control accuracy",
                  "per_objective": rows(summary, ("all",)), "per_category": rows(final_cat, ("category",)),
                  "objective_comparisons": rows(comparisons, ("all",))},
    })
    print(f"lab: {lab_wall:.0f} s (budget 600 s), peak RSS {rss_training:.0f} MiB; probe {probe_wall:.0f} s → {args.out}")


if __name__ == "__main__":
    main()
