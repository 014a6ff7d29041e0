"""``spatial-probing embed``: embed a dataset with one encoder into the cache, and say what was written."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from spatial_probing.cli_errors import fail, progress_wanted
from spatial_probing.cli_options import ExecutorOption


def embed(
    dataset: Annotated[str, typer.Option(help="vsr, stepgame, spartqa or synthetic.")],
    encoder: Annotated[str, typer.Option(help="Registry name (sbert-mpnet, bert, clip-text, ...), "
                                              "random-init:NAME, static:NAME, or a model folder.")],
    model_path: Annotated[Optional[Path], typer.Option("--model-path", help="Local weights for the encoder "
                                                       "(instead of the Hugging Face hub).")] = None,
    layers: Annotated[str, typer.Option(help="all | last | final | comma list such as 0,6,12.")] = "all",
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", envvar="SPATIAL_PROBING_DATA",
                                                     help="Folder holding vsr/, stepgame/, spartqa/.")] = None,
    image_dir: Annotated[Optional[Path], typer.Option("--image-dir", help="VSR: folder of COCO-2017 images "
                                                      "(image encoders only).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Embedding cache folder (re-runs reuse it).")] = Path(
        "runs/embeddings"),
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps.")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Inputs per forward pass.")] = 32,
    split: Annotated[Optional[str], typer.Option(help="Only this split (train, dev, test, ...).")] = None,
    variant: Annotated[Optional[str], typer.Option(help="VSR random|zeroshot; StepGame clean|noise|"
                                                   "train_version; synthetic caption variant.")] = None,
    registry: Annotated[Optional[Path], typer.Option(help="YAML file of extra encoder configs to register.")] = None,
    precision: Annotated[str, typer.Option("--precision", help="fp32 | bf16 | int8 (opt-in, faster on CPUs with "
                                           "AVX-512 BF16 / VNNI; part of the cache key).")] = "fp32",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
    executor: ExecutorOption = None,
) -> None:
    """Embed a dataset with an encoder (every requested layer, one pass) into the content-keyed cache."""
    from spatial_probing.data import DataError, load_dataset
    from spatial_probing.embed import (
        LexicalEncoder,
        ModelNotFoundError,
        embed_examples,
        get_encoder_config,
        inputs_hash,
        load_encoder,
        load_registry_file,
    )
    from spatial_probing.io import atomic_write_json, sha256_texts

    try:
        if registry is not None:
            load_registry_file(registry)
        config = get_encoder_config(encoder, model_path=model_path)
        examples = load_dataset(dataset, data_dir=data_dir, split=split, variant=variant)
        if not examples:
            raise DataError(f"no {dataset} examples for split={split!r}, variant={variant!r}")
        enc = load_encoder(config, model_path=model_path, device=device, batch_size=batch_size, precision=precision)
        if isinstance(enc, LexicalEncoder):  # bow:, order: learn their vocabulary from the training split only
            train = [e for e in examples if e.split == "train"] if split in (None, "train") else \
                load_dataset(dataset, data_dir=data_dir, split="train", variant=variant)
            if not train:
                raise DataError(f"{encoder} is fitted on the training split, but {dataset} (variant={variant!r}) "
                                f"has no 'train' examples")
            enc.fit(train)
        start = time.perf_counter()
        if executor == "ray" and not isinstance(enc, LexicalEncoder):  # shards on Ray; then read from the cache
            from spatial_probing.executor import EmbedJob, open_executor

            with open_executor("ray", registries=[registry] if registry else [], shared=[out], log=typer.echo) as ex:
                ex.embed([EmbedJob(encoder, tuple(examples), layers=layers, model_path=model_path and str(model_path),
                                   device=device, batch_size=batch_size, precision=precision,
                                   image_dir=image_dir and str(image_dir))],
                         cache_dir=out, log=typer.echo, show_progress=progress_wanted(quiet))
        arrays = embed_examples(examples, enc, layers=layers, cache_dir=out, image_dir=image_dir,
                                show_progress=progress_wanted(quiet))
        seconds = time.perf_counter() - start
        fingerprint = enc.fingerprint(memo_file=out / "weights-sha256.json")
        ih = inputs_hash(examples, enc, image_dir=image_dir)
    except (DataError, ModelNotFoundError, KeyError, ValueError) as err:
        fail(err)
    slug = re.sub(r"[^A-Za-z0-9_.+-]+", "_", f"{dataset}-{variant or 'default'}-{split or 'all'}-{encoder}"
                  + ("" if precision == "fp32" else f"-{precision}"))
    manifest = {
        "dataset": dataset, "variant": variant, "split": split, "n_examples": len(examples),
        "example_ids_sha256": sha256_texts(e.id for e in examples),
        "encoder": enc.info.model_dump(), "fingerprint": fingerprint, "inputs_hash": ih,
        "device": str(enc.device) if enc.is_loaded else None,  # None: every layer came from the cache
        "batch_size": batch_size, "seconds": round(seconds, 3),
        "layers": {k: {"shape": list(v.shape), "file": str(Path(v.filename)) if hasattr(v, "filename") else None}
                   for k, v in arrays.items()},
    }
    path = atomic_write_json(out / "manifests" / f"{slug}.json", manifest)
    dims = sorted({v.shape[1] for v in arrays.values()})
    typer.echo(f"{encoder} on {dataset}: {len(examples)} examples × {len(arrays)} layers "
               f"(dim {', '.join(map(str, dims))}) in {seconds:.1f} s → {out} (manifest {path})")
