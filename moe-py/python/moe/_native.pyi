"""Type stubs of the native module ``moe._native`` (re-exported by :mod:`moe`)."""

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, final, overload

import numpy as np
import numpy.typing as npt
from typing_extensions import TypeAlias

__all__ = [
    "Model",
    "Session",
    "StreamDecoder",
    "TextStream",
    "TokenStream",
    "Tokenizer",
    "__version__",
    "batch_decode",
    "batch_prefill",
    "estimate_memory",
    "fidelity",
    "quantize_checkpoint",
]

__version__: str

#: Token ids: a sequence of ints or a 1-D numpy array of an integer dtype.
_TokenIds: TypeAlias = Sequence[int] | npt.NDArray[np.integer[Any]]
#: A stop condition: a token id, a stop string, or a list of them.
_Stop: TypeAlias = int | str | Iterable[int | str]
#: A chat message: ``{"role": ..., "content": ...}``.
_Message: TypeAlias = Mapping[str, str]
_StrPath: TypeAlias = str | os.PathLike[str]

@final
class Model:
    """A model loaded from a Hugging Face checkpoint folder; shared by any number of sessions."""

    def __new__(
        cls,
        path: _StrPath,
        *,
        max_context: int | None = None,
        sparse: bool = True,
        progress: Callable[[int, int], object] | None = None,
        threads: int | None = None,
        precision: Literal["f32", "bf16", "int8"] = "bf16",
        copy_weights: bool = False,
        quantize: Literal["q4", "q8"] | None = None,
        group_size: int | None = None,
        quantize_scope: Literal["experts", "linear"] = "experts",
    ) -> Model: ...
    @property
    def path(self) -> Path: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def architecture(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def eos_token_ids(self) -> list[int]: ...
    @property
    def bos_token_id(self) -> int | None: ...
    @property
    def max_position_embeddings(self) -> int: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def checkpoint_bytes(self) -> int: ...
    @property
    def precision(self) -> Literal["f32", "bf16", "int8"]: ...
    @property
    def threads(self) -> int: ...
    @property
    def tokenizer(self) -> Tokenizer | None: ...
    def session(
        self,
        *,
        max_context: int | None = None,
        sparse: bool | None = None,
        kv_dtype: Literal["f32", "bf16", "int8"] = "f32",
    ) -> Session: ...
    @property
    def fingerprint(self) -> int: ...
    @overload
    def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        stop: _Stop | None = None,
        ignore_eos: bool = False,
        add_special_tokens: bool = True,
        skip_special_tokens: bool = True,
        max_context: int | None = None,
        sparse: bool | None = None,
    ) -> TextStream: ...
    @overload
    def generate(
        self,
        prompt: _TokenIds,
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        stop: int | Iterable[int] | None = None,
        ignore_eos: bool = False,
        add_special_tokens: bool = True,
        skip_special_tokens: bool = True,
        max_context: int | None = None,
        sparse: bool | None = None,
    ) -> TokenStream: ...
    def chat(
        self,
        messages: Iterable[_Message],
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        stop: _Stop | None = None,
        ignore_eos: bool = False,
        skip_special_tokens: bool = True,
        max_context: int | None = None,
        sparse: bool | None = None,
    ) -> TextStream: ...

@final
class Session:
    """One sequence's KV cache over a model; make one per conversation and thread."""

    def __new__(
        cls,
        model: Model,
        *,
        max_context: int | None = None,
        sparse: bool | None = None,
        kv_dtype: Literal["f32", "bf16", "int8"] = "f32",
    ) -> Session: ...
    def fork(self) -> Session: ...
    def snapshot(self) -> bytes: ...
    def save(self, path: _StrPath) -> None: ...
    @staticmethod
    def restore(model: Model, data: bytes) -> Session: ...
    @staticmethod
    def restore_file(model: Model, path: _StrPath) -> Session: ...
    def prefill(
        self,
        ids: _TokenIds,
        *,
        all_logits: bool = False,
        progress: Callable[[int, int], object] | None = None,
        chunk: int = 512,
    ) -> npt.NDArray[np.float32]: ...
    def decode(self, token: int) -> npt.NDArray[np.float32]: ...
    @overload
    def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        stop: _Stop | None = None,
        ignore_eos: bool = False,
        add_special_tokens: bool = True,
        skip_special_tokens: bool = True,
    ) -> TextStream: ...
    @overload
    def generate(
        self,
        prompt: _TokenIds,
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        stop: int | Iterable[int] | None = None,
        ignore_eos: bool = False,
        add_special_tokens: bool = True,
        skip_special_tokens: bool = True,
    ) -> TokenStream: ...
    def chat(
        self,
        messages: Iterable[_Message],
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        stop: _Stop | None = None,
        ignore_eos: bool = False,
        skip_special_tokens: bool = True,
    ) -> TextStream: ...
    def reset(self) -> None: ...
    def truncate(self, n: int) -> None: ...
    def __len__(self) -> int: ...
    @property
    def tokens(self) -> list[int]: ...
    @property
    def max_context(self) -> int: ...
    @property
    def kv_cache_bytes(self) -> int: ...
    @property
    def kv_cache_shared_bytes(self) -> int: ...
    @property
    def kv_dtype(self) -> Literal["f32", "bf16", "int8"]: ...
    @property
    def model(self) -> Model: ...

@final
class TokenStream(Iterator[int]):
    """Generated token ids, yielded as they are produced."""

    def __iter__(self) -> TokenStream: ...
    def __next__(self) -> int: ...
    def close(self) -> None: ...
    @property
    def finish_reason(self) -> Literal["eos", "stop", "length", "context", "cancelled"] | None: ...
    @property
    def produced(self) -> int: ...
    @property
    def tokens(self) -> list[int]: ...
    @property
    def prompt_len(self) -> int: ...

@final
class TextStream(Iterator[str]):
    """Generated text pieces (whole UTF-8 characters), yielded as they are produced."""

    def __iter__(self) -> TextStream: ...
    def __next__(self) -> str: ...
    def close(self) -> None: ...
    @property
    def finish_reason(self) -> Literal["eos", "stop", "length", "context", "cancelled"] | None: ...
    @property
    def stop_string(self) -> str | None: ...
    @property
    def produced(self) -> int: ...
    @property
    def prompt_len(self) -> int: ...

@final
class Tokenizer:
    """A checkpoint's tokenizer.json, with tokenizer_config.json's special tokens and chat template."""

    def __new__(cls, path: _StrPath) -> Tokenizer: ...
    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]: ...
    def decode(self, ids: _TokenIds, *, skip_special_tokens: bool = False) -> str: ...
    def apply_chat_template(self, messages: Iterable[_Message], *, add_generation_prompt: bool = False) -> str: ...
    def stream_decoder(self, *, skip_special_tokens: bool = False) -> StreamDecoder: ...
    def token_to_id(self, token: str) -> int | None: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def eos_token_id(self) -> int | None: ...
    @property
    def has_chat_template(self) -> bool: ...

@final
class StreamDecoder:
    """Turns ids fed one at a time into whole-character text pieces."""

    def push(self, token: int) -> str: ...
    def flush(self) -> str: ...

def estimate_memory(path: _StrPath, context: int | None = None) -> dict[str, int]: ...
def batch_decode(sessions: Sequence[Session], tokens: _TokenIds) -> npt.NDArray[np.float32]: ...
def batch_prefill(
    sessions: Sequence[Session], chunks: Sequence[_TokenIds], *, all_logits: bool = False
) -> npt.NDArray[np.float32]: ...
def quantize_checkpoint(
    src: _StrPath,
    dst: _StrPath,
    quantize: Literal["q4", "q8"] = "q4",
    *,
    group_size: int | None = None,
    scope: Literal["experts", "linear"] = "experts",
    progress: Callable[[int, int], object] | None = None,
) -> dict[str, Any]: ...
def fidelity(reference: Model, candidate: Model, tokens: _TokenIds) -> dict[str, float]: ...
