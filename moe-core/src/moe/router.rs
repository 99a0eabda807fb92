//! Expert selection: the published routing policies (ARCHITECTURES.md section 3).

use crate::config::RouterKind;
use crate::error::Result;
use crate::kernels::{self, top_k_indices};
use crate::layers::Linear;

/// The experts chosen for one token and their weights.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Routing {
    /// `(expert, weight)` pairs, `top_k` of them.
    pub experts: Vec<(usize, f32)>,
}

/// A router: logits `z = x·W_gateᵀ (+ b)`, then a policy turns them into weights.
#[derive(Debug, Clone)]
pub(crate) struct Router {
    pub gate: Linear,
    pub kind: RouterKind,
    pub top_k: usize,
    /// `e_score_correction_bias` (sigmoid routers): shifts the choice, never the weights.
    pub e_score_correction_bias: Option<Vec<f32>>,
}

impl Router {
    pub(crate) fn new(
        gate: Linear,
        kind: RouterKind,
        top_k: usize,
        bias: Option<Vec<f32>>,
    ) -> Result<Self> {
        Ok(Router {
            gate,
            kind,
            top_k,
            e_score_correction_bias: bias,
        })
    }

    /// Router logits `[T, E]`.
    pub(crate) fn logits(&self, x: &[f32], t: usize) -> Vec<f32> {
        self.gate.forward(x, t)
    }

    /// Chooses experts for one token from its logits `z` `[E]`.
    pub(crate) fn route(&self, z: &[f32]) -> Routing {
        let k = self.top_k;
        let experts = match &self.kind {
            RouterKind::Softmax {
                norm_topk_prob,
                groups,
                scaling,
            } => {
                let mut p = z.to_vec();
                kernels::softmax(&mut p);
                let mut choice = p.clone();
                if let Some((n_group, topk_group)) = groups {
                    // DeepSeek V2 group_limited_greedy: group score = max; other groups' experts zeroed.
                    let size = p.len() / n_group;
                    let scores: Vec<f32> = p
                        .chunks(size)
                        .map(|g| g.iter().copied().fold(f32::NEG_INFINITY, f32::max))
                        .collect();
                    let keep = top_k_indices(&scores, *topk_group);
                    for (g, chunk) in choice.chunks_mut(size).enumerate() {
                        if !keep.contains(&g) {
                            chunk.fill(0.0);
                        }
                    }
                }
                let idx = top_k_indices(&choice, k);
                let mut w: Vec<f32> = idx.iter().map(|&e| choice[e]).collect();
                if *norm_topk_prob {
                    let s: f32 = w.iter().sum();
                    w.iter_mut().for_each(|v| *v /= s);
                }
                w.iter_mut().for_each(|v| *v *= scaling);
                idx.into_iter().zip(w).collect()
            }
            RouterKind::SigmoidBiased {
                n_group,
                topk_group,
                norm_topk_prob,
                scaling,
            } => {
                let s: Vec<f32> = z.iter().map(|v| kernels::sigmoid(*v)).collect();
                // b = s + bias picks the experts; s weights them.
                let mut b: Vec<f32> = match &self.e_score_correction_bias {
                    Some(bias) => s.iter().zip(bias).map(|(x, y)| x + y).collect(),
                    None => s.clone(),
                };
                if *n_group > 1 {
                    let size = b.len() / n_group;
                    let scores: Vec<f32> = b
                        .chunks(size)
                        .map(|g| {
                            let top = top_k_indices(g, 2.min(g.len()));
                            top.iter().map(|&i| g[i]).sum()
                        })
                        .collect();
                    let keep = top_k_indices(&scores, *topk_group);
                    for (g, chunk) in b.chunks_mut(size).enumerate() {
                        if !keep.contains(&g) {
                            chunk.fill(f32::NEG_INFINITY);
                        }
                    }
                }
                let idx = top_k_indices(&b, k);
                let mut w: Vec<f32> = idx.iter().map(|&e| s[e]).collect();
                if *norm_topk_prob {
                    let sum: f32 = w.iter().sum::<f32>() + 1e-20;
                    w.iter_mut().for_each(|v| *v /= sum);
                }
                w.iter_mut().for_each(|v| *v *= scaling);
                idx.into_iter().zip(w).collect()
            }
            RouterKind::Llama4 => {
                // The weight is sigmoid(logit); the block scales the expert's input by it.
                let idx = top_k_indices(z, k);
                idx.into_iter()
                    .map(|e| (e, kernels::sigmoid(z[e])))
                    .collect()
            }
            RouterKind::TopKSoftmax => {
                let idx = top_k_indices(z, k);
                let mut w: Vec<f32> = idx.iter().map(|&e| z[e]).collect();
                kernels::softmax(&mut w);
                idx.into_iter().zip(w).collect()
            }
            RouterKind::SqrtSoftplus { .. } => {
                let s = sqrt_softplus(z);
                let b: Vec<f32> = match &self.e_score_correction_bias {
                    Some(bias) => s.iter().zip(bias).map(|(x, y)| x + y).collect(),
                    None => s.clone(),
                };
                return self.weigh(&s, top_k_indices(&b, k));
            }
        };
        Routing { experts }
    }

    /// DeepSeek V4's hash routing: the experts `chosen` (from `tid2eid`), weighted by their
    /// sqrt-softplus scores of the logits `z`, renormalised and scaled.
    pub(crate) fn route_hashed(&self, z: &[f32], chosen: &[u32]) -> Routing {
        let s = sqrt_softplus(z);
        self.weigh(&s, chosen.iter().map(|&e| e as usize).collect())
    }

    /// `(e, scaling · s_e / Σ s)` for the chosen experts (DeepSeek V4).
    fn weigh(&self, s: &[f32], idx: Vec<usize>) -> Routing {
        let scaling = match self.kind {
            RouterKind::SqrtSoftplus { scaling } => scaling,
            _ => 1.0,
        };
        let sum: f32 = idx.iter().map(|&e| s[e]).sum::<f32>() + 1e-20;
        Routing {
            experts: idx.into_iter().map(|e| (e, s[e] / sum * scaling)).collect(),
        }
    }

    /// Whether the routing weight scales the expert's input (Llama 4) instead of its output.
    pub(crate) fn scales_input(&self) -> bool {
        matches!(self.kind, RouterKind::Llama4)
    }
}

/// `sqrt(softplus(z))` elementwise (softplus linear above 20, as in PyTorch).
fn sqrt_softplus(z: &[f32]) -> Vec<f32> {
    z.iter()
        .map(|&v| {
            let sp = if v > 20.0 { v } else { v.exp().ln_1p() };
            sp.sqrt()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Linear, Orientation};
    use crate::weights::Tensor;

    fn router(kind: RouterKind, k: usize, bias: Option<Vec<f32>>) -> Router {
        let gate = Linear::from_tensor(
            Tensor::from_f32("g", vec![1, 1], &[1.0]),
            Orientation::OutIn,
            None,
        );
        Router::new(gate, kind, k, bias).unwrap()
    }

    #[test]
    fn correction_bias_changes_choice_not_weights() {
        let kind = RouterKind::SigmoidBiased {
            n_group: 1,
            topk_group: 1,
            norm_topk_prob: false,
            scaling: 2.0,
        };
        let z = [2.0, 1.0, 0.0, -1.0];
        let r = router(kind, 1, Some(vec![0.0, 0.0, 0.0, 5.0])).route(&z);
        assert_eq!(r.experts.len(), 1);
        assert_eq!(r.experts[0].0, 3);
        assert!((r.experts[0].1 - 2.0 * kernels::sigmoid(-1.0)).abs() < 1e-6);
    }

    #[test]
    fn group_limit_excludes_weak_groups() {
        let kind = RouterKind::SigmoidBiased {
            n_group: 2,
            topk_group: 1,
            norm_topk_prob: true,
            scaling: 1.0,
        };
        // group 0 = experts 0,1 (top-2 sum high); group 1 = experts 2,3 holds the single best expert.
        let z = [1.0, 1.0, 3.0, -5.0];
        let r = router(kind, 2, None).route(&z);
        let mut ids: Vec<usize> = r.experts.iter().map(|e| e.0).collect();
        ids.sort();
        assert_eq!(ids, vec![0, 1]);
        assert!((r.experts.iter().map(|e| e.1).sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn topk_softmax_normalises_over_selected_only() {
        let r = router(RouterKind::TopKSoftmax, 2, None).route(&[0.0, 1.0, 1.0, -3.0]);
        assert_eq!(
            r.experts.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!((r.experts[0].1 - 0.5).abs() < 1e-6);
    }
}
