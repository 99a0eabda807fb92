//! gpt-oss routed experts in MXFP4, as published: `gate_up_proj_blocks` u8 `[E, 2I, H/32, 16]`,
//! `gate_up_proj_scales` u8 `[E, 2I, H/32]`, `down_proj_blocks` `[E, H, I/32, 16]`,
//! `down_proj_scales` `[E, H, I/32]`, and the bf16 `_bias` tensors. The blocks are over the transposed
//! (out-major) matrices, so each expert's projections are `y = x·Wᵀ` with gate/up outputs interleaved
//! as in the bf16 layout.

use super::experts::{Expert, GateUpSplit};
use crate::config::spec::{ExpertNames, FusedLayout};
use crate::config::Quantization;
use crate::error::{Error, Result};
use crate::layers::packed::PackedMatrix;
use crate::layers::Linear;
use crate::weights::WeightSource;

/// Loads `n` MXFP4 experts of hidden size `h` and intermediate size `i` from `src` (the `experts` scope).
pub(super) fn load_experts(
    src: &WeightSource,
    names: &ExpertNames,
    n: usize,
    h: usize,
    i: usize,
) -> Result<Vec<Expert>> {
    let module = src.prefix();
    if !matches!(src.quant(), Quantization::Mxfp4 { .. }) || !src.quant().quantizes(module) {
        return Err(Error::InconsistentConfig(format!(
            "{module} holds MXFP4 blocks but quantization_config does not declare mxfp4 for it"
        )));
    }
    let split = match names.fused {
        FusedLayout::InOutInterleavedBiased => GateUpSplit::Interleaved,
        FusedLayout::OutIn | FusedLayout::InOut => GateUpSplit::Halves,
    };
    if !h.is_multiple_of(32) || !i.is_multiple_of(32) {
        return Err(Error::InconsistentConfig(format!(
            "MXFP4 experts need hidden ({h}) and intermediate ({i}) sizes that are multiples of 32"
        )));
    }
    let gu_blocks = src.get_any("gate_up_proj_blocks", &[n, 2 * i, h / 32, 16])?;
    let gu_scales = src.get_any("gate_up_proj_scales", &[n, 2 * i, h / 32])?;
    let d_blocks = src.get_any("down_proj_blocks", &[n, h, i / 32, 16])?;
    let d_scales = src.get_any("down_proj_scales", &[n, h, i / 32])?;
    let gu_bias = src.get_f32_opt("gate_up_proj_bias", &[n, 2 * i])?; // [E, 2I]
    let d_bias = src.get_f32_opt("down_proj_bias", &[n, h])?; // [E, H]
    (0..n)
        .map(|e| {
            let gate_up =
                PackedMatrix::mxfp4(gu_blocks.index_first(e), gu_scales.index_first(e), 2 * i, h)?;
            let down = PackedMatrix::mxfp4(d_blocks.index_first(e), d_scales.index_first(e), h, i)?;
            Ok(Expert::fused(
                Linear::from_packed(
                    gate_up,
                    gu_bias
                        .as_ref()
                        .map(|b| b[e * 2 * i..(e + 1) * 2 * i].to_vec()),
                ),
                split,
                Linear::from_packed(
                    down,
                    d_bias.as_ref().map(|b| b[e * h..(e + 1) * h].to_vec()),
                ),
            ))
        })
        .collect()
}
