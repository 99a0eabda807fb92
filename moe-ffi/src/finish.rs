//! Why a generation ended, as C sees it: `moe_finish_reason` and its mapping from the engine's
//! `FinishReason`.

/// Why the last `moe_session_generate*` call on a session ended (see `moe_session_finish_reason`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum moe_finish_reason {
    /// No generation has ended on this session yet, or the last one failed with an error.
    MOE_FINISH_NONE = 0,
    /// A stop token was generated (the model's end-of-sequence ids or `stop_tokens`).
    MOE_FINISH_EOS = 1,
    /// A stop string appeared; the text up to it was delivered, the string itself not.
    MOE_FINISH_STOP = 2,
    /// `max_new_tokens` tokens were generated.
    MOE_FINISH_LENGTH = 3,
    /// The session's context is full: no room for another token.
    MOE_FINISH_CONTEXT = 4,
    /// The piece callback returned false.
    MOE_FINISH_CANCELLED = 5,
}

/// The C reason, and the index of the matching stop string (`usize::MAX` for other reasons).
pub(crate) fn finish_of(
    reason: Option<&moe_core::FinishReason>,
    stop_strings: &[String],
) -> (moe_finish_reason, usize) {
    use moe_core::FinishReason as F;
    use moe_finish_reason::*;
    match reason {
        None => (MOE_FINISH_NONE, usize::MAX),
        Some(F::Eos { .. }) => (MOE_FINISH_EOS, usize::MAX),
        Some(F::Stop { string }) => (
            MOE_FINISH_STOP,
            stop_strings
                .iter()
                .position(|s| s == string)
                .unwrap_or(usize::MAX),
        ),
        Some(F::Length) => (MOE_FINISH_LENGTH, usize::MAX),
        Some(F::Context) => (MOE_FINISH_CONTEXT, usize::MAX),
        Some(F::Cancelled) => (MOE_FINISH_CANCELLED, usize::MAX),
        Some(_) => (MOE_FINISH_NONE, usize::MAX),
    }
}
