//! One decoder layer: `h = x + Attn(norm_in(x));  x' = h + FFN(norm_post(h))`.

use super::hyper::HyperConnection;
use crate::attention::{
    Attention, CompressedAttention, GatedDeltaNet, Gqa, Mla, Selection, SparseMode,
};
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
    fn forward(&self, x: &[f32], t: usize, ids: &[u32]) -> Vec<f32> {
        match self {
            FeedForward::Dense(m) => m.forward(x, t),
            FeedForward::Moe(m) => m.forward(x, t, ids),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub ffn: FeedForward,
    /// DeepSeek V4: the hyper-connections around the attention and the feed-forward.
    pub hc: Option<Box<[HyperConnection; 2]>>,
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
        let v4 = matches!(cfg.attention, AttentionConfig::Compressed(_));
        let attn_src = src.pp(if v4 { "attn" } else { "self_attn" });
        let (norm_in, norm_post) = if v4 {
            ("attn_norm", "ffn_norm")
        } else {
            ("input_layernorm", "post_attention_layernorm")
        };
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
            (AttentionConfig::Compressed(c), _) => Attention::Compressed(Box::new(
                CompressedAttention::load(&attn_src, c, layer, &cfg.rope, h, eps)?,
            )),
        };
        let hc = match &cfg.hyper_connections {
            Some(hc) => {
                let one = |prefix: &str| {
                    HyperConnection::load(
                        src,
                        prefix,
                        hc.streams,
                        h,
                        hc.sinkhorn_iters,
                        hc.eps,
                        eps,
                    )
                };
                Some(Box::new([one("hc_attn")?, one("hc_ffn")?]))
            }
            None => None,
        };
        let ffn = match layer.ffn {
            FfnKind::Dense => FeedForward::Dense(Box::new(Mlp::load(
                &src.pp(names.dense),
                h,
                cfg.intermediate_size,
                ["gate_proj", "up_proj", "down_proj"],
            )?)),
            FfnKind::Moe => {
                FeedForward::Moe(Box::new(load_moe(src, cfg, names, layer.hash_routing)?))
            }
        };
        Ok(Block {
            input_layernorm: RmsNorm::load_offset(src, norm_in, h, eps, offset)?,
            self_attn,
            post_attention_layernorm: RmsNorm::load_offset(src, norm_post, h, eps, offset)?,
            ffn,
            hc,
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
            Attention::Compressed(c) => LayerCache::Compressed(Box::new(c.new_cache())),
        }
    }

    /// Runs the layer on the residual stream `x[T, H]` (DeepSeek V4: `[T, n·H]`, `n` streams) of
    /// the tokens `ids` in place.
    pub(crate) fn forward(
        &self,
        x: &mut [f32],
        positions: &[usize],
        cache: &mut LayerCache,
        selection: &mut Option<Selection>,
        mode: SparseMode,
        ids: &[u32],
    ) {
        let t = positions.len();
        if let Some(hc) = &self.hc {
            let w = hc[0].weights(x, t);
            let mut hn = w.collapsed.clone();
            self.input_layernorm.forward(&mut hn);
            let a = self.attend(&hn, positions, cache, selection, mode);
            hc[0].combine(x, &w, &a, t);
            let w = hc[1].weights(x, t);
            let mut hn = w.collapsed.clone();
            self.post_attention_layernorm.forward(&mut hn);
            let f = self.ffn.forward(&hn, t, ids);
            hc[1].combine(x, &w, &f, t);
            return;
        }
        let mut hn = x.to_vec();
        self.input_layernorm.forward(&mut hn);
        let a = self.attend(&hn, positions, cache, selection, mode);
        kernels::add_assign(x, &a);
        let mut hn = x.to_vec();
        self.post_attention_layernorm.forward(&mut hn);
        let f = self.ffn.forward(&hn, t, ids);
        kernels::add_assign(x, &f);
    }

    /// The attention (or linear attention) of the normed `hn[T, H]`.
    fn attend(
        &self,
        hn: &[f32],
        positions: &[usize],
        cache: &mut LayerCache,
        selection: &mut Option<Selection>,
        mode: SparseMode,
    ) -> Vec<f32> {
        let t = positions.len();
        match (&self.self_attn, cache) {
            (Attention::Gqa(g), LayerCache::Gqa(c)) => g.forward(hn, positions, c),
            (Attention::Mla(m), LayerCache::Mla { mla, indexer }) => {
                m.forward(hn, positions, mla, indexer.as_mut(), selection, mode)
            }
            (Attention::DeltaNet(d), LayerCache::DeltaNet(c)) => d.forward(hn, t, c),
            (Attention::Compressed(a), LayerCache::Compressed(c)) => a.forward(hn, positions, c),
            _ => unreachable!("caches are built from the blocks by Model::new_cache"),
        }
    }
}

fn load_moe(
    src: &WeightSource,
    cfg: &ModelConfig,
    names: &FfnNames,
    hash_routing: bool,
) -> Result<MoeBlock> {
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
        // DeepSeek V4: learned layers have a bias, hash-routed ones none.
        (Some([name, alt]), RouterKind::SqrtSoftplus { .. }) => {
            match block.get_f32_opt(name, &[e])? {
                Some(b) => Some(b),
                None => block.get_f32_opt(alt, &[e])?,
            }
        }
        _ => None,
    };
    let tid2eid = if hash_routing {
        let t = block.get_any(
            &format!("{}.tid2eid", names.router),
            &[cfg.vocab_size, moe.top_k],
        )?;
        let ids = t.to_i64_vec()?;
        if let Some(bad) = ids.iter().find(|&&v| v < 0 || v as usize >= e) {
            return Err(Error::InconsistentConfig(format!(
                "{}: expert id {bad} outside 0..{e}",
                block.full_name(&format!("{}.tid2eid", names.router))
            )));
        }
        Some(ids.into_iter().map(|v| v as u32).collect())
    } else {
        None
    };
    let router = Router::new(gate, moe.router.clone(), moe.top_k, bias)?;
    let experts = load_experts(&block.pp("experts"), &names.experts, e, h, i)?;
    let shared = match (&moe.shared, names.shared) {
        (Some(s), Some(name)) => Some(SharedExpert {
            mlp: Mlp::load(
                &block.pp(name),
                h,
                s.intermediate_size,
                names.experts.per_expert,
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
        tid2eid,
    })
}
