//! Not part of the supported API: what the benchmarks, examples and white-box tests of this
//! repository reach into (kernel levels, raw caches and forwards, checkpoint tensors). Hidden from
//! the docs and free to change in any release. Unlike the supported API, these functions trust their
//! arguments: the kernels, for instance, panic on inconsistent shapes.

use crate::attention::Attention;
use crate::cache::LayerCache;
use crate::model::Model;

pub use crate::cache::{KvCache, ModelCache};
/// The hash of session snapshots (tests re-sign hostile files with it).
pub use crate::hash::hash64;
pub use crate::layers::decode_e4m3;
pub use crate::weights::{read_safetensors_file, Checkpoint, DType, Tensor};

/// Kernel levels and the raw product, for the kernel benchmarks.
pub mod kernels {
    pub use crate::kernels::{
        build_pool, choose, cpu_id, force_isa, isa, lookup, matmul_t_with, supported_isas, CpuId,
        FloatData, Isa, MatRef, Precision, ProductKind, Row, TABLE,
    };
}

/// An empty cache for `model`, outside any session.
pub fn new_cache(model: &Model) -> ModelCache {
    model.new_cache()
}

/// Appends `n` rows drawn from `value` to every MLA layer's latent, rope-key and indexer caches.
pub fn fill_mla_cache(cache: &mut ModelCache, n: usize, value: &mut dyn FnMut() -> f32) {
    let mut rows = |width: usize| -> Vec<f32> { (0..n * width).map(|_| value()).collect() };
    for layer in &mut cache.layers {
        if let LayerCache::Mla { mla, indexer } = layer {
            let (c, r) = (mla.latent.width(), mla.k_pe.width());
            let (latent, k_pe) = (rows(c), rows(r));
            mla.append(&latent, &k_pe);
            if let Some(ix) = indexer {
                let w = ix.keys.width();
                ix.keys.append(&rows(w));
            }
        }
    }
}

/// Appends `n` K and V rows drawn from `value` to every GQA layer's cache (windowed layers then
/// drop what they no longer need).
pub fn fill_gqa_cache(cache: &mut ModelCache, n: usize, value: &mut dyn FnMut() -> f32) {
    for layer in &mut cache.layers {
        if let LayerCache::Gqa(g) = layer {
            let w = g.k.width();
            let k: Vec<f32> = (0..n * w).map(|_| value()).collect();
            let v: Vec<f32> = (0..n * w).map(|_| value()).collect();
            g.append(&k, &v);
            g.evict();
        }
    }
}

/// Makes an empty `cache` store its GQA / MLA / indexer rows in `dtype` (what
/// `SessionParams::with_kv_dtype` does for a session's cache).
pub fn set_cache_dtype(cache: &mut ModelCache, dtype: crate::KvDType) {
    cache.set_dtype(dtype);
}

/// Gives every DeepSeek V4 layer's cache the state `n` tokens leave, drawn from `value`: the window's
/// last `W − 1` rows, one compressed entry (and indexer key) per closed window, the open window's tail
/// and the overlap halves of compressed sparse layers.
pub fn fill_compressed_cache(cache: &mut ModelCache, n: usize, value: &mut dyn FnMut() -> f32) {
    let mut rows =
        |count: usize, width: usize| -> Vec<f32> { (0..count * width).map(|_| value()).collect() };
    for layer in &mut cache.layers {
        if let LayerCache::Compressed(c) = layer {
            KvCache::clear(c.as_mut());
            let keep = c.sliding_window.saturating_sub(1).min(n);
            let d = c.window.width();
            c.window.start_at(n - keep);
            c.window.append(&rows(keep, d));
            let (rate, overlap) = (c.rate.max(1), c.indexer.is_some());
            for state in [&mut c.compressor, &mut c.indexer].into_iter().flatten() {
                let dim = state.entries.width();
                let width = if overlap { 2 * dim } else { dim };
                state.entries.append(&rows(n / rate, dim));
                state.tail_kv = rows(n % rate, width);
                state.tail_gate = rows(n % rate, width);
                if overlap && n >= rate {
                    state.overlap = Some((rows(rate, dim), rows(rate, dim)));
                }
            }
        }
    }
}

/// One raw forward of `ids` at positions `start..` over `cache` (the checks of `Model::forward`,
/// none of a session's).
pub fn forward(
    model: &Model,
    ids: &[u32],
    start: usize,
    cache: &mut ModelCache,
    logits: crate::LogitsMode,
    mode: crate::SparseMode,
) -> crate::Result<Vec<f32>> {
    model.forward(ids, start, cache, logits, mode, None)
}

/// Runs every DSA layer's indexer for one query at position `ctx` on inputs drawn from `value`;
/// returns how many keys each selected.
pub fn run_indexers(
    model: &Model,
    cache: &mut ModelCache,
    ctx: usize,
    value: &mut dyn FnMut() -> f32,
) -> Vec<usize> {
    let mut selected = Vec::new();
    for (block, layer) in model.layers.iter().zip(cache.layers.iter_mut()) {
        if let (
            Attention::Mla(m),
            LayerCache::Mla {
                indexer: Some(ic), ..
            },
        ) = (&block.self_attn, layer)
        {
            if let Some(ix) = &m.indexer {
                let x: Vec<f32> = (0..model.config.hidden_size).map(|_| value()).collect();
                let cq: Vec<f32> = (0..ix.wq_b.in_dim).map(|_| value()).collect();
                let sel = ix.select(&x, &cq, &[ctx], ic);
                selected.push(sel[0].len());
            }
        }
    }
    selected
}

/// Layer `layer`'s attention output projection: (weight bytes incl. scales, stored packed, weight
/// data still memory-mapped).
pub fn o_proj_storage(model: &Model, layer: usize) -> Option<(usize, bool, bool)> {
    let o = match &model.layers.get(layer)?.self_attn {
        Attention::Gqa(g) => &g.o_proj,
        Attention::Mla(m) => &m.o_proj,
        Attention::DeltaNet(d) => &d.out_proj,
        Attention::Compressed(c) => &c.wo_b,
    };
    Some((o.weight_bytes(), o.is_packed(), o.weight.is_mapped()))
}

/// Whether the lm_head is stored packed.
pub fn lm_head_is_packed(model: &Model) -> bool {
    model.lm_head.is_packed()
}

/// Weight bytes of routed expert `expert` of layer `layer` (incl. scales), if that layer is MoE.
pub fn expert_bytes(model: &Model, layer: usize, expert: usize) -> Option<usize> {
    match &model.layers.get(layer)?.ffn {
        crate::model::FeedForward::Moe(b) => b.experts.get(expert).map(|e| e.weight_bytes()),
        crate::model::FeedForward::Dense(_) => None,
    }
}

/// Prompt lengths from which GQA uses tiled attention and MLA expands its latents (ablations).
pub fn set_attention_thresholds(
    model: &mut Model,
    gqa_tiled_min_tokens: Option<usize>,
    mla_expand_min_tokens: Option<usize>,
) {
    for b in &mut model.layers {
        match &mut b.self_attn {
            Attention::Gqa(g) => {
                if let Some(n) = gqa_tiled_min_tokens {
                    g.tiled_min_tokens = n;
                }
            }
            Attention::Mla(m) => {
                if let Some(n) = mla_expand_min_tokens {
                    m.expand_min_tokens = n;
                }
            }
            Attention::DeltaNet(_) | Attention::Compressed(_) => {}
        }
    }
}

/// [`Session::decode_batch`](crate::Session::decode_batch), also returning the bytes of routed
/// expert weights the step read: per MoE layer, every expert chosen by any of the batch's rows, once
/// (the union of the rows' choices, counted in the MoE layer's grouping by expert).
pub fn decode_batch_counted(
    sessions: &mut [&mut crate::Session],
    tokens: &[u32],
) -> crate::Result<(ndarray::Array2<f32>, usize)> {
    let chunks: Vec<&[u32]> = tokens.iter().map(std::slice::from_ref).collect();
    crate::Session::step_batch(sessions, &chunks, crate::LogitsMode::Last)
}

/// Weight bytes a decode step reads whatever the batch: [`Model::weight_bytes_per_token`] less its
/// routed experts (attention, routers, shared experts, dense MLPs, lm_head, one embedding row).
pub fn non_expert_bytes_per_step(model: &Model) -> usize {
    let routed: usize = model
        .layers
        .iter()
        .map(|b| match &b.ffn {
            crate::model::FeedForward::Moe(m) => {
                m.router.top_k * m.experts.first().map_or(0, |e| e.weight_bytes())
            }
            crate::model::FeedForward::Dense(_) => 0,
        })
        .sum();
    model.weight_bytes_per_token() - routed
}
