//! One decoder layer: `h = x + Attn(norm_in(x));  x' = h + FFN(norm_post(h))`.

use crate::attention::{Attention, GatedDeltaNet, Gqa, Mla, Selection, SparseMode};
use crate::cache::LayerCache;
use crate::config::spec::FfnNames;
use crate::config::{AttentionConfig, FfnKind, ModelConfig, RouterKind, TokenMixer};
use crate::error::Error;
use crate::error::Result;
use crate::kernels;
use crate::layers::{Linear, Mlp, RmsNorm};
use crate::moe::{load_experts, MoeBlock, Router, SharedExpert};
use crate::weights::WeightSource;

/// The feed-forward half of a block.
#[derive(Debug, Clone)]
pub(crate) enum FeedForward {
    Dense(Box<Mlp>),
    Moe(Box<MoeBlock>),
}

impl FeedForward {
    fn forward(&self, x: &[f32], t: usize) -> Vec<f32> {
        match self {
            FeedForward::Dense(m) => m.forward(x, t),
            FeedForward::Moe(m) => m.forward(x, t),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub ffn: FeedForward,
}

impl Block {
    /// Loads `model.layers.{i}` (`src` is scoped to it).
    pub(crate) fn load(
        src: &WeightSource,
        cfg: &ModelConfig,
        i: usize,
        names: &FfnNames,
    ) -> Result<Self> {
        let h = cfg.hidden_size;
        let eps = cfg.rms_norm_eps;
        let layer = &cfg.layers[i];
        let attn_src = src.pp("self_attn");
        let offset = cfg.norm_weight_offset;
        let self_attn = match (&cfg.attention, layer.mixer) {
            (_, TokenMixer::GatedDeltaNet) => {
                let la = cfg.linear_attention.as_ref().ok_or_else(|| {
                    Error::InconsistentConfig("linear attention without its settings".into())
                })?;
                Attention::DeltaNet(GatedDeltaNet::load(&src.pp("linear_attn"), la, h, eps)?)
            }
            (AttentionConfig::Gqa(g), _) => {
                Attention::Gqa(Gqa::load(&attn_src, g, layer, &cfg.rope, h, eps, offset)?)
            }
            (AttentionConfig::Mla(m), _) => {
                Attention::Mla(Mla::load(&attn_src, m, layer, &cfg.rope, h)?)
            }
        };
        let ffn = match layer.ffn {
            FfnKind::Dense => FeedForward::Dense(Box::new(Mlp::load(
                &src.pp(names.dense),
                h,
                cfg.intermediate_size,
                ["gate_proj", "up_proj", "down_proj"],
            )?)),
            FfnKind::Moe => FeedForward::Moe(Box::new(load_moe(src, cfg, names)?)),
        };
        Ok(Block {
            input_layernorm: RmsNorm::load_offset(src, "input_layernorm", h, eps, offset)?,
            self_attn,
            post_attention_layernorm: RmsNorm::load_offset(
                src,
                "post_attention_layernorm",
                h,
                eps,
                offset,
            )?,
            ffn,
        })
    }

    /// Weight bytes one decoded token streams through this layer.
    pub(crate) fn weight_bytes_per_token(&self) -> usize {
        self.self_attn.weight_bytes()
            + match &self.ffn {
                FeedForward::Dense(m) => m.weight_bytes(),
                FeedForward::Moe(b) => b.weight_bytes_per_token(),
            }
    }

    pub(crate) fn new_cache(&self) -> LayerCache {
        match &self.self_attn {
            Attention::Gqa(g) => LayerCache::Gqa(g.new_cache()),
            Attention::Mla(m) => {
                let (mla, indexer) = m.new_cache();
                LayerCache::Mla { mla, indexer }
            }
            Attention::DeltaNet(d) => LayerCache::DeltaNet(d.new_cache()),
        }
    }

    /// Runs the layer on the residual stream `x[T, H]` in place.
    pub(crate) fn forward(
        &self,
        x: &mut [f32],
        positions: &[usize],
        cache: &mut LayerCache,
        selection: &mut Option<Selection>,
        mode: SparseMode,
    ) {
        let t = positions.len();
        let mut hn = x.to_vec();
        self.input_layernorm.forward(&mut hn);
        let a = match (&self.self_attn, cache) {
            (Attention::Gqa(g), LayerCache::Gqa(c)) => g.forward(&hn, positions, c),
            (Attention::Mla(m), LayerCache::Mla { mla, indexer }) => {
                m.forward(&hn, positions, mla, indexer.as_mut(), selection, mode)
            }
            (Attention::DeltaNet(d), LayerCache::DeltaNet(c)) => d.forward(&hn, t, c),
            _ => unreachable!("caches are built from the blocks by Model::new_cache"),
        };
        kernels::add_assign(x, &a);
        let mut hn = x.to_vec();
        self.post_attention_layernorm.forward(&mut hn);
        let f = self.ffn.forward(&hn, t);
        kernels::add_assign(x, &f);
    }
}

fn load_moe(src: &WeightSource, cfg: &ModelConfig, names: &FfnNames) -> Result<MoeBlock> {
    let moe = cfg
        .moe
        .as_ref()
        .expect("validated: MoE layers have expert settings");
    let h = cfg.hidden_size;
    let (e, i) = (moe.num_experts, moe.intermediate_size);
    // Per-expert names under the published module, or transformers-5 fused names under `mlp`.
    let mut block = src.pp(names.moe);
    if let Some(alt) = names.moe_fused_alt {
        if !block.contains(&format!("{}.weight", names.router))
            && src.pp(alt).contains("experts.gate_up_proj")
        {
            block = src.pp(alt);
        }
    }
    let gate = Linear::load(&block, names.router, h, e, names.router_bias)?;
    let bias = match (names.correction_bias, &moe.router) {
        (Some([name, alt]), RouterKind::SigmoidBiased { .. }) => {
            // The published place, or the other place some exports use.
            if block.contains(name) || !block.contains(alt) {
                Some(block.get_f32(name, &[e])?)
            } else {
                Some(block.get_f32(alt, &[e])?)
            }
        }
        _ => None,
    };
    let router = Router::new(gate, moe.router.clone(), moe.top_k, bias)?;
    let experts = load_experts(&block.pp("experts"), &names.experts, e, h, i)?;
    let shared = match (&moe.shared, names.shared) {
        (Some(s), Some(name)) => Some(SharedExpert {
            mlp: Mlp::load(
                &block.pp(name),
                h,
                s.intermediate_size,
                ["gate_proj", "up_proj", "down_proj"],
            )?,
            gate: match (s.gated, names.shared_gate) {
                (true, Some(g)) => Some(Linear::load(&block, g, h, 1, false)?),
                _ => None,
            },
        }),
        _ => None,
    };
    Ok(MoeBlock {
        router,
        experts,
        shared,
        activation: moe.activation,
        hidden: h,
    })
}
