//! Quantizing float checkpoints to compressed-tensors int4/int8: the options a caller picks, and the
//! plan that decides, by module name, which linear layers a checkpoint's quantization covers. Loading
//! with quantization and writing a quantized checkpoint both ask the same plan, so the two produce the
//! same codes for the same modules.

use super::{FfnKind, ModelConfig, Quantization};
use crate::error::{Error, Result};

/// Default elements per scale along a matrix's input dimension.
pub const DEFAULT_GROUP_SIZE: usize = 32;
/// Largest accepted group size.
const MAX_GROUP_SIZE: usize = 1 << 20;

/// Which linear layers are quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QuantizeScope {
    /// The routed experts only (most of an MoE model's bytes; attention and shared experts stay in
    /// their dtype).
    #[default]
    Experts,
    /// Every linear layer of the decoder layers except routers (and Qwen2-MoE's shared-expert gate);
    /// the embedding and the lm_head always stay in their dtype.
    Linear,
}

impl QuantizeScope {
    /// `"experts"` or `"linear"`.
    pub fn as_str(self) -> &'static str {
        match self {
            QuantizeScope::Experts => "experts",
            QuantizeScope::Linear => "linear",
        }
    }
}

impl std::str::FromStr for QuantizeScope {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "experts" => Ok(QuantizeScope::Experts),
            "linear" => Ok(QuantizeScope::Linear),
            other => Err(Error::InvalidArgument(format!(
                "quantize scope {other:?} (expected \"experts\" or \"linear\")"
            ))),
        }
    }
}

/// Symmetric int4/int8 group quantization of a bf16, f16 or f32 checkpoint, with compressed-tensors'
/// rounding: per row and group of `group_size` input columns, `scale = absmax / 7.5` (int4) or
/// `/ 127.5` (int8), stored in the weights' own dtype (bf16 for bf16 checkpoints, as in published
/// W4A16 checkpoints), and codes `round_half_even(clamp(w / scale, -8, 7))` (`-128..127`).
///
/// A matrix whose input width is not a multiple of `group_size` stays in its dtype (compressed-tensors
/// cannot group it either); a written checkpoint names it in its ignore list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuantizeOptions {
    /// 4 or 8.
    pub bits: u32,
    /// Elements per scale along the input dimension (a positive multiple of 8; default 32).
    pub group_size: usize,
    /// Which linear layers (default: the routed experts).
    pub scope: QuantizeScope,
}

impl QuantizeOptions {
    /// `bits`-bit quantization (4 or 8; checked when used) at group 32 of the routed experts.
    pub fn new(bits: u32) -> Self {
        QuantizeOptions {
            bits,
            group_size: DEFAULT_GROUP_SIZE,
            scope: QuantizeScope::Experts,
        }
    }

    /// These options with another group size.
    pub fn with_group_size(mut self, group_size: usize) -> Self {
        self.group_size = group_size;
        self
    }

    /// These options with another scope.
    pub fn with_scope(mut self, scope: QuantizeScope) -> Self {
        self.scope = scope;
        self
    }

    /// Checks bits and group size.
    pub fn validate(&self) -> Result<()> {
        if self.bits != 4 && self.bits != 8 {
            return Err(Error::InvalidArgument(format!(
                "quantization bits must be 4 or 8, got {}",
                self.bits
            )));
        }
        let g = self.group_size;
        if g == 0 || !g.is_multiple_of(8) || g > MAX_GROUP_SIZE {
            return Err(Error::InvalidArgument(format!(
                "quantization group size must be a positive multiple of 8 up to {MAX_GROUP_SIZE}, \
                 got {g}"
            )));
        }
        Ok(())
    }
}

/// Which modules of one model a [`QuantizeOptions`] covers.
#[derive(Debug, Clone)]
pub(crate) struct QuantizePlan {
    pub(crate) opts: QuantizeOptions,
    /// `{weight_prefix}model.layers.`
    layers_prefix: String,
    /// Per decoder layer: whether its feed-forward is MoE.
    moe_layers: Vec<bool>,
    /// The MoE block's module names (published and transformers-5 fused alternative).
    moe_modules: Vec<&'static str>,
    /// Modules inside the MoE block that are never quantized (router, shared-expert gate).
    excluded: Vec<&'static str>,
}

impl QuantizePlan {
    /// The plan of `opts` over `cfg`; fails for bad options or an already quantized checkpoint.
    pub(crate) fn new(cfg: &ModelConfig, opts: QuantizeOptions) -> Result<Self> {
        opts.validate()?;
        let stored = match &cfg.quant {
            Quantization::None => None,
            Quantization::Fp8 { .. } => Some("fp8"),
            Quantization::Mxfp4 { .. } => Some("mxfp4"),
            Quantization::PackQuantized(_) => Some("compressed-tensors pack-quantized"),
        };
        if let Some(stored) = stored {
            return Err(Error::UnsupportedQuantization {
                what: format!(
                    "quantizing a checkpoint that is already quantized ({stored}); \
                     quantize its bf16, f16 or f32 original"
                ),
            });
        }
        let names = cfg.family.spec().ffn_names;
        let mut moe_modules = vec![names.moe];
        moe_modules.extend(names.moe_fused_alt);
        let mut excluded = vec![names.router];
        excluded.extend(names.shared_gate);
        Ok(QuantizePlan {
            opts,
            layers_prefix: format!("{}model.layers.", cfg.weight_prefix),
            moe_layers: cfg.layers.iter().map(|l| l.ffn == FfnKind::Moe).collect(),
            moe_modules,
            excluded,
        })
    }

    /// Whether the linear module `module` (its full name, e.g. `model.layers.3.mlp.experts.0.up_proj`)
    /// of input width `in_dim` is quantized.
    pub(crate) fn covers(&self, module: &str, in_dim: usize) -> bool {
        self.in_scope(module) && in_dim.is_multiple_of(self.opts.group_size)
    }

    /// Whether the scope names `module`, whatever its width.
    pub(crate) fn in_scope(&self, module: &str) -> bool {
        let Some(rest) = module.strip_prefix(&self.layers_prefix) else {
            return false;
        };
        let Some((idx, rest)) = rest.split_once('.') else {
            return false;
        };
        let Some(&moe) = idx
            .parse::<usize>()
            .ok()
            .and_then(|i| self.moe_layers.get(i))
        else {
            return false;
        };
        let mut routed = false;
        if moe {
            for m in &self.moe_modules {
                if let Some(inner) = rest.strip_prefix(m).and_then(|r| r.strip_prefix('.')) {
                    if self.excluded.contains(&inner) {
                        return false;
                    }
                    routed |= inner.starts_with("experts.");
                }
            }
        }
        match self.opts.scope {
            QuantizeScope::Experts => routed,
            QuantizeScope::Linear => true,
        }
    }
}
