"""moe: Mixture-of-Experts inference on CPU, with numpy arrays in and out.

Example::

    import moe

    model = moe.Model("path/to/checkpoint")
    s = model.session()
    logits = s.prefill([1, 2, 3])                  # numpy float32 [vocab_size]
    ids = list(model.generate([1, 2, 3], max_new_tokens=8))
    for piece in model.generate("def main():", max_new_tokens=32):
        print(piece, end="", flush=True)

:class:`Model` loads a Hugging Face checkpoint folder (config.json + safetensors, memory-mapped;
tokenizer.json, tokenizer_config.json and generation_config.json when present).
:class:`Session` holds one sequence's KV cache (``kv_dtype="bf16"``/``"int8"`` stores it compactly); it
can be forked (forks share the prompt's cache) and saved and restored (:meth:`Session.snapshot`,
:meth:`Session.save`, :meth:`Session.restore`, :meth:`Session.restore_file`); :func:`batch_decode` and :func:`batch_prefill` step several
sessions of one model as one forward (logits ``[B, vocab_size]``). :meth:`Model.generate` streams token ids for an id
prompt and text pieces for a text prompt; :meth:`Model.chat` renders chat messages with the model's
template and streams the reply. :class:`Tokenizer` encodes, decodes and applies chat templates.
Compute runs with the GIL released: one model can serve sessions on several threads. Errors are
:class:`MoeError` subclasses (see :mod:`moe.errors`). ``Model(path, quantize="q4")`` quantizes a
float checkpoint while loading; :func:`quantize_checkpoint` writes it as a compressed-tensors
checkpoint; :func:`fidelity` measures what quantization changed.
"""

from __future__ import annotations

from . import errors
from ._native import (
    Model,
    Session,
    StreamDecoder,
    TextStream,
    Tokenizer,
    TokenStream,
    __version__,
    batch_decode,
    batch_prefill,
    estimate_memory,
    fidelity,
    quantize_checkpoint,
)
from .errors import (
    CancelledError,
    ConfigError,
    ContextFullError,
    DtypeError,
    DuplicateSessionError,
    EmptyPromptError,
    FormatError,
    InconsistentConfigError,
    InvalidArgumentError,
    IoError,
    MissingTensorError,
    MixedModelsError,
    MoeError,
    NotFoundError,
    ShapeError,
    SnapshotCorruptError,
    SnapshotError,
    SnapshotModelMismatchError,
    SnapshotTruncatedError,
    SnapshotVersionError,
    TokenizerError,
    UnsupportedQuantizationError,
    TokenOutOfRangeError,
    UnsupportedArchitectureError,
)

__all__ = [
    "CancelledError",
    "ConfigError",
    "ContextFullError",
    "DtypeError",
    "DuplicateSessionError",
    "EmptyPromptError",
    "FormatError",
    "InconsistentConfigError",
    "InvalidArgumentError",
    "IoError",
    "MissingTensorError",
    "MixedModelsError",
    "Model",
    "MoeError",
    "NotFoundError",
    "Session",
    "ShapeError",
    "SnapshotCorruptError",
    "SnapshotError",
    "SnapshotModelMismatchError",
    "SnapshotTruncatedError",
    "SnapshotVersionError",
    "StreamDecoder",
    "TextStream",
    "TokenOutOfRangeError",
    "TokenStream",
    "Tokenizer",
    "TokenizerError",
    "UnsupportedQuantizationError",
    "UnsupportedArchitectureError",
    "__version__",
    "batch_decode",
    "batch_prefill",
    "errors",
    "estimate_memory",
    "fidelity",
    "quantize_checkpoint",
]
