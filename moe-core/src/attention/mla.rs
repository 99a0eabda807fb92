//! Multi-head latent attention (DeepSeek V2/V3, Kimi K2, GLM-5), attending in latent space: the cache
//! holds only `c_kv` and `k_pe`; the key up-projection is absorbed into the query and the value
//! up-projection applied after the weighted sum (ARCHITECTURES.md 2.3–2.4). With an indexer (DSA) each
//! query attends only to its selected keys, gathered from the cache.

use std::borrow::Cow;

use rayon::prelude::*;

use super::indexer::{Indexer, Selection};
use super::scores::softmax_with_sink;
use crate::cache::{IndexerCache, MlaCache, Table};
use crate::config::{IndexerRole, LayerConfig, MlaConfig, RopeConfig};
use crate::error::Result;
use crate::kernels::{self, FloatData, MatRef, Precision};
use crate::layers::{Linear, RmsNorm};
use crate::rope::Rope;
use crate::weights::WeightSource;

/// How the query is produced.
#[derive(Debug, Clone)]
pub(crate) enum QueryProj {
    /// `q = q_b_proj(RMSNorm(q_a_proj(x)))`.
    LoRa {
        q_a_proj: Linear,
        q_a_layernorm: RmsNorm,
        q_b_proj: Linear,
    },
    /// `q = q_proj(x)` (V2-Lite, Moonlight).
    Full { q_proj: Linear },
}

#[derive(Debug, Clone)]
pub(crate) struct Mla {
    pub q: QueryProj,
    pub kv_a_proj_with_mqa: Linear,
    pub kv_a_layernorm: RmsNorm,
    /// `[nh·(dn+dv), c]`: per head `W_UK` (dn rows) then `W_UV` (dv rows).
    pub kv_b_proj: Linear,
    pub o_proj: Linear,
    pub indexer: Option<Indexer>,
    role: IndexerRole,
    rope: Rope,
    nh: usize,
    dn: usize,
    dr: usize,
    dv: usize,
    c: usize,
    scale: f32,
    /// Prompts of at least this many tokens (dense attention) expand the cached latents into
    /// per-head keys and values once and attend like MHA, which costs fewer operations than
    /// attending in latent space once `T` is large; shorter forwards (decode) stay absorbed.
    pub expand_min_tokens: usize,
}

/// The projected rows of a forward, before they meet the cache ([`Mla::project`]).
pub(crate) struct MlaRows {
    /// `[T, nh·(dn+dr)]`, RoPE applied to each head's last `dr`.
    pub(crate) q: Vec<f32>,
    /// The query latent `[T, q_lora]` the indexer reads (LoRA queries only).
    pub(crate) cq: Option<Vec<f32>>,
    /// Normed key latents `[T, c]`.
    pub(crate) latent: Vec<f32>,
    /// Rope keys `[T, dr]`.
    pub(crate) k_pe: Vec<f32>,
}

impl MlaRows {
    /// These rows cut into consecutive parts of `lens[i]` rows each (`Σ lens` = the rows held): one
    /// per sequence of a batch.
    pub(crate) fn split(self, lens: &[usize]) -> Vec<MlaRows> {
        let total: usize = lens.iter().sum();
        let cut = |v: &[f32]| -> Vec<Vec<f32>> {
            let w = v.len() / total.max(1); // row width
            let mut at = 0;
            lens.iter()
                .map(|&n| {
                    let part = v[at * w..(at + n) * w].to_vec();
                    at += n;
                    part
                })
                .collect()
        };
        let (q, latent, k_pe) = (cut(&self.q), cut(&self.latent), cut(&self.k_pe));
        let cq: Vec<Option<Vec<f32>>> = match &self.cq {
            Some(cq) => cut(cq).into_iter().map(Some).collect(),
            None => vec![None; lens.len()],
        };
        q.into_iter()
            .zip(cq)
            .zip(latent.into_iter().zip(k_pe))
            .map(|((q, cq), (latent, k_pe))| MlaRows {
                q,
                cq,
                latent,
                k_pe,
            })
            .collect()
    }
}

/// Default of [`Mla::expand_min_tokens`].
pub(crate) const MLA_EXPAND_MIN_TOKENS: usize = 64;

/// Whether DSA layers restrict attention to the indexer's selection or attend to every key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SparseMode {
    /// Attend only to the selected keys (the model's definition; the default).
    #[default]
    Sparse,
    /// Ignore the selection and attend densely (for comparison and benchmarks).
    Dense,
}

impl Mla {
    pub(crate) fn load(
        src: &WeightSource,
        cfg: &MlaConfig,
        layer: &LayerConfig,
        rope: &RopeConfig,
        hidden: usize,
    ) -> Result<Self> {
        let (nh, dn, dr, dv, c) = (
            cfg.num_heads,
            cfg.qk_nope_head_dim,
            cfg.qk_rope_head_dim,
            cfg.v_head_dim,
            cfg.kv_lora_rank,
        );
        let bias = src.contains("kv_a_proj_with_mqa.bias");
        let q = match cfg.q_lora_rank {
            Some(r) => QueryProj::LoRa {
                q_a_proj: Linear::load(src, "q_a_proj", hidden, r, bias)?,
                q_a_layernorm: RmsNorm::load(src, "q_a_layernorm", r, cfg.latent_norm_eps)?,
                q_b_proj: Linear::load(src, "q_b_proj", r, nh * (dn + dr), false)?,
            },
            None => QueryProj::Full {
                q_proj: Linear::load(src, "q_proj", hidden, nh * (dn + dr), false)?,
            },
        };
        let indexer = match (&cfg.indexer, layer.indexer, cfg.q_lora_rank) {
            (Some(ic), IndexerRole::Full, Some(r)) => {
                Some(Indexer::load(&src.pp("indexer"), ic, rope, dr, hidden, r)?)
            }
            _ => None,
        };
        Ok(Mla {
            q,
            kv_a_proj_with_mqa: Linear::load(src, "kv_a_proj_with_mqa", hidden, c + dr, bias)?,
            kv_a_layernorm: RmsNorm::load(src, "kv_a_layernorm", c, cfg.latent_norm_eps)?,
            // Used in per-head slices (absorption): FP8 is dequantised once here, as DeepSeek's reference does.
            kv_b_proj: Linear::load(src, "kv_b_proj", c, nh * (dn + dv), false)?.into_float(),
            o_proj: Linear::load(src, "o_proj", nh * dv, hidden, bias)?,
            indexer,
            role: layer.indexer,
            rope: Rope::new(rope, dr, cfg.rope_layout),
            nh,
            dn,
            dr,
            dv,
            c,
            scale: cfg.softmax_scale,
            expand_min_tokens: MLA_EXPAND_MIN_TOKENS,
        })
    }

    pub(crate) fn new_cache(&self) -> (MlaCache, Option<IndexerCache>) {
        (
            MlaCache::new(self.c, self.dr),
            self.indexer.as_ref().map(|i| i.new_cache()),
        )
    }

    /// `out[T, H]` for normed `x[T, H]`. `selection` carries the most recent full indexer layer's choice
    /// to shared layers (GLM-5); a full layer replaces it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward(
        &self,
        x: &[f32],
        positions: &[usize],
        cache: &mut MlaCache,
        indexer_cache: Option<&mut IndexerCache>,
        selection: &mut Option<Selection>,
        mode: SparseMode,
    ) -> Vec<f32> {
        let p = self.project(x, positions);
        let o = self.attend(x, p, positions, cache, indexer_cache, selection, mode);
        self.o_proj.forward(&o, positions.len())
    }

    /// The row-wise half of [`forward`](Self::forward) for normed `x[T, H]` at `positions`: query,
    /// query latent, key latent and rope key. Rows are independent, so the rows of several sequences
    /// go through as one product (batched decode).
    pub(crate) fn project(&self, x: &[f32], positions: &[usize]) -> MlaRows {
        let t = positions.len();
        let (nh, dn, dr, c) = (self.nh, self.dn, self.dr, self.c);
        let dq = dn + dr;

        // q[T, nh*(dn+dr)], and the query latent cq[T, q_lora] the indexer reads.
        let (mut q, cq) = match &self.q {
            QueryProj::LoRa {
                q_a_proj,
                q_a_layernorm,
                q_b_proj,
            } => {
                let mut cq = q_a_proj.forward(x, t);
                q_a_layernorm.forward(&mut cq);
                (q_b_proj.forward(&cq, t), Some(cq))
            }
            QueryProj::Full { q_proj } => (q_proj.forward(x, t), None),
        };
        // a[T, c+dr] = [c_kv | k_pe];  c_kv = RMSNorm(a[:c]).
        let a = self.kv_a_proj_with_mqa.forward(x, t);
        let mut latent = Vec::with_capacity(t * c); // [T, c]
        let mut k_pe = Vec::with_capacity(t * dr); // [T, dr]
        for row in a.chunks_exact(c + dr) {
            latent.extend_from_slice(&row[..c]);
            k_pe.extend_from_slice(&row[c..]);
        }
        self.kv_a_layernorm.forward(&mut latent);
        let (cos, sin) = self.rope.tables(positions);
        self.rope.apply(&mut q, nh, dq, dn, &cos, &sin); // rope slice is LAST in each q head
        self.rope.apply(&mut k_pe, 1, dr, 0, &cos, &sin);
        MlaRows {
            q,
            cq,
            latent,
            k_pe,
        }
    }

    /// The per-sequence half of [`forward`](Self::forward): appends the rows' latents to `cache`,
    /// runs the indexer (on the sequence's normed input `x[T, H]`) and returns `o[T, nh·dv]` before
    /// `o_proj`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attend(
        &self,
        x: &[f32],
        rows: MlaRows,
        positions: &[usize],
        cache: &mut MlaCache,
        indexer_cache: Option<&mut IndexerCache>,
        selection: &mut Option<Selection>,
        mode: SparseMode,
    ) -> Vec<f32> {
        let t = positions.len();
        let MlaRows {
            q,
            cq,
            latent,
            k_pe,
        } = rows;
        cache.append(&latent, &k_pe);

        match (&self.indexer, cq.as_ref(), indexer_cache) {
            (Some(ix), Some(cq), Some(ic)) => *selection = Some(ix.select(x, cq, positions, ic)),
            _ if self.role == IndexerRole::None => *selection = None,
            _ => {} // shared layer: keep the previous full layer's selection
        }
        let sel = match (mode, self.role) {
            (SparseMode::Sparse, IndexerRole::Full | IndexerRole::Shared) => selection.as_ref(),
            _ => None,
        };

        // Queries that attend to all their causal keys (all of them unless the indexer narrowed some
        // selections) go through the expanded path when there are enough of them; the rest attend
        // in latent space, gathering their selected keys.
        let full: Vec<usize> = (0..t)
            .filter(|&i| sel.is_none_or(|s| s[i].len() == positions[i] + 1))
            .collect();
        if full.len() >= self.expand_min_tokens {
            let mut o = self.attend_expanded(&q, positions, cache, &full);
            if full.len() < t {
                // Rows of `full` come back zero from here.
                let rest = self.attend_latent(&q, positions, cache, sel, true);
                kernels::add_assign(&mut o, &rest);
            }
            o
        } else {
            self.attend_latent(&q, positions, cache, sel, false)
        }
    }

    /// `kv_b_proj` rows of head `h`: `W_UK[h]` `[dn, c]` and `W_UV[h]` `[dv, c]`.
    fn head_weights(&self, h: usize) -> (MatRef<'_>, MatRef<'_>) {
        let wkv = self
            .kv_b_proj
            .weight
            .float_data()
            .expect("dtype checked at load");
        let (dn, dv, c) = (self.dn, self.dv, self.c);
        let r0 = h * (dn + dv);
        (
            MatRef::new(wkv.slice(r0 * c..(r0 + dn) * c), dn, c),
            MatRef::new(wkv.slice((r0 + dn) * c..(r0 + dn + dv) * c), dv, c),
        )
    }

    /// The cached latents `[n, c]` and rope keys `[n, dr]` as contiguous f32 tables for the expanded
    /// path: borrowed when the cache stores f32 in one piece, decoded when it stores bf16/int8 or
    /// shares a forked prefix.
    fn cached_keys<'c>(&self, cache: &'c MlaCache) -> (usize, Cow<'c, [f32]>, Cow<'c, [f32]>) {
        let n = cache.latent.len();
        debug_assert_eq!(cache.latent.start(), 0, "MLA caches never evict");
        (n, cache.latent.rows(0..n), cache.k_pe.rows(0..n))
    }

    /// Attention in latent space (ARCHITECTURES.md 2.4): per head, `q̃ = q_nope·W_UK` for all tokens
    /// at once; then, for the queries that see all their causal keys, the queries of every head are
    /// stacked (`[T·nh, c]`, row `i·nh + h`) and meet the cached latents in ONE scores product
    /// `q̃·c_t + q_pe·k_pe_t`, a softmax per row and ONE value product `ō = Σ_t P_t c_t`, so the
    /// cache is streamed once per layer (not once per head), borrowed in its stored precision (bf16
    /// rows go to the bf16 kernels as they are; a fork's shared prefix and its own rows are two
    /// products each, not a copy; int8 rows are decoded). With a sparse `sel`, each (token, head) whose
    /// selection is narrower gathers only its selected keys. Finally `o = ō·W_UVᵀ` per head. Returns
    /// `o[T, nh·dv]` (with zero rows for the queries that see all their keys when `skip_full`: the
    /// expanded path computed those).
    fn attend_latent(
        &self,
        q: &[f32],
        positions: &[usize],
        cache: &MlaCache,
        sel: Option<&Selection>,
        skip_full: bool,
    ) -> Vec<f32> {
        let t = positions.len();
        let (nh, dr, dv, c) = (self.nh, self.dr, self.dv, self.c);
        let (q_lat, q_pe) = self.absorb(q, t);
        let sees_all = |i: usize| sel.is_none_or(|s| s[i].len() == positions[i] + 1);
        let full: Vec<usize> = (0..t).filter(|&i| !skip_full && sees_all(i)).collect();
        let part: Vec<usize> = (0..t).filter(|&i| !sees_all(i)).collect();
        let mut o_lat = vec![0.0f32; t * nh * c]; // [T·nh, c], row i·nh + h
        let n = cache.latent.len();
        debug_assert_eq!(cache.latent.start(), 0, "MLA caches never evict");
        // The whole table only when some query sees every key: a DSA decode step reads only the
        // `index_topk` keys it selected. Piece by piece (a fork's shared prefix, then its own rows),
        // each lent as stored (f32 or bf16) or decoded (int8).
        if !full.is_empty() {
            let lat = cache.latent.tables(0..n);
            let pe = cache.k_pe.tables(0..n);
            // Tokens per pass: every pass streams the table once; the score rows of a pass stay
            // bounded (~16 MB) whatever the context.
            let per_pass = ((1usize << 22) / (nh * n).max(1)).max(1);
            for chunk in full.chunks(per_pass) {
                let rows = chunk.len() * nh;
                let (mut ql, mut qp) =
                    (Vec::with_capacity(rows * c), Vec::with_capacity(rows * dr));
                for &i in chunk {
                    ql.extend_from_slice(&q_lat[i * nh * c..(i + 1) * nh * c]);
                    qp.extend_from_slice(&q_pe[i * nh * dr..(i + 1) * nh * dr]);
                }
                // s[rows, n] = q̃·latᵀ + q_pe·peᵀ, softmax over each query's visible keys.
                let mut s = vec![0.0f32; rows * n];
                let mut s_pe = vec![0.0f32; rows * n];
                scores_into(&lat, &ql, rows, c, n, &mut s);
                scores_into(&pe, &qp, rows, dr, n, &mut s_pe);
                s.par_chunks_mut(n)
                    .zip(s_pe.par_chunks(n))
                    .enumerate()
                    .for_each(|(r, (row, pe_row))| {
                        let visible = positions[chunk[r / nh]] + 1;
                        for (v, b) in row.iter_mut().zip(pe_row) {
                            *v = self.scale * (*v + b);
                        }
                        softmax_rows(&mut row[..visible], 1.0);
                        row[visible..].fill(0.0);
                    });
                let od = values(&lat, &s, rows, c, n); // [rows, c]
                for (j, &i) in chunk.iter().enumerate() {
                    o_lat[i * nh * c..(i + 1) * nh * c]
                        .copy_from_slice(&od[j * nh * c..(j + 1) * nh * c]);
                }
            }
        }
        if let (Some(sel), false) = (sel, part.is_empty()) {
            // f32 rows of the selected keys: the table borrowed when it is f32 in one piece, else
            // only the selected keys, decoded once for all heads; `slot(tk)` is key tk's row.
            let (lat, pe, gathered) = if cache.latent.is_borrowable() && cache.k_pe.is_borrowable()
            {
                (cache.latent.rows(0..n), cache.k_pe.rows(0..n), None)
            } else {
                let mut keys: Vec<usize> =
                    part.iter().flat_map(|&i| sel[i].iter().copied()).collect();
                keys.sort_unstable();
                keys.dedup();
                let (mut l, mut r) = (Vec::new(), Vec::new());
                cache.latent.gather_into(&keys, &mut l); // [keys, c]
                cache.k_pe.gather_into(&keys, &mut r); // [keys, dr]
                (Cow::Owned(l), Cow::Owned(r), Some(keys))
            };
            let slot = |tk: usize| match &gathered {
                Some(keys) => keys.binary_search(&tk).unwrap_or(0),
                None => tk,
            };
            let pairs: Vec<(usize, usize)> = part
                .iter()
                .flat_map(|&i| (0..nh).map(move |h| (i, h)))
                .collect();
            let outs: Vec<Vec<f32>> = pairs
                .par_iter()
                .map(|&(i, h)| {
                    let keys = &sel[i];
                    let r0 = i * nh + h;
                    let ql = &q_lat[r0 * c..(r0 + 1) * c];
                    let qp = &q_pe[r0 * dr..(r0 + 1) * dr];
                    let mut sc: Vec<f32> = keys
                        .iter()
                        .map(|&tk| {
                            let r = slot(tk);
                            self.scale
                                * (kernels::dot_f32(ql, &lat[r * c..(r + 1) * c])
                                    + kernels::dot_f32(qp, &pe[r * dr..(r + 1) * dr]))
                        })
                        .collect();
                    softmax_with_sink(&mut sc, None);
                    let mut ol = vec![0.0f32; c];
                    for (&tk, w) in keys.iter().zip(&sc) {
                        let r = slot(tk);
                        kernels::axpy_f32(*w, &lat[r * c..(r + 1) * c], &mut ol);
                    }
                    ol
                })
                .collect();
            for (&(i, h), ol) in pairs.iter().zip(&outs) {
                o_lat[(i * nh + h) * c..(i * nh + h + 1) * c].copy_from_slice(ol);
            }
        }
        // o = ō·W_UVᵀ per head, at f32 activations in every precision mode: ō is an average of
        // latents whose rounding to bf16 costs more accuracy than this small product saves.
        let per_head: Vec<Vec<f32>> = (0..nh)
            .into_par_iter()
            .map(|h| {
                let (_, w_uv) = self.head_weights(h);
                let mut ol = Vec::with_capacity(t * c); // [T, c]
                for i in 0..t {
                    ol.extend_from_slice(&o_lat[(i * nh + h) * c..(i * nh + h + 1) * c]);
                }
                let mut oh = vec![0.0f32; t * dv]; // [T, dv]
                kernels::matmul_t_with(kernels::isa(), Precision::F32, w_uv, &ol, t, &mut oh);
                oh
            })
            .collect();
        let mut o = vec![0.0f32; t * nh * dv];
        for (h, oh) in per_head.iter().enumerate() {
            for i in 0..t {
                o[i * nh * dv + h * dv..i * nh * dv + (h + 1) * dv]
                    .copy_from_slice(&oh[i * dv..(i + 1) * dv]);
            }
        }
        o
    }

    /// The absorbed queries `q̃[T·nh, c] = q_nope·W_UK` (row `i·nh + h`; one product per head over
    /// all tokens) and the rope queries `q_pe[T·nh, dr]`, of `q[T, nh·(dn+dr)]`.
    fn absorb(&self, q: &[f32], t: usize) -> (Vec<f32>, Vec<f32>) {
        let (nh, dn, dr, c) = (self.nh, self.dn, self.dr, self.c);
        let dq = dn + dr;
        let per_head: Vec<Vec<f32>> = (0..nh)
            .into_par_iter()
            .map(|h| {
                let (w_uk, _) = self.head_weights(h);
                let mut q_nope = Vec::with_capacity(t * dn); // [T, dn]
                for i in 0..t {
                    let at = i * nh * dq + h * dq;
                    q_nope.extend_from_slice(&q[at..at + dn]);
                }
                let mut q_lat = vec![0.0f32; t * c]; // [T, c]
                kernels::matmul_n(w_uk, &q_nope, t, &mut q_lat);
                q_lat
            })
            .collect();
        let mut q_lat = vec![0.0f32; t * nh * c];
        let mut q_pe = Vec::with_capacity(t * nh * dr);
        for i in 0..t {
            for (h, ql) in per_head.iter().enumerate() {
                let r = i * nh + h;
                q_lat[r * c..(r + 1) * c].copy_from_slice(&ql[i * c..(i + 1) * c]);
                let at = i * nh * dq + h * dq + dn;
                q_pe.extend_from_slice(&q[at..at + dr]);
            }
        }
        (q_lat, q_pe)
    }

    /// Long prompts: expand every cached latent once, `[k_nope | v] = c·W_kv_bᵀ`, and attend per head
    /// like MHA with keys `[k_nope | k_pe]`, in query blocks that read only their causal keys.
    /// Returns `o[T, nh·dv]`.
    fn attend_expanded(
        &self,
        q: &[f32],
        positions: &[usize],
        cache: &MlaCache,
        tokens: &[usize],
    ) -> Vec<f32> {
        let t = positions.len();
        let tt = tokens.len();
        let (nh, dn, dr, dv) = (self.nh, self.dn, self.dr, self.dv);
        let (dq, hr) = (dn + dr, dn + dv);
        let (n, lat, pe) = self.cached_keys(cache);
        let kv = self.kv_b_proj.forward(&lat, n); // [n, nh·(dn+dv)]
        const QB: usize = 64;
        let per_head: Vec<Vec<f32>> = (0..nh)
            .into_par_iter()
            .map(|h| {
                // k_h[n, dq] = [k_nope | k_pe];  q_h[T, dq]
                let mut k = Vec::with_capacity(n * dq);
                for tk in 0..n {
                    k.extend_from_slice(&kv[tk * nh * hr + h * hr..tk * nh * hr + h * hr + dn]);
                    k.extend_from_slice(&pe[tk * dr..(tk + 1) * dr]);
                }
                let mut qh = Vec::with_capacity(tt * dq);
                for &i in tokens {
                    qh.extend_from_slice(&q[i * nh * dq + h * dq..i * nh * dq + (h + 1) * dq]);
                }
                let mut oh = vec![0.0f32; tt * dv];
                for i0 in (0..tt).step_by(QB) {
                    let i1 = (i0 + QB).min(tt);
                    let tb = i1 - i0;
                    let nk = tokens[i0..i1]
                        .iter()
                        .map(|&i| positions[i] + 1)
                        .max()
                        .unwrap_or(0);
                    // s[tb, nk] = q·kᵀ, causal softmax per query
                    let mut s = vec![0.0f32; tb * nk];
                    let km = MatRef::new(FloatData::F32(&k[..nk * dq]), nk, dq);
                    kernels::matmul_t(km, &qh[i0 * dq..i1 * dq], tb, &mut s);
                    for (j, row) in s.chunks_exact_mut(nk).enumerate() {
                        let visible = positions[tokens[i0 + j]] + 1;
                        softmax_rows(&mut row[..visible], self.scale);
                        row[visible..].fill(0.0);
                    }
                    // vᵀ[dv, nk] for this block, so that o = s·v is a row-major product.
                    let mut vt = vec![0.0f32; dv * nk];
                    for tk in 0..nk {
                        let v = &kv[tk * nh * hr + h * hr + dn..tk * nh * hr + (h + 1) * hr];
                        for (d, x) in v.iter().enumerate() {
                            vt[d * nk + tk] = *x;
                        }
                    }
                    let vm = MatRef::new(FloatData::F32(&vt), dv, nk);
                    kernels::matmul_t(vm, &s, tb, &mut oh[i0 * dv..i1 * dv]);
                }
                oh
            })
            .collect();
        let mut o = vec![0.0f32; t * nh * dv];
        for (h, oh) in per_head.iter().enumerate() {
            for (j, &i) in tokens.iter().enumerate() {
                o[i * nh * dv + h * dv..i * nh * dv + (h + 1) * dv]
                    .copy_from_slice(&oh[j * dv..(j + 1) * dv]);
            }
        }
        o
    }
}

/// `s[rows, n] = x[rows, width]·tableᵀ` over a table held in `pieces` (`(first row, rows, table)`,
/// covering `[0, n)`): one product per piece, written straight into `s` when there is one piece.
fn scores_into(
    pieces: &[(usize, usize, Table<'_>)],
    x: &[f32],
    rows: usize,
    width: usize,
    n: usize,
    s: &mut [f32],
) {
    if let [(_, np, t)] = pieces {
        kernels::matmul_t(MatRef::new(t.data(), *np, width), x, rows, s);
        return;
    }
    for (p0, np, t) in pieces {
        let mut part = vec![0.0f32; rows * np]; // [rows, np]
        kernels::matmul_t(MatRef::new(t.data(), *np, width), x, rows, &mut part);
        for (dst, src) in s.chunks_exact_mut(n).zip(part.chunks_exact(*np)) {
            dst[*p0..p0 + np].copy_from_slice(src);
        }
    }
}

/// `o[rows, width] = p[rows, n]·table` over a table held in `pieces` (as [`scores_into`]): one
/// product per piece, each adding into `o`.
fn values(
    pieces: &[(usize, usize, Table<'_>)],
    p: &[f32],
    rows: usize,
    width: usize,
    n: usize,
) -> Vec<f32> {
    let mut o = vec![0.0f32; rows * width];
    if let [(_, np, t)] = pieces {
        kernels::matmul_n(MatRef::new(t.data(), *np, width), p, rows, &mut o);
        return o;
    }
    for (p0, np, t) in pieces {
        let mut pp = Vec::with_capacity(rows * np); // [rows, np]
        for row in p.chunks_exact(n) {
            pp.extend_from_slice(&row[*p0..p0 + np]);
        }
        // Accumulating piece after piece into `o` sums the rows in the order one table would: a
        // fork computes what a fresh session holding the same tokens does, bit for bit.
        kernels::matmul_n_add(MatRef::new(t.data(), *np, width), &pp, rows, &mut o);
    }
    o
}

/// In-place softmax of `scale·v` (SIMD exponentials).
fn softmax_rows(v: &mut [f32], scale: f32) {
    let mx = scale * v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let inv = 1.0 / kernels::exp_sum(v, scale, mx);
    v.iter_mut().for_each(|x| *x *= inv);
}

#[cfg(test)]
mod tests;
