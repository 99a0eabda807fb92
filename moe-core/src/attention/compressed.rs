//! DeepSeek V4's attention. One shared K=V head (`wkv`, normed, RoPE on its trailing dims) over a
//! sliding window of `W` keys, plus per layer the compressed entries of every `m` tokens: a
//! compressor pools each closed window's projected K/V rows with a softmax over learned gates plus a
//! position bias (compressed sparse attention overlaps each window with the previous one's first
//! series), norms and rotates the result at the window's first position. Compressed sparse layers
//! attend only to the top-k entries a lightning indexer scores (`Σ_h w_h·ReLU(q_h·k)`), heavily
//! compressed layers to every closed window. Per-head sinks join the softmax; the output's rope
//! slice is rotated back by the query's position; a grouped low-rank projection (`wo_a` per head
//! group, then `wo_b`) gives the layer's output.

use rayon::prelude::*;

use super::scores::softmax_with_sink;
use crate::cache::{CompressedCache, CompressorState};
use crate::config::{
    CompressedAttentionConfig, KvCompression, LayerConfig, RopeConfig, RopeLayout,
};
use crate::error::Result;
use crate::kernels::{self, top_k_indices, FloatData, MatRef};
use crate::layers::{Linear, RmsNorm};
use crate::rope::Rope;
use crate::weights::WeightSource;

/// Pools every `rate` tokens' projected K/V rows into one entry.
#[derive(Debug, Clone)]
pub(crate) struct Compressor {
    pub wkv: Linear,
    pub wgate: Linear,
    /// `[rate, series·dim]`: the position bias added to the gates.
    ape: Vec<f32>,
    norm: RmsNorm,
    rate: usize,
    dim: usize,
    /// Two series, each window's entry pooling the previous window's first series with its own
    /// second (compressed sparse attention).
    overlap: bool,
}

impl Compressor {
    fn load(
        src: &WeightSource,
        hidden: usize,
        dim: usize,
        rate: usize,
        overlap: bool,
        eps: f32,
    ) -> Result<Self> {
        let width = if overlap { 2 * dim } else { dim };
        Ok(Compressor {
            wkv: Linear::load(src, "wkv", hidden, width, false)?,
            wgate: Linear::load(src, "wgate", hidden, width, false)?,
            ape: src.get_f32("ape", &[rate, width])?,
            norm: RmsNorm::load(src, "norm", dim, eps)?,
            rate,
            dim,
            overlap,
        })
    }

    fn weight_bytes(&self) -> usize {
        self.wkv.weight_bytes() + self.wgate.weight_bytes()
    }

    /// Appends the tokens `x[T, H]` to the tail and emits an entry for every window closed.
    fn feed(&self, x: &[f32], t: usize, state: &mut CompressorState, rope: &Rope) {
        let (d, m) = (self.dim, self.rate);
        let width = if self.overlap { 2 * d } else { d };
        state.tail_kv.extend(self.wkv.forward(x, t));
        state.tail_gate.extend(self.wgate.forward(x, t));
        let rows = state.tail_kv.len() / width;
        let windows = rows / m;
        for w in 0..windows {
            let kv = &state.tail_kv[w * m * width..(w + 1) * m * width]; // [m, width]
            let mut gate = state.tail_gate[w * m * width..(w + 1) * m * width].to_vec();
            kernels::add_assign(&mut gate, &self.ape);
            let mut out = vec![0.0f32; d];
            let mut slots_kv = Vec::with_capacity(2 * m);
            let mut slots_gate = Vec::with_capacity(2 * m);
            for (c, o) in out.iter_mut().enumerate() {
                slots_kv.clear();
                slots_gate.clear();
                if self.overlap {
                    if let Some((pkv, pg)) = &state.overlap {
                        for j in 0..m {
                            slots_kv.push(pkv[j * d + c]);
                            slots_gate.push(pg[j * d + c]);
                        }
                    }
                    for j in 0..m {
                        slots_kv.push(kv[j * width + d + c]);
                        slots_gate.push(gate[j * width + d + c]);
                    }
                } else {
                    for j in 0..m {
                        slots_kv.push(kv[j * width + c]);
                        slots_gate.push(gate[j * width + c]);
                    }
                }
                kernels::softmax(&mut slots_gate);
                *o = slots_gate.iter().zip(&slots_kv).map(|(p, v)| p * v).sum();
            }
            if self.overlap {
                let first = |v: &[f32]| -> Vec<f32> {
                    v.chunks_exact(width)
                        .flat_map(|r| r[..d].to_vec())
                        .collect()
                };
                state.overlap = Some((first(kv), first(&gate)));
            }
            self.norm.forward(&mut out);
            let position = state.entries.len() * m;
            let (cos, sin) = rope.tables(&[position]);
            rope.apply(&mut out, 1, d, d - rope.dim, &cos, &sin);
            state.entries.append(&out);
        }
        state.tail_kv.drain(..windows * m * width);
        state.tail_gate.drain(..windows * m * width);
    }
}

/// Scores the compressed entries for each query and keeps the top-k.
#[derive(Debug, Clone)]
pub(crate) struct LightningIndexer {
    pub compressor: Compressor,
    pub wq_b: Linear,
    pub weights_proj: Linear,
    heads: usize,
    dim: usize,
    topk: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct CompressedAttention {
    pub wq_a: Linear,
    q_norm: RmsNorm,
    pub wq_b: Linear,
    pub wkv: Linear,
    kv_norm: RmsNorm,
    /// `[groups·o_rank, nh·d/groups]`, widened once.
    wo_a: Vec<f32>,
    pub wo_b: Linear,
    /// Per-head sink logits `[nh]`.
    sinks: Vec<f32>,
    /// The layer's RoPE (main for sliding-only layers, compress otherwise).
    rope: Rope,
    /// The compressors' and indexer's RoPE.
    compress_rope: Rope,
    pub compressor: Option<Compressor>,
    pub indexer: Option<LightningIndexer>,
    kind: KvCompression,
    nh: usize,
    d: usize,
    window: usize,
    groups: usize,
    o_rank: usize,
    eps: f32,
}

impl CompressedAttention {
    /// Loads `attn.*` of one layer (`src` is scoped to it).
    pub(crate) fn load(
        src: &WeightSource,
        cfg: &CompressedAttentionConfig,
        layer: &LayerConfig,
        main_rope: &RopeConfig,
        hidden: usize,
        eps: f32,
    ) -> Result<Self> {
        let (nh, d, ql) = (cfg.num_heads, cfg.head_dim, cfg.q_lora_rank);
        let (g, r) = (cfg.o_groups, cfg.o_lora_rank);
        let per_group = nh * d / g;
        let compress_rope = Rope::new(&cfg.compress_rope, cfg.rope_dim, RopeLayout::Interleaved);
        let (compressor, indexer) = match layer.compression {
            KvCompression::None => (None, None),
            KvCompression::Heavy(m) => (
                Some(Compressor::load(
                    &src.pp("compressor"),
                    hidden,
                    d,
                    m,
                    false,
                    eps,
                )?),
                None,
            ),
            KvCompression::Sparse(m) => {
                let ix = src.pp("indexer");
                let (ih, idim) = (cfg.index_heads, cfg.index_head_dim);
                (
                    Some(Compressor::load(
                        &src.pp("compressor"),
                        hidden,
                        d,
                        m,
                        true,
                        eps,
                    )?),
                    Some(LightningIndexer {
                        compressor: Compressor::load(
                            &ix.pp("compressor"),
                            hidden,
                            idim,
                            m,
                            true,
                            eps,
                        )?,
                        wq_b: Linear::load(&ix, "wq_b", ql, ih * idim, false)?,
                        weights_proj: Linear::load(&ix, "weights_proj", hidden, ih, false)?,
                        heads: ih,
                        dim: idim,
                        topk: cfg.index_topk,
                    }),
                )
            }
        };
        Ok(CompressedAttention {
            wq_a: Linear::load(src, "wq_a", hidden, ql, false)?,
            q_norm: RmsNorm::load(src, "q_norm", ql, eps)?,
            wq_b: Linear::load(src, "wq_b", ql, nh * d, false)?,
            wkv: Linear::load(src, "wkv", hidden, d, false)?,
            kv_norm: RmsNorm::load(src, "norm", d, eps)?,
            wo_a: src
                .pp("wo_a")
                .get("weight", &[g * r, per_group])?
                .to_f32_vec()?,
            wo_b: Linear::load(src, "wo_b", g * r, hidden, false)?,
            sinks: src.get_f32("attn_sink", &[nh])?,
            rope: match layer.compression {
                KvCompression::None => Rope::new(main_rope, cfg.rope_dim, RopeLayout::Interleaved),
                _ => compress_rope.clone(),
            },
            compress_rope,
            compressor,
            indexer,
            kind: layer.compression,
            nh,
            d,
            window: cfg.sliding_window,
            groups: g,
            o_rank: r,
            eps,
        })
    }

    /// Bytes of the weights one token streams through this attention.
    pub(crate) fn weight_bytes(&self) -> usize {
        self.wq_a.weight_bytes()
            + self.wq_b.weight_bytes()
            + self.wkv.weight_bytes()
            + self.wo_a.len() * 4
            + self.wo_b.weight_bytes()
            + self.compressor.as_ref().map_or(0, |c| c.weight_bytes())
            + self.indexer.as_ref().map_or(0, |i| {
                i.compressor.weight_bytes() + i.wq_b.weight_bytes() + i.weights_proj.weight_bytes()
            })
    }

    /// A fresh cache for this layer.
    pub(crate) fn new_cache(&self) -> CompressedCache {
        let rate = match self.kind {
            KvCompression::Sparse(m) | KvCompression::Heavy(m) => m,
            KvCompression::None => 0,
        };
        CompressedCache::new(
            self.d,
            self.window,
            rate,
            self.compressor.as_ref().map(|c| (c.dim, c.overlap)),
            self.indexer
                .as_ref()
                .map(|i| (i.compressor.dim, i.compressor.overlap)),
        )
    }

    /// `out[T, H]` for `x[T, H]` (already normed) at absolute `positions`; appends to `cache`.
    pub(crate) fn forward(
        &self,
        x: &[f32],
        positions: &[usize],
        cache: &mut CompressedCache,
    ) -> Vec<f32> {
        let t = positions.len();
        let (nh, d) = (self.nh, self.d);
        let rd = self.rope.dim;
        let mut qr = self.wq_a.forward(x, t); // [T, q_lora]
        self.q_norm.forward(&mut qr);
        let mut q = self.wq_b.forward(&qr, t); // [T, nh·d]
        kernels::rms_norm_plain(&mut q, d, self.eps);
        let (cos, sin) = self.rope.tables(positions);
        self.rope.apply(&mut q, nh, d, d - rd, &cos, &sin);
        let mut kv = self.wkv.forward(x, t); // [T, d]
        self.kv_norm.forward(&mut kv);
        self.rope.apply(&mut kv, 1, d, d - rd, &cos, &sin);
        cache.window.append(&kv);

        if let (Some(c), Some(state)) = (&self.compressor, cache.compressor.as_mut()) {
            c.feed(x, t, state, &self.compress_rope);
        }
        // Indexer queries and head weights: qi [T, ih·idim], wts [T, ih].
        let index = match (&self.indexer, cache.indexer.as_mut()) {
            (Some(ix), Some(state)) => {
                ix.compressor.feed(x, t, state, &self.compress_rope);
                let mut qi = ix.wq_b.forward(&qr, t);
                let (ic, is) = self.compress_rope.tables(positions);
                self.compress_rope
                    .apply(&mut qi, ix.heads, ix.dim, ix.dim - rd, &ic, &is);
                let mut wts = ix.weights_proj.forward(x, t);
                let s = (ix.heads as f32).powf(-0.5);
                wts.iter_mut().for_each(|w| *w *= s);
                Some((ix, qi, wts, &*state))
            }
            _ => None,
        };
        let rate = match self.kind {
            KvCompression::Sparse(m) | KvCompression::Heavy(m) => m,
            KvCompression::None => 1,
        };
        let entries = cache.compressor.as_ref().map(|s| &s.entries);
        let window = &cache.window;
        let scale = (d as f32).powf(-0.5);

        // attn[T, nh·d]: per query, the window keys and the chosen entries, then every head.
        let mut attn = vec![0.0f32; t * nh * d];
        attn.par_chunks_mut(nh * d)
            .enumerate()
            .for_each(|(i, out)| {
                let p = positions[i];
                let visible = entries.map_or(0, |e| ((p + 1) / rate).min(e.len()));
                let chosen: Vec<usize> = match &index {
                    Some((ix, qi, wts, state)) => {
                        let keys = &state.entries;
                        let sc = (ix.dim as f32).powf(-0.5);
                        let scores: Vec<f32> = (0..visible)
                            .map(|e| {
                                let k = keys.row(e);
                                (0..ix.heads)
                                    .map(|h| {
                                        let qh = &qi[(i * ix.heads + h) * ix.dim
                                            ..(i * ix.heads + h + 1) * ix.dim];
                                        wts[i * ix.heads + h]
                                            * kernels::dot_f32(qh, &k).max(0.0)
                                            * sc
                                    })
                                    .sum()
                            })
                            .collect();
                        top_k_indices(&scores, ix.topk.min(visible))
                    }
                    None => (0..visible).collect(),
                };
                let lo = (p + 1).saturating_sub(self.window).max(window.start());
                // Rows come back borrowed where the cache holds f32 in one piece (V4's caches do).
                let mut keys: Vec<std::borrow::Cow<'_, [f32]>> =
                    (lo..=p).map(|k| window.row(k)).collect();
                if let Some(e) = entries {
                    keys.extend(chosen.iter().map(|&c| e.row(c)));
                }
                let mut scores = vec![0.0f32; keys.len()];
                for (h, o) in out.chunks_exact_mut(d).enumerate() {
                    let qh = &q[(i * nh + h) * d..(i * nh + h + 1) * d];
                    for (s, k) in scores.iter_mut().zip(&keys) {
                        *s = scale * kernels::dot_f32(qh, k);
                    }
                    softmax_with_sink(&mut scores, Some(self.sinks[h]));
                    for (w, k) in scores.iter().zip(&keys) {
                        kernels::axpy_f32(*w, k, o);
                    }
                }
                // The values carried RoPE: rotate each head's rope slice back by the query's position.
                let (c, s) = self.rope.tables(&[p]);
                let neg: Vec<f32> = s.iter().map(|v| -v).collect();
                self.rope.apply(out, nh, d, d - rd, &c, &neg);
            });
        cache.evict();

        // Grouped output projection: each head group through its own rows of wo_a, then wo_b.
        let (g, r) = (self.groups, self.o_rank);
        let per = nh * d / g;
        let mut mid = vec![0.0f32; t * g * r]; // [T, g·r]
        let mut xg = vec![0.0f32; t * per];
        let mut yg = vec![0.0f32; t * r];
        for gi in 0..g {
            for i in 0..t {
                xg[i * per..(i + 1) * per]
                    .copy_from_slice(&attn[i * nh * d + gi * per..i * nh * d + (gi + 1) * per]);
            }
            let w = MatRef::new(
                FloatData::F32(&self.wo_a[gi * r * per..(gi + 1) * r * per]),
                r,
                per,
            );
            kernels::matmul_t(w, &xg, t, &mut yg);
            for i in 0..t {
                mid[i * g * r + gi * r..i * g * r + (gi + 1) * r]
                    .copy_from_slice(&yg[i * r..(i + 1) * r]);
            }
        }
        self.wo_b.forward(&mid, t)
    }
}
