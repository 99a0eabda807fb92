//! One spec per family. Each file states every per-family choice; `Family::spec` maps the enum to them.

pub(super) mod deepseek_v2;
pub(super) mod deepseek_v3;
pub(super) mod deepseek_v32;
pub(super) mod deepseek_v4;
pub(super) mod glm4_moe;
pub(super) mod glm_moe_dsa;
pub(super) mod gpt_oss;
pub(super) mod llama4;
pub(super) mod minimax_m2;
pub(super) mod mixtral;
pub(super) mod qwen2_moe;
pub(super) mod qwen3_5_moe;
pub(super) mod qwen3_moe;
