//! The MoE feed-forward block: router → tokens grouped by expert → expert MLPs → weighted sum
//! (+ shared expert, optionally gated).

use rayon::prelude::*;

use super::{Expert, Router};
use crate::config::ExpertActivation;
use crate::kernels;
use crate::layers::{Linear, Mlp};

/// A shared expert, applied to every token; Qwen2-MoE gates it by `sigmoid(x·w_gate)`.
#[derive(Debug, Clone)]
pub(crate) struct SharedExpert {
    pub mlp: Mlp,
    pub gate: Option<Linear>,
}

#[derive(Debug, Clone)]
pub(crate) struct MoeBlock {
    pub router: Router,
    pub experts: Vec<Expert>,
    pub shared: Option<SharedExpert>,
    pub activation: ExpertActivation,
    pub hidden: usize,
    /// DeepSeek V4's hash routing: `tid2eid [V, top_k]`, the experts of each token id.
    pub tid2eid: Option<Vec<u32>>,
}

impl MoeBlock {
    /// Bytes one token streams: router, shared expert, and `top_k` routed experts.
    pub(crate) fn weight_bytes_per_token(&self) -> usize {
        let shared = self.shared.as_ref().map_or(0, |s| {
            s.mlp.weight_bytes() + s.gate.as_ref().map_or(0, |g| g.weight_bytes())
        });
        self.router.gate.weight_bytes()
            + shared
            + self.router.top_k * self.experts.first().map_or(0, |e| e.weight_bytes())
    }

    /// `y[T, H]` for `x[T, H]` of the tokens `ids` (used by hash routing only).
    pub(crate) fn forward(&self, x: &[f32], t: usize, ids: &[u32]) -> Vec<f32> {
        self.forward_counted(x, t, ids).0
    }

    /// `y[T, H]` for `x[T, H]` of the tokens `ids`, and the bytes of the routed experts it read:
    /// each expert chosen by any of the `T` rows is read once (the union of the rows' choices).
    pub(crate) fn forward_counted(&self, x: &[f32], t: usize, ids: &[u32]) -> (Vec<f32>, usize) {
        let h = self.hidden;
        let logits = self.router.logits(x, t); // [T, E]
        let e_count = self.experts.len();
        let k = self.router.top_k;
        // For each expert, the tokens routed to it and their weights.
        let mut assigned: Vec<Vec<(usize, f32)>> = vec![Vec::new(); e_count];
        for (i, z) in logits.chunks_exact(e_count).enumerate() {
            let routing = match (&self.tid2eid, ids.get(i)) {
                (Some(table), Some(&id)) => {
                    let id = id as usize;
                    self.router.route_hashed(z, &table[id * k..(id + 1) * k])
                }
                _ => self.router.route(z),
            };
            for (e, w) in routing.experts {
                assigned[e].push((i, w));
            }
        }
        let mut y = vec![0.0; t * h];
        let scale_input = self.router.scales_input();
        // The active experts run in parallel (in decode: the top-k experts of the one token), each
        // product further split by rows when workers are free; outputs are summed in expert order.
        let active: Vec<usize> = (0..e_count).filter(|&e| !assigned[e].is_empty()).collect();
        let outs: Vec<Vec<f32>> = active
            .par_iter()
            .map(|&e| {
                let toks = &assigned[e];
                // xs[n_e, H]: the expert's tokens (Llama 4 scales the input by the router weight).
                let mut xs = Vec::with_capacity(toks.len() * h);
                for &(i, w) in toks {
                    let row = &x[i * h..(i + 1) * h];
                    if scale_input {
                        xs.extend(row.iter().map(|v| v * w));
                    } else {
                        xs.extend_from_slice(row);
                    }
                }
                self.experts[e].forward(&xs, toks.len(), self.activation) // [n_e, H]
            })
            .collect();
        for (&e, out) in active.iter().zip(&outs) {
            for (k, &(i, w)) in assigned[e].iter().enumerate() {
                let scale = if scale_input { 1.0 } else { w };
                for (o, v) in y[i * h..(i + 1) * h]
                    .iter_mut()
                    .zip(&out[k * h..(k + 1) * h])
                {
                    *o += scale * v;
                }
            }
        }
        if let Some(shared) = &self.shared {
            let s = shared.mlp.forward_act(x, t, self.activation); // [T, H]
            match &shared.gate {
                None => kernels::add_assign(&mut y, &s),
                Some(g) => {
                    let gate = g.forward(x, t); // [T, 1]
                    for i in 0..t {
                        let gi = kernels::sigmoid(gate[i]);
                        for (o, v) in y[i * h..(i + 1) * h].iter_mut().zip(&s[i * h..(i + 1) * h]) {
                            *o += gi * v;
                        }
                    }
                }
            }
        }
        let read = active.iter().map(|&e| self.experts[e].weight_bytes()).sum();
        (y, read)
    }
}
