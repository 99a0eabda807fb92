//! Why a generation ended.

/// Why a generation ended, in every binding (`eos`, `stop`, `length`, `context`, `cancelled`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FinishReason {
    /// A stop token was generated: one of the model's end-of-sequence ids or the caller's stop tokens.
    Eos {
        /// The token (the last one generated).
        token: u32,
    },
    /// A stop string appeared in the text; the text up to it was delivered, the string itself not.
    Stop {
        /// The stop string that matched.
        string: String,
    },
    /// `max_new_tokens` tokens were generated.
    Length,
    /// The session's context is full: no room for the next token.
    Context,
    /// The caller stopped it (`stop()`, or a callback that asked to).
    Cancelled,
}

impl FinishReason {
    /// The reason's name as the C and Python APIs spell it.
    pub fn as_str(&self) -> &'static str {
        match self {
            FinishReason::Eos { .. } => "eos",
            FinishReason::Stop { .. } => "stop",
            FinishReason::Length => "length",
            FinishReason::Context => "context",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for FinishReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
