//! One forward over the new rows of several sequences (batched decode, continuous batching).
//!
//! The rows of every sequence are stacked into one `x[R, H]`. Row-wise work (norms, the attention
//! projections, dense MLPs, shared experts, the final norm and lm_head) runs as one `[R, ·]` product;
//! the MoE layer groups the `R` rows per routed expert, so each chosen expert's weights are read once
//! per step; attention runs per sequence over its own cache. Every sequence's rows see exactly the
//! operations a forward of that sequence alone would run, so the logits are its own.
//!
//! Models whose layers the stacked form does not express (DeepSeek V4's hyper-connection streams,
//! Qwen3.5's DeltaNet and V4's compressed attention) run each sequence's forward in turn: the same
//! logits, without the shared weight reads.

use std::ops::Range;

use rayon::prelude::*;

use super::{Block, FeedForward, LogitsMode, Model};
use crate::attention::{Attention, SparseMode};
use crate::cache::{KvCache, LayerCache, ModelCache};
use crate::error::{Error, Result};
use crate::kernels;

/// One sequence's part of a batched forward.
pub(crate) struct SeqStep<'a> {
    /// The new tokens (at least one).
    pub ids: &'a [u32],
    /// The sequence's caches, holding every earlier position.
    pub cache: &'a mut ModelCache,
    /// How its DSA layers attend.
    pub mode: SparseMode,
}

/// What a batched forward returns.
pub(crate) struct BatchOut {
    /// `[n, V]`: the logits rows asked for, sequence after sequence.
    pub logits: Vec<f32>,
    /// Bytes of routed-expert weights read: per MoE layer, every expert chosen by any row, once.
    pub expert_bytes: usize,
}

/// The state one sequence carries through the layers of a batched forward.
struct SeqState<'a> {
    /// Its rows in the stacked `x[R, H]`.
    rows: Range<usize>,
    cache: &'a mut ModelCache,
    mode: SparseMode,
    /// The last DSA selection (carried to shared indexer layers).
    selection: Option<crate::attention::Selection>,
}

impl Model {
    /// Runs every sequence's `ids` after what its cache holds, as one batch. `logits` applies to
    /// every sequence (`Last`: its last new row). Fails, changing nothing, on an empty or
    /// out-of-vocabulary chunk or a cache of another model.
    pub(crate) fn forward_batch(
        &self,
        seqs: &mut [SeqStep<'_>],
        logits: LogitsMode,
    ) -> Result<BatchOut> {
        let v = self.config.vocab_size;
        let h = self.config.hidden_size;
        for s in seqs.iter() {
            if s.ids.is_empty() {
                return Err(Error::EmptyPrompt);
            }
            if let Some(&bad) = s.ids.iter().find(|&&t| t as usize >= v) {
                return Err(Error::TokenOutOfRange {
                    token: bad,
                    vocab_size: v,
                });
            }
            if s.cache.model_id != self.id || s.cache.layers.len() != self.layers.len() {
                return Err(Error::InvalidArgument(
                    "the cache was built for another model".into(),
                ));
            }
        }
        if !self.stacks_in_batches() {
            return self.forward_each(seqs, logits);
        }
        let mut ids = Vec::new(); // [R]
        let mut positions = Vec::new(); // [R]
        let mut states = Vec::with_capacity(seqs.len());
        for s in seqs.iter_mut() {
            let start = s.cache.len();
            let r0 = ids.len();
            ids.extend_from_slice(s.ids);
            positions.extend(start..start + s.ids.len());
            states.push(SeqState {
                rows: r0..ids.len(),
                cache: &mut *s.cache,
                mode: s.mode,
                selection: None,
            });
        }
        let mut x = self.embed_tokens.forward(&ids); // [R, H]
        let mut expert_bytes = 0;
        for (i, block) in self.layers.iter().enumerate() {
            expert_bytes +=
                self.run(|| block.forward_batch(i, &mut x, &positions, &ids, &mut states));
        }
        // The rows whose logits are wanted, gathered: [n, H].
        let mut picked = Vec::new();
        for st in &states {
            let want = match logits {
                LogitsMode::Last => st.rows.end - 1..st.rows.end,
                LogitsMode::All => st.rows.clone(),
                LogitsMode::None => st.rows.end..st.rows.end,
            };
            picked.extend_from_slice(&x[want.start * h..want.end * h]);
        }
        let n = picked.len() / h;
        if n == 0 {
            return Ok(BatchOut {
                logits: Vec::new(),
                expert_bytes,
            });
        }
        self.norm.forward(&mut picked);
        let logits = self.run(|| self.lm_head.forward(&picked, n)); // [n, V]
        Ok(BatchOut {
            logits,
            expert_bytes,
        })
    }
}

impl Model {
    /// Whether every layer runs in the stacked `[R, H]` form (GQA or MLA attention, one residual
    /// stream).
    fn stacks_in_batches(&self) -> bool {
        self.hc_head.is_none()
            && self
                .layers
                .iter()
                .all(|b| matches!(b.self_attn, Attention::Gqa(_) | Attention::Mla(_)))
    }

    /// The batch as one forward per sequence (checked by the caller; a failure leaves the caches of
    /// the sequences before it advanced, so the caller's all-or-nothing check comes first).
    fn forward_each(&self, seqs: &mut [SeqStep<'_>], logits: LogitsMode) -> Result<BatchOut> {
        let mut out = Vec::new();
        for s in seqs.iter_mut() {
            let start = s.cache.len();
            out.extend(self.forward(s.ids, start, s.cache, logits, s.mode, None)?);
        }
        let expert_bytes = self.weight_bytes_per_token().saturating_mul(seqs.len());
        Ok(BatchOut {
            logits: out,
            expert_bytes,
        })
    }
}

impl Block {
    /// Layer `layer` on the stacked residual stream `x[R, H]` in place (`positions[R]`, each
    /// sequence's rows in `states`); returns the routed-expert bytes its MoE read.
    fn forward_batch(
        &self,
        layer: usize,
        x: &mut [f32],
        positions: &[usize],
        ids: &[u32],
        states: &mut [SeqState<'_>],
    ) -> usize {
        let r = positions.len();
        let h = x.len() / r.max(1);
        let mut hn = x.to_vec(); // [R, H]
        self.input_layernorm.forward(&mut hn);
        let a = match &self.self_attn {
            Attention::Gqa(g) => {
                let (q, k, v, gate) = g.project(&hn, positions);
                let (wq, wk) = (q.len() / r, k.len() / r);
                let outs: Vec<Vec<f32>> = states
                    .par_iter_mut()
                    .map(|st| {
                        let rs = st.rows.clone();
                        let LayerCache::Gqa(c) = &mut st.cache.layers[layer] else {
                            unreachable!("caches are built from the blocks by Model::new_cache")
                        };
                        g.attend(
                            &q[rs.start * wq..rs.end * wq],
                            &k[rs.start * wk..rs.end * wk],
                            &v[rs.start * wk..rs.end * wk],
                            &positions[rs],
                            c,
                        )
                    })
                    .collect();
                g.output(outs.concat(), gate.as_deref(), r)
            }
            Attention::Mla(m) => {
                let lens: Vec<usize> = states.iter().map(|s| s.rows.len()).collect();
                let parts = m.project(&hn, positions).split(&lens);
                let outs: Vec<Vec<f32>> = states
                    .par_iter_mut()
                    .zip(parts)
                    .map(|(st, part)| {
                        let rs = st.rows.clone();
                        let LayerCache::Mla { mla, indexer } = &mut st.cache.layers[layer] else {
                            unreachable!("caches are built from the blocks by Model::new_cache")
                        };
                        m.attend(
                            &hn[rs.start * h..rs.end * h],
                            part,
                            &positions[rs],
                            mla,
                            indexer.as_mut(),
                            &mut st.selection,
                            st.mode,
                        )
                    })
                    .collect();
                m.o_proj.forward(&outs.concat(), r)
            }
            Attention::DeltaNet(_) | Attention::Compressed(_) => {
                unreachable!("Model::stacks_in_batches sends these models through forward_each")
            }
        };
        kernels::add_assign(x, &a);
        let mut hn = x.to_vec();
        self.post_attention_layernorm.forward(&mut hn);
        let (f, read) = match &self.ffn {
            FeedForward::Dense(m) => (m.forward(&hn, r), 0),
            FeedForward::Moe(m) => m.forward_counted(&hn, r, ids),
        };
        kernels::add_assign(x, &f);
        read
    }
}
