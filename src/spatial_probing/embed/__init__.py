"""Embed stage: SBERT, BERT, CLIP text / image / text+image encoders and controls behind one interface.

``load_encoder(name)`` gives an :class:`Encoder`; ``embed_examples`` embeds :class:`Example`
lists through a content-keyed, memory-mapped cache so nothing is computed twice.
"""

from __future__ import annotations

import lazy_loader

# Names load on first use (PEP 562), so `spatial-probing --help` and a cached run import no heavy library.
__getattr__, __dir__, _ = lazy_loader.attach(__name__, submod_attrs={
    "cache": ["CacheCorruptionWarning", "EmbeddingCache", "embed_examples", "inputs_hash"],
    "config": ["BUILTIN_ENCODERS", "EncoderConfig", "get_encoder_config", "is_grounded", "is_lexical_floor", "list_encoders", "load_registry_file", "register_encoder"],
    "encoders": ["Encoder", "EncoderInfo", "configure_threads", "load_encoder", "resolve_device", "select_layers"],
    "lexical": ["LexicalEncoder", "fit_lexical", "noun_slots"],
    "resolve": ["ModelNotFoundError", "hash_model_dir", "resolve_model"],
})

__all__ = [
    "BUILTIN_ENCODERS", "CacheCorruptionWarning", "EmbeddingCache", "Encoder", "EncoderConfig", "EncoderInfo",
    "LexicalEncoder", "ModelNotFoundError", "configure_threads", "fit_lexical", "embed_examples", "get_encoder_config", "hash_model_dir",
    "inputs_hash", "is_grounded", "is_lexical_floor", "list_encoders", "load_encoder", "load_registry_file", "noun_slots", "register_encoder", "resolve_device",
    "resolve_model", "select_layers",
]
