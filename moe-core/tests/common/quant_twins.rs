//! Writes a project fixture (bf16, `fixtures/<family>`) again in a published compressed format, plus
//! its float twin: the same checkpoint with every compressed tensor replaced by its exactly
//! dequantized f32 values. The twin runs through the float kernels; the packed one must give the same
//! logits.
//!
//! Formats as published: compressed-tensors `pack-quantized` (`weight_packed` i32 with element `j` at
//! bits `bits·(j % (32/bits))` of word `j / (32/bits)`, stored `+2^(bits-1)`; `weight_scale`;
//! `weight_shape`; for asymmetric schemes `weight_zero_point` packed the same way along rows), and
//! gpt-oss MXFP4 (`_blocks` `[E, out, in/32, 16]`, low nibble first; `_scales` e8m0 `[E, out, in/32]`).

#![allow(dead_code)] // each test binary uses part of it

use std::collections::BTreeMap;
use std::path::Path;

use half::{bf16, f16};
use moe_core::internals::{Checkpoint, DType};
use safetensors::tensor::{Dtype, TensorView};

/// A tensor to write: dtype, shape, bytes.
type Entry = (Dtype, Vec<usize>, Vec<u8>);

/// Scale dtype of a compressed-tensors scheme.
#[derive(Clone, Copy, Debug)]
pub enum ScaleType {
    BF16,
    F16,
    F32,
}

/// A compressed-tensors scheme and which module names it quantizes.
#[derive(Clone, Debug)]
pub struct IntScheme {
    pub bits: u32,
    /// `None` = strategy channel.
    pub group: Option<usize>,
    pub symmetric: bool,
    pub scale: ScaleType,
    /// The config's `ignore` list.
    pub ignore: Vec<&'static str>,
    /// Whether a `*_proj.weight` (module name without `.weight`) is quantized; must agree with `ignore`.
    pub quantize: fn(&str) -> bool,
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn round_scale(s: f32, t: ScaleType) -> (f32, Vec<u8>) {
    match t {
        ScaleType::BF16 => {
            let b = bf16::from_f32(s);
            (b.to_f32(), b.to_le_bytes().to_vec())
        }
        ScaleType::F16 => {
            let h = f16::from_f32(s);
            (h.to_f32(), h.to_le_bytes().to_vec())
        }
        ScaleType::F32 => (s, s.to_le_bytes().to_vec()),
    }
}

/// Quantizes `w [rows, cols]`: returns the packed tensors and the dequantized matrix.
fn pack_int(
    w: &[f32],
    rows: usize,
    cols: usize,
    s: &IntScheme,
) -> (Vec<(String, Entry)>, Vec<f32>) {
    let bits = s.bits as usize;
    let pf = 32 / bits;
    let levels = (1u32 << bits) - 1;
    let mid = 1u32 << (bits - 1);
    let group = s.group.unwrap_or(cols);
    let groups = cols.div_ceil(group);
    let words = (cols * bits).div_ceil(32);
    let mut packed = vec![0u32; rows * words];
    let mut zeros = vec![0u32; rows.div_ceil(pf) * groups];
    let mut scale_bytes = vec![];
    let mut deq = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for g in 0..groups {
            let (c0, c1) = (g * group, ((g + 1) * group).min(cols));
            let vals = &w[r * cols + c0..r * cols + c1];
            let (lo, hi) = vals
                .iter()
                .fold((0.0f32, 0.0f32), |(a, b), v| (a.min(*v), b.max(*v)));
            let (raw, zs) = if s.symmetric {
                (lo.abs().max(hi) / (mid - 1) as f32, mid)
            } else {
                let sc = ((hi - lo) / levels as f32).max(1e-8);
                (
                    sc,
                    ((-lo / sc).round() as i64).clamp(0, levels as i64) as u32,
                )
            };
            let (scale, bytes) = round_scale(raw.max(1e-8), s.scale);
            scale_bytes.extend(bytes);
            zeros[(r / pf) * groups + g] |= zs << (bits * (r % pf));
            for (k, v) in vals.iter().enumerate() {
                let j = c0 + k;
                let u = ((v / scale).round() as i64 + zs as i64).clamp(0, levels as i64) as u32;
                packed[r * words + j / pf] |= u << (bits * (j % pf));
                deq[r * cols + j] = (u as i64 - zs as i64) as f32 * scale;
            }
        }
    }
    let sdt = match s.scale {
        ScaleType::BF16 => Dtype::BF16,
        ScaleType::F16 => Dtype::F16,
        ScaleType::F32 => Dtype::F32,
    };
    let mut out = vec![
        (
            "weight_packed".to_string(),
            (Dtype::I32, vec![rows, words], i32s(&packed)),
        ),
        (
            "weight_scale".into(),
            (sdt, vec![rows, groups], scale_bytes),
        ),
        (
            "weight_shape".into(),
            (Dtype::I32, vec![2], i32s(&[rows as u32, cols as u32])),
        ),
    ];
    if !s.symmetric {
        out.push((
            "weight_zero_point".into(),
            (Dtype::I32, vec![rows.div_ceil(pf), groups], i32s(&zeros)),
        ));
    }
    (out, deq)
}

/// e2m1 magnitudes of codes 0..8.
const E2M1: [f32; 8] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];

/// MXFP4 of `w [rows, cols]` (cols a multiple of 32): blocks `[rows, cols/32, 16]`, e8m0 scales
/// `[rows, cols/32]`, and the dequantized matrix.
fn pack_mxfp4(w: &[f32], rows: usize, cols: usize) -> (Vec<u8>, Vec<u8>, Vec<f32>) {
    let nb = cols / 32;
    let (mut blocks, mut scales, mut deq) = (
        vec![0u8; rows * cols / 2],
        vec![0u8; rows * nb],
        vec![0.0; rows * cols],
    );
    for r in 0..rows {
        for b in 0..nb {
            let vals = &w[r * cols + b * 32..r * cols + b * 32 + 32];
            let amax = vals.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
            let e = (amax / 6.0).log2().ceil().clamp(-127.0, 127.0) as i32;
            scales[r * nb + b] = (e + 127) as u8;
            let s = 2f32.powi(e);
            for (k, v) in vals.iter().enumerate() {
                let m = (v / s).abs();
                let code = (0..8)
                    .min_by(|&a, &c| (E2M1[a] - m).abs().total_cmp(&(E2M1[c] - m).abs()))
                    .unwrap();
                let neg = *v < 0.0 && code != 0;
                let nib = code as u8 | if neg { 8 } else { 0 };
                let j = b * 32 + k;
                blocks[(r * cols + j) / 2] |= if j % 2 == 0 { nib } else { nib << 4 };
                deq[r * cols + j] = if neg { -E2M1[code] * s } else { E2M1[code] * s };
            }
        }
    }
    (blocks, scales, deq)
}

/// A source tensor: dtype, shape, bytes, and its values widened to f32 (empty for non-floats).
type Source = (DType, Vec<usize>, Vec<u8>, Vec<f32>);

/// Every tensor of `src`.
fn read_all(src: &Path) -> BTreeMap<String, Source> {
    let ckpt = Checkpoint::open(src).unwrap();
    ckpt.names()
        .map(|n| {
            let t = ckpt.get(n).unwrap();
            let f = t.to_f32_vec().unwrap_or_default();
            (
                n.to_string(),
                (t.dtype(), t.shape().to_vec(), t.bytes().to_vec(), f),
            )
        })
        .collect()
}

fn dtype(d: DType) -> Dtype {
    match d {
        DType::BF16 => Dtype::BF16,
        DType::F16 => Dtype::F16,
        DType::F32 => Dtype::F32,
        d => panic!("unexpected dtype {d}"),
    }
}

fn write_dir(
    src: &Path,
    dir: &Path,
    tensors: &BTreeMap<String, Entry>,
    quant: Option<serde_json::Value>,
) {
    std::fs::create_dir_all(dir).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    if let Some(q) = quant {
        cfg["quantization_config"] = q;
    }
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, (d, s, b))| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, &None, &dir.join("model.safetensors")).unwrap();
}

/// Writes `packed_dir` (compressed-tensors) and `float_dir` (its dequantized twin) from `src`.
/// Returns how many modules were packed.
pub fn write_int_twins(src: &Path, packed_dir: &Path, float_dir: &Path, s: &IntScheme) -> usize {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    let mut n = 0;
    for (name, (dt, shape, bytes, f)) in read_all(src) {
        let module = name.strip_suffix(".weight");
        match module {
            Some(m) if shape.len() == 2 && m.ends_with("_proj") && (s.quantize)(m) => {
                let (packed, deq) = pack_int(&f, shape[0], shape[1], s);
                for (suffix, e) in packed {
                    a.insert(format!("{m}.{suffix}"), e);
                }
                b.insert(name.clone(), (Dtype::F32, shape, f32s(&deq)));
                n += 1;
            }
            _ => {
                a.insert(name.clone(), (dtype(dt), shape.clone(), bytes.clone()));
                b.insert(name, (dtype(dt), shape, bytes));
            }
        }
    }
    let strategy = if s.group.is_some() {
        "group"
    } else {
        "channel"
    };
    let q = serde_json::json!({
        "quant_method": "compressed-tensors", "format": "pack-quantized",
        "quantization_status": "compressed", "kv_cache_scheme": null, "ignore": s.ignore,
        "config_groups": {"group_0": {
            "input_activations": null, "output_activations": null, "targets": ["Linear"],
            "weights": {"actorder": null, "block_structure": null, "dynamic": false,
                "group_size": s.group, "num_bits": s.bits, "observer": "minmax",
                "strategy": strategy, "symmetric": s.symmetric, "type": "int"}}}
    });
    write_dir(src, packed_dir, &a, Some(q));
    write_dir(src, float_dir, &b, None);
    n
}

/// Writes gpt-oss MXFP4 experts (`packed_dir`) and the dequantized twin in the bf16 fused layout
/// (`gate_up_proj [E, H, 2I]`, `down_proj [E, I, H]`, f32). Returns how many expert tensors were packed.
pub fn write_mxfp4_twins(src: &Path, packed_dir: &Path, float_dir: &Path) -> usize {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    let mut n = 0;
    for (name, (dt, shape, bytes, f)) in read_all(src) {
        let fused =
            name.ends_with("mlp.experts.gate_up_proj") || name.ends_with("mlp.experts.down_proj");
        if !fused {
            a.insert(name.clone(), (dtype(dt), shape.clone(), bytes.clone()));
            b.insert(name, (dtype(dt), shape, bytes));
            continue;
        }
        // Stored [E, in, out]; MXFP4 blocks are over the transposed [E, out, in].
        let (e, cin, cout) = (shape[0], shape[1], shape[2]);
        let (mut blocks, mut scales, mut twin) = (vec![], vec![], vec![0.0f32; e * cin * cout]);
        for x in 0..e {
            let wt: Vec<f32> = (0..cout * cin)
                .map(|i| f[x * cin * cout + (i % cin) * cout + i / cin])
                .collect();
            let (bl, sc, deq) = pack_mxfp4(&wt, cout, cin);
            blocks.extend(bl);
            scales.extend(sc);
            for o in 0..cout {
                for k in 0..cin {
                    twin[x * cin * cout + k * cout + o] = deq[o * cin + k];
                }
            }
        }
        a.insert(
            format!("{name}_blocks"),
            (Dtype::U8, vec![e, cout, cin / 32, 16], blocks),
        );
        a.insert(
            format!("{name}_scales"),
            (Dtype::U8, vec![e, cout, cin / 32], scales),
        );
        b.insert(name, (Dtype::F32, shape, f32s(&twin)));
        n += 1;
    }
    let q = serde_json::json!({"quant_method": "mxfp4", "modules_to_not_convert":
        ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]});
    write_dir(src, packed_dir, &a, Some(q));
    write_dir(src, float_dir, &b, None);
    n
}
