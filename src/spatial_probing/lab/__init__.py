"""Grounding lab: matched small text encoders that differ only in their training objective.

Comparing CLIP with Sentence-BERT confounds the training signal with data, size, tokenizer and
architecture. The lab removes the confound: one small BERT and one word-level tokenizer,
trained from scratch on the same synthetic scene captions, in the same batch order, from the
same initial weights for a seed, with three objectives:

* ``mlm`` — distributional: masked language modelling;
* ``textcl`` — text-only contrastive: InfoNCE between a scene's ``original`` and ``converse``
  captions (two true paraphrases), in-batch negatives (Sentence-BERT / SimCSE spirit);
* ``vision`` — visual contrastive: CLIP-style symmetric InfoNCE between each caption and a
  small CNN over the rendered scene image.

The contrastive objectives also train with NegCLIP-style hard negatives (``hard_negatives``:
fractions of each batch; same-scene swapped/foil captions, counterfactual renders, object-pair
batches), each fraction an *arm* of its own (``textcl-hn1``, ``vision-hn1``); see docs/lab.md.

``spatial-probing lab train configs/lab.yaml --out runs/lab`` writes ``OUT/<arm>-seed<k>/``
(plain ``transformers`` BERT + tokenizer; vision arms also their scene CNN), ``OUT/logs/*.json``
(loss and retrieval per step, held-out curves, convergence, matching hashes), ``OUT/lab_training.csv``,
``OUT/lab_curves.csv``, ``OUT/vision_check.csv``, ``OUT/encoders.yaml`` and ``OUT/lab_manifest.json``.
After ``spatial_probing.embed.load_registry_file("runs/lab/encoders.yaml")`` (or ``--registry`` on
the embed CLI) the encoders load by name: ``lab-mlm-s0`` … ``lab-vision-hn1-s4``.

Which probe split to use
------------------------
The lab trains on scenes generated with ``data.seed`` (default 1), never on the probing scenes
(``data.probe_seed``, default 0, the synthetic dataset's default seed; exact duplicates are
dropped too), and only on true captions. Probe with the synthetic tasks at ``seed:
probe_seed``:

* in-distribution: the default ``random`` split (``synthetic-relation``,
  ``synthetic-argument-order``);
* held-out generalisation ("encodes the relation" vs "memorised the words"): train the lab with
  ``data.heldout: compositional`` — every scene with one of the probe's held-out colour–shape
  combinations (``heldout_combinations(probe_seed)``) is removed from lab training — and probe
  with ``task_options: {synthetic-relation: {split_scheme: compositional}}``. The probe's test
  set is then exactly the scenes with those combinations: objects that neither the encoder nor
  the probe ever saw, built from known words;
* held-out relations: ``data.heldout_relations: [upper-left, lower-right]`` removes scenes of
  those relations (and their converses) from lab training; read the probe's per-relation rows
  for them. The words still occur elsewhere (e.g. "left" in "left of"), so this tests whether
  a relation's composition is encoded without training on it.

:func:`objective_summary` and :func:`objective_comparisons` turn a probe run's
``results.parquet`` (and ``predictions.parquet``) into a per-arm table with intervals across
seeds and paired tests between arms, per relation category; :func:`lab_answer` gives the lab's
answer per relation kind with a seeds × scenes interval and a Holm-corrected verdict.
"""

from __future__ import annotations

import lazy_loader

# Names load on first use (PEP 562), so `spatial-probing --help` and a cached run import no heavy library.
__getattr__, __dir__, _ = lazy_loader.attach(__name__, submod_attrs={
    "compare": ["hierarchical_diff", "lab_answer", "objective_comparisons", "objective_summary"],
    "config": ["OBJECTIVES", "LabConfig", "load_lab_config", "parse_lab_arm", "parse_lab_encoder"],
    "data": ["build_corpus", "build_tokenizer", "build_vocab", "check_probe_data"],
    "train": ["TrainedEncoder", "train_encoder", "train_lab"],
})

__all__ = ["OBJECTIVES", "LabConfig", "TrainedEncoder", "build_corpus", "build_tokenizer", "build_vocab",
           "check_probe_data", "hierarchical_diff", "lab_answer", "load_lab_config", "objective_comparisons",
           "objective_summary", "parse_lab_arm", "parse_lab_encoder", "train_encoder", "train_lab"]
