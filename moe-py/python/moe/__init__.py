"""moe: Mixture-of-Experts inference on CPU, with numpy arrays in and out.

>>> import moe
>>> model = moe.Model("path/to/checkpoint")           # doctest: +SKIP
>>> s = model.session()                                # doctest: +SKIP
>>> logits = s.prefill([1, 2, 3])                      # float32 [vocab_size]   # doctest: +SKIP
>>> ids = list(model.generate([1, 2, 3], max_new_tokens=8))                    # doctest: +SKIP

:class:`Model` loads a Hugging Face checkpoint folder (config.json + safetensors, memory-mapped).
:class:`Session` holds one sequence's KV cache. :meth:`Model.generate` streams sampled token ids.
Compute runs with the GIL released: one model can serve sessions on several threads. Errors are
:class:`MoeError` subclasses (see :mod:`moe.errors`).
"""

from __future__ import annotations

from . import errors
from ._native import Model, Session, TokenStream, __version__
from .errors import (
    ConfigError,
    ContextFullError,
    DtypeError,
    EmptyPromptError,
    FormatError,
    InconsistentConfigError,
    InvalidArgumentError,
    IoError,
    MissingTensorError,
    MoeError,
    NotFoundError,
    ShapeError,
    TokenizerError,
    TokenOutOfRangeError,
    UnsupportedArchitectureError,
)

__all__ = [
    "Model",
    "Session",
    "TokenStream",
    "__version__",
    "errors",
    "MoeError",
    "IoError",
    "NotFoundError",
    "ConfigError",
    "InconsistentConfigError",
    "UnsupportedArchitectureError",
    "FormatError",
    "MissingTensorError",
    "ShapeError",
    "DtypeError",
    "TokenOutOfRangeError",
    "EmptyPromptError",
    "ContextFullError",
    "InvalidArgumentError",
    "TokenizerError",
]
