"""Vision-side sanity check: can the lab's scene CNN itself tell where things are?

If the visual-contrastive objective does not teach the text encoder a relation, that could be a
failure of grounding or simply an image encoder that never represented the geometry. This check
separates the two: a linear probe (5-fold cross-validated logistic regression) reads the sign of
the horizontal and vertical displacement (−1 / 0 / +1) between a probe scene's two objects from
the CNN's image embedding (the vector the captions are aligned to), for every trained vision
encoder and, as a control, the same CNN at its initial weights. The objects are taken in a
fixed order (alphabetical by name), so the probe must find which object is which as well as
where they are. Scenes with an enclosing object (same cell) are left out: they have no
displacement. Chance is the majority class; intervals are Wilson 95 % over scenes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spatial_probing.lab.config import LabConfig, arm_label, encoder_name

VISION_CHECK_TABLE = "vision_check.csv"
COLUMNS = ["encoder", "arm", "seed", "features", "target", "accuracy", "ci_low", "ci_high", "majority", "n_scenes"]


def displacement_labels(examples) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(sign of dx, sign of dy, indices kept) of the two objects in alphabetical order; same-cell scenes dropped."""
    dx, dy, keep = [], [], []
    for i, ex in enumerate(examples):
        first, second = sorted(ex.source["scene"]["objects"], key=lambda o: (o["colour"], o["shape"]))
        if (first["x"], first["y"]) == (second["x"], second["y"]):
            continue
        dx.append(int(np.sign(first["x"] - second["x"])))
        dy.append(int(np.sign(first["y"] - second["y"])))
        keep.append(i)
    return np.asarray(dx), np.asarray(dy), keep


def probe_accuracy(features: np.ndarray, labels: np.ndarray, *, folds: int = 5, seed: int = 0
                   ) -> tuple[float, float, float]:
    """Cross-validated accuracy of a standardised logistic regression, with its Wilson 95 % interval."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from statsmodels.stats.proportion import proportion_confint

    counts = np.unique(labels, return_counts=True)[1]
    folds = max(2, min(folds, int(counts.min())))  # every fold needs each class once
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    predicted = cross_val_predict(model, features, labels, cv=cv)
    hits = int((predicted == labels).sum())
    low, high = proportion_confint(hits, len(labels), alpha=0.05, method="wilson")
    return hits / len(labels), float(low), float(high)


def vision_check(config: LabConfig, out: str | Path, tokenizer, *, max_scenes: int = 1000,
                 show_progress: bool = False) -> pd.DataFrame:
    """Probe dx / dy signs from each trained vision arm's scene CNN (``image_encoder.safetensors``) and from the
    same CNN at its initial weights, on the first ``max_scenes`` of the lab's probe scenes (1,000 give a Wilson
    interval of about ±3 points); rows as :data:`COLUMNS`."""
    from safetensors.torch import load_file

    from spatial_probing.data.synthetic import generate
    from spatial_probing.lab.data import image_batch, render_scenes
    from spatial_probing.lab.train import IMAGE_ENCODER_FILE, build_model, run_dir_name

    examples = [e for e in generate(n_scenes=min(config.data.probe_n_scenes, max_scenes),
                                    seed=config.data.probe_seed) if e.variant == "original"]
    dx, dy, keep = displacement_labels(examples)
    images = image_batch(render_scenes([examples[i] for i in keep], config.model.image_size,
                                       show_progress=show_progress))
    rows = []
    for seed in config.seeds:
        for objective, fraction in config.arms():
            if objective != "vision":
                continue
            path = Path(out) / run_dir_name(objective, seed, fraction) / IMAGE_ENCODER_FILE
            if not path.is_file():
                continue
            cnn = build_model(config, "vision", seed, tokenizer)["heads"]["image"].eval()
            variants = {"untrained CNN (same initial weights)": {k: v.clone() for k, v in cnn.state_dict().items()},
                        "trained CNN": load_file(str(path))}
            for features_name, state in variants.items():
                cnn.load_state_dict(state)
                with torch.no_grad():
                    features = cnn(images).numpy().astype(np.float64)
                for target, labels in (("dx sign", dx), ("dy sign", dy)):
                    acc, low, high = probe_accuracy(features, labels)
                    rows.append({"encoder": encoder_name(config.name_prefix, objective, seed, fraction),
                                 "arm": arm_label(objective, fraction), "seed": seed, "features": features_name,
                                 "target": target, "accuracy": acc, "ci_low": low, "ci_high": high,
                                 "majority": float(np.bincount(labels + 1).max() / len(labels)),
                                 "n_scenes": len(labels)})
    return pd.DataFrame(rows, columns=COLUMNS)
