"""Exceptions raised by :mod:`moe`.

Every engine error is a :class:`MoeError`, with one subclass per kind. Where a builtin exception
describes the same situation the class derives from it too, so ordinary ``except`` clauses work:
a missing checkpoint is a :class:`FileNotFoundError`, a bad token id or empty prompt a
:class:`ValueError`.
"""

from __future__ import annotations

__all__ = [
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
    "MoeError",
    "NotFoundError",
    "ShapeError",
    "SnapshotCorruptError",
    "SnapshotError",
    "SnapshotModelMismatchError",
    "SnapshotTruncatedError",
    "SnapshotVersionError",
    "TokenOutOfRangeError",
    "TokenizerError",
    "UnsupportedArchitectureError",
]


class MoeError(Exception):
    """Base class of every error the engine reports."""


class IoError(MoeError, OSError):
    """A file or directory could not be read (``errno``, ``strerror`` and ``filename`` are set)."""


class NotFoundError(IoError, FileNotFoundError):
    """A checkpoint folder or file that must exist does not (``filename`` names it)."""


class ConfigError(MoeError):
    """``config.json`` is not valid JSON or a key has the wrong type (``path`` names the file)."""


class InconsistentConfigError(ConfigError):
    """The config's values contradict each other or are out of range."""


class UnsupportedArchitectureError(MoeError):
    """The config names a model family this engine does not run (``architecture`` names it)."""


class FormatError(MoeError):
    """A safetensors file is truncated, corrupt or otherwise unreadable (``path`` names it)."""


class MissingTensorError(MoeError):
    """The checkpoint lacks a tensor the model needs (``name`` names it)."""


class ShapeError(MoeError):
    """A tensor has the wrong shape (``name``, ``expected`` and ``found`` are set)."""


class DtypeError(MoeError):
    """A tensor is stored in a dtype that cannot be used where it is needed (``name`` is set)."""


class TokenOutOfRangeError(MoeError, ValueError):
    """A token id is negative or not smaller than the vocabulary size.

    ``token`` is the id; ``vocab_size`` the model's vocabulary size, or ``None`` when the id does not
    even fit the engine's 32-bit ids.
    """


class EmptyPromptError(MoeError, ValueError):
    """A prompt with no tokens was given where at least one is needed."""


class ContextFullError(MoeError):
    """The session would grow past its maximum context (``needed`` and ``max_context`` are set)."""


class InvalidArgumentError(MoeError, ValueError):
    """A request that cannot be honoured: a sampler value out of range, an impossible truncation..."""


class MixedModelsError(InvalidArgumentError):
    """A batch step names sessions of different models (``index`` is the first entry whose model
    differs from entry 0's)."""

    index: int


class DuplicateSessionError(InvalidArgumentError):
    """A batch step names one session twice (``index`` is the repeating entry)."""

    index: int


class TokenizerError(MoeError):
    """A tokenizer or chat-template problem."""


class CancelledError(MoeError):
    """A progress callback stopped the work; what was done is kept (``done`` tokens of a prefill)."""

    done: int


class UnsupportedQuantizationError(MoeError):
    """The checkpoint's quantization_config names a method or scheme the engine does not implement."""


class SnapshotError(MoeError):
    """A session snapshot (``Session.snapshot`` / ``Session.save``) cannot be restored."""


class SnapshotModelMismatchError(SnapshotError):
    """The snapshot was made by another model: ``found`` is its model fingerprint, ``expected`` the
    restoring model's (``Model.fingerprint``)."""

    expected: int
    found: int


class SnapshotVersionError(SnapshotError):
    """The snapshot's format version (``found``) is not the one this build reads (``supported``)."""

    found: int
    supported: int


class SnapshotTruncatedError(SnapshotError):
    """The snapshot ends early: ``len`` bytes present, at least ``needed`` required."""

    len: int
    needed: int


class SnapshotCorruptError(SnapshotError):
    """The snapshot fails its checksums or holds values the model cannot take."""
