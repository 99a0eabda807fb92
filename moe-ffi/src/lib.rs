//! The C ABI of moe: `libmoe.so` / `libmoe.a` and the generated header `include/moe.h`.
//!
//! Every export runs inside a panic boundary, checks its pointers (NULL, alignment, and handles
//! against a registry of live objects), writes out-parameters only on success, and leaves a message
//! for `moe_last_error()` on failure. See docs/c-api.md.

mod args;
pub mod batch;
mod boundary;
pub mod diagnostics;
pub mod finish;
pub mod generate;
mod handle;
mod last_error;
pub mod logging;
pub mod model;
mod out_buffer;
pub mod quantize;
pub mod sampler;
pub mod session;
pub mod snapshot;
pub mod status;
pub mod text;
pub mod version;

pub use batch::{moe_batch_decode, moe_batch_prefill};
pub use diagnostics::{moe_last_error, moe_status_str};
pub use finish::moe_finish_reason;
pub use generate::{
    moe_generate_default_params, moe_generate_params, moe_model_default_generate_params,
    moe_piece_fn, moe_session_finish_reason, moe_session_generate, moe_session_generate_chat,
};
pub use logging::{moe_log_fn, moe_log_level, moe_log_set_callback};
pub use model::{
    moe_estimate_memory, moe_memory_estimate, moe_model, moe_model_architecture,
    moe_model_default_params, moe_model_eos_tokens, moe_model_family, moe_model_free,
    moe_model_load, moe_model_max_context, moe_model_params, moe_model_precision,
    moe_model_threads, moe_model_vocab_size, moe_precision, moe_progress_fn, moe_quantize_scope,
};
pub use quantize::{
    moe_checkpoint_quantize, moe_quantize_default_params, moe_quantize_params,
    moe_quantize_progress_fn,
};
pub use sampler::{
    moe_sampler, moe_sampler_default_params, moe_sampler_free, moe_sampler_new, moe_sampler_params,
    moe_sampler_sample,
};
pub use session::{
    moe_kv_dtype, moe_prefill_progress_fn, moe_session, moe_session_decode,
    moe_session_default_params, moe_session_free, moe_session_kv_cache_bytes, moe_session_len,
    moe_session_max_context, moe_session_new, moe_session_params, moe_session_prefill,
    moe_session_prefill_progress, moe_session_reset, moe_session_tokens, moe_session_truncate,
};
pub use snapshot::{
    moe_session_fork, moe_session_kv_cache_shared_bytes, moe_session_restore,
    moe_session_restore_file, moe_session_save, moe_session_snapshot,
};
pub use status::{moe_status, ALL_STATUSES};
pub use text::{
    moe_chat_message, moe_model_apply_chat_template, moe_model_detokenize,
    moe_model_has_chat_template, moe_model_has_tokenizer, moe_model_tokenize,
};
pub use version::moe_version;
