"""Benchmark: our RDM + rho-a + 1,000 item permutations vs rsatoolbox on the same input and permutations.

Input: 2,000 distinct VSR captions (random split, train) embedded by all-mpnet-base-v2 (``final``),
or — only if the model or data is absent — a fixed random matrix (recorded in the JSON). The
data RDM is the correlation distance (the same in both libraries); the reference is VSR's
meta-category same/different RDM; the comparison is rho-a.

* ours: ``calc_rdm`` + ``permutation_test`` (ranks once, one gather per permutation);
* rsatoolbox, its own machinery: ``calc_rdm`` once, then per permutation ``permute_rdms`` +
  ``compare(method="rho-a")``; and the plain loop ``calc_rdm(shuffled rows)`` + ``compare``.
  Both run a measured subset of the same permutations (``--rsatoolbox-permutations``) and are
  extrapolated linearly to all of them (each iteration does the same work); the JSON says so.

The observed value and the null values of the subset must agree to 1e-6.

Run by hand:
    python benchmarks/bench_rsa.py [--model-path /work/models/all-mpnet-base-v2] [--data-dir ../shared/data]
Writes benchmarks/results/rsa.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
from rsatoolbox.data import Dataset
from rsatoolbox.rdm import RDMs, calc_rdm as rsa_calc_rdm, compare as rsa_compare
from rsatoolbox.rdm.rdms import permute_rdms

from spatial_probing.io import atomic_write_json
from spatial_probing.rsa import build_reference, calc_rdm, item_permutations, permutation_test

ROOT = Path(__file__).resolve().parents[1]


def load_input(model_path: Path, data_dir: Path, n: int, seed: int, cache_dir: Path
               ) -> tuple[np.ndarray, list, str]:
    """(embeddings, examples, description): real mpnet embeddings of distinct VSR captions, else random."""
    from spatial_probing.data import load_dataset

    examples = None
    if data_dir.is_dir():
        train = [e for e in load_dataset("vsr", data_dir=data_dir, variant="random") if e.split == "train"]
        first: dict[str, int] = {}
        for i, e in enumerate(train):
            first.setdefault(e.text, i)
        rows = np.sort(np.random.default_rng(seed).choice(sorted(first.values()), size=n, replace=False))
        examples = [train[i] for i in rows]
        if model_path.is_dir():
            from spatial_probing.embed import embed_examples, load_encoder

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            encoder = load_encoder("sbert-mpnet", model_path=model_path, device="cpu")
            # embed the whole train list (what the probe benchmark caches), then take the chosen rows
            x = np.asarray(embed_examples(train, encoder, layers="final", cache_dir=cache_dir)["final"])[rows]
            return x.astype(np.float64), examples, f"all-mpnet-base-v2 'final' embeddings of {n} distinct VSR captions"
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 768))
    if examples is None:
        from spatial_probing.data.schema import Example

        examples = [Example(id=f"random/{i}", dataset="vsr", split="train", text=f"t{i}", relation=f"r{i % 66}",
                            category=f"c{i % 7}") for i in range(n)]
    return x, examples, f"fixed random N(0, 1) matrix {n}×768 (seed {seed}): model or data absent"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-path", type=Path, default=Path("/work/models/all-mpnet-base-v2"))
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "benchmarks" / ".cache")
    ap.add_argument("--n-items", type=int, default=2000)
    ap.add_argument("--n-permutations", type=int, default=1000)
    ap.add_argument("--rsatoolbox-permutations", type=int, default=30,
                    help="measured subset for rsatoolbox (extrapolated linearly to --n-permutations)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rsa.json")
    args = ap.parse_args()

    load_before = os.getloadavg()
    x, examples, source = load_input(args.model_path, args.data_dir, args.n_items, args.seed, args.cache_dir)
    ref = build_reference("category", examples)
    assert ref.keep.all(), ref.note
    k = min(args.rsatoolbox_permutations, args.n_permutations)

    t = time.perf_counter()
    perms = item_permutations(len(x), n_permutations=args.n_permutations, seed=args.seed)
    data_rdm = calc_rdm(x, method="correlation")
    ours = permutation_test(data_rdm, ref.rdm, method="rho_a", permutations=perms)
    t_ours = time.perf_counter() - t

    ref_rdms = RDMs(ref.rdm[None])
    t = time.perf_counter()
    rsa_rdm = rsa_calc_rdm(Dataset(x), method="correlation")
    rsa_rdm.pattern_descriptors.setdefault("index", list(range(len(x))))  # permute_rdms needs it
    rsa_obs = float(rsa_compare(rsa_rdm, ref_rdms, method="rho-a")[0, 0])
    t_setup = time.perf_counter() - t
    t = time.perf_counter()
    null_machinery = [float(rsa_compare(permute_rdms(rsa_rdm, p), ref_rdms, method="rho-a")[0, 0]) for p in perms[:k]]
    t_machinery = time.perf_counter() - t
    k_loop = max(1, k // 3)
    t = time.perf_counter()
    null_loop = [float(rsa_compare(rsa_calc_rdm(Dataset(x[p]), method="correlation"), ref_rdms, method="rho-a")[0, 0])
                 for p in perms[:k_loop]]
    t_loop = time.perf_counter() - t

    scale = args.n_permutations / k
    rsa_machinery_total = t_setup + t_machinery * scale
    rsa_loop_total = t_setup + t_loop * args.n_permutations / k_loop
    diff_obs = abs(ours.value - rsa_obs)
    diff_null = float(max(np.max(np.abs(ours.null[:k] - null_machinery)), np.max(np.abs(ours.null[:k_loop] - null_loop))))
    result = {
        "benchmark": "rsa: correlation-distance RDM + rho-a vs a reference + item permutation test",
        "input": source, "n_items": len(x), "n_features": int(x.shape[1]), "n_pairs": int(data_rdm.size),
        "reference": "VSR meta-category same (0) / different (1)", "rdm_method": "correlation",
        "comparison": "rho_a (rsatoolbox 'rho-a')", "n_permutations": args.n_permutations, "seed": args.seed,
        "ours_seconds": t_ours,
        "rsatoolbox_permute_rdms_seconds": rsa_machinery_total,
        "rsatoolbox_permute_rdms_measured": {"permutations": k, "seconds": t_machinery, "setup_seconds": t_setup,
                                             "note": f"measured {k} permutations, extrapolated linearly to "
                                                     f"{args.n_permutations}"},
        "rsatoolbox_recompute_loop_seconds": rsa_loop_total,
        "rsatoolbox_recompute_loop_measured": {"permutations": k_loop, "seconds": t_loop,
                                               "note": f"calc_rdm(shuffled rows) + compare; measured {k_loop}, "
                                                       f"extrapolated linearly to {args.n_permutations}"},
        "ratio_ours_over_rsatoolbox": t_ours / rsa_machinery_total,
        "ratio_ours_over_rsatoolbox_recompute_loop": t_ours / rsa_loop_total,
        "target_ratio": 0.05,
        "observed_rho_a": {"ours": ours.value, "rsatoolbox": rsa_obs, "abs_diff": diff_obs},
        "null_max_abs_diff": diff_null, "values_agree_1e-6": bool(diff_obs <= 1e-6 and diff_null <= 1e-6),
        "p_value": ours.p_value, "null_mean": float(ours.null.mean()), "null_max": float(ours.null.max()),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                    "note": "shared machine: other jobs ran at the same time (see load averages)"},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {p: metadata.version(p) for p in ("numpy", "scipy", "rsatoolbox", "spatial-probing")},
    }
    atomic_write_json(args.out, result)
    print(f"ours {t_ours:.2f}s; rsatoolbox permute_rdms {rsa_machinery_total:.1f}s (ratio "
          f"{result['ratio_ours_over_rsatoolbox']:.4f}); recompute loop {rsa_loop_total:.1f}s; "
          f"values agree: {result['values_agree_1e-6']} (obs diff {diff_obs:.2e}, null diff {diff_null:.2e})")


if __name__ == "__main__":
    main()
