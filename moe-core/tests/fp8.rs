//! FP8 e4m3 checkpoints with block scales (`weight_scale_inv`): the engine must compute exactly what the
//! dequantised weights give.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{max_abs_diff, own_fixtures, Reference};
use moe_core::internals::decode_e4m3;
use moe_core::internals::{Checkpoint, DType};
use moe_core::{LogitsMode, Session, SessionParams};
use safetensors::tensor::{Dtype, TensorView};

const BLOCK: (usize, usize) = (8, 16);

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn is_quantized(name: &str, shape: &[usize]) -> bool {
    shape.len() == 2
        && name.ends_with("_proj.weight")
        && !name.contains("embed_tokens")
        && !name.starts_with("lm_head")
}

/// A tensor to write: name, dtype, shape, bytes.
type Entry = (String, Dtype, Vec<usize>, Vec<u8>);

/// Writes `fp8_dir` (F8_E4M3 + F32 scales) and `f32_dir` (the same weights dequantised to F32).
fn write_twins(src: &Path, fp8_dir: &Path, f32_dir: &Path) {
    let ckpt = Checkpoint::open(src).unwrap();
    let mut names: Vec<&str> = ckpt.names().collect();
    names.sort();
    let mut rng = Rng(99);
    let (mut a, mut b): (Vec<Entry>, Vec<Entry>) = (vec![], vec![]);
    for name in names {
        let t = ckpt.get(name).unwrap();
        let shape = t.shape().to_vec();
        if !is_quantized(name, &shape) {
            let dt = match t.dtype() {
                DType::BF16 => Dtype::BF16,
                DType::F32 => Dtype::F32,
                d => panic!("{d}"),
            };
            a.push((name.into(), dt, shape.clone(), t.bytes().to_vec()));
            b.push((name.into(), dt, shape, t.bytes().to_vec()));
            continue;
        }
        let (rows, cols) = (shape[0], shape[1]);
        let grid = [rows.div_ceil(BLOCK.0), cols.div_ceil(BLOCK.1)];
        let scales: Vec<f32> = (0..grid[0] * grid[1])
            .map(|_| 0.02 + (rng.next() % 1000) as f32 * 4e-5)
            .collect();
        let q: Vec<u8> = (0..rows * cols)
            .map(|_| {
                let r = rng.next();
                let sign = ((r & 1) as u8) << 7;
                let e = 4 + ((r >> 1) % 5) as u8; // exponents 4..8: |v| in [1/8, 3.75]
                let m = ((r >> 4) % 8) as u8;
                sign | (e << 3) | m
            })
            .collect();
        let deq: Vec<f32> = q
            .iter()
            .enumerate()
            .map(|(i, &byte)| {
                decode_e4m3(byte) * scales[(i / cols / BLOCK.0) * grid[1] + (i % cols) / BLOCK.1]
            })
            .collect();
        a.push((name.into(), Dtype::F8_E4M3, shape.clone(), q));
        let scale_name = format!("{name}_scale_inv");
        a.push((
            scale_name,
            Dtype::F32,
            grid.to_vec(),
            scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
        ));
        b.push((
            name.into(),
            Dtype::F32,
            shape,
            deq.iter().flat_map(|s| s.to_le_bytes()).collect(),
        ));
    }
    for (dir, tensors, quant) in [(fp8_dir, &a, true), (f32_dir, &b, false)] {
        std::fs::create_dir_all(dir).unwrap();
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap())
                .unwrap();
        if quant {
            cfg["quantization_config"] = serde_json::json!({
                "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                "weight_block_size": [BLOCK.0, BLOCK.1]
            });
        }
        std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .map(|(n, d, s, bytes)| (n.clone(), TensorView::new(*d, s.clone(), bytes).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, &None, &dir.join("model.safetensors")).unwrap();
    }
}

fn logits(dir: &Path, ids: &[u32], decode: &[u32]) -> Vec<f32> {
    let model = Arc::new(common::load_exact(dir).unwrap());
    let mut s = Session::new(model, &SessionParams::default()).unwrap();
    let mut out = s.prefill(ids, LogitsMode::All).unwrap();
    for &d in decode {
        out.extend(s.decode(d).unwrap());
    }
    out
}

#[test]
fn fp8_block_scaled_weights_compute_what_their_dequantised_twin_computes() {
    for family in ["deepseek_v3", "deepseek_v32", "qwen3_moe"] {
        let src = own_fixtures().join(family);
        let tmp = tempfile::tempdir().unwrap();
        let (fp8, f32d) = (tmp.path().join("fp8"), tmp.path().join("f32"));
        write_twins(&src, &fp8, &f32d);
        let r = Reference::load(&src.join("reference.safetensors"));
        let ids = &r.ids["input_ids"];
        let decode = &r.ids["decode_ids"][..3];
        let (a, b) = (logits(&fp8, ids, decode), logits(&f32d, ids, decode));
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = max_abs_diff(&a, &b);
        assert!(
            d <= 1e-4 * scale.max(1.0),
            "{family}: fp8 vs dequantised twin differ by {d} (logit scale {scale})"
        );
        // And the FP8 weights really stayed FP8 in memory: a decoded token streams one byte per
        // quantised weight where the twin streams four.
        let (m8, m32) = (
            common::load_exact(&fp8).unwrap(),
            common::load_exact(&f32d).unwrap(),
        );
        let (b8, b32) = (m8.weight_bytes_per_token(), m32.weight_bytes_per_token());
        assert!(
            b8 < b32,
            "{family}: fp8 streams {b8} bytes per token, its f32 twin {b32}"
        );
    }
}

#[test]
fn fp8_with_a_wrong_scale_grid_is_a_shape_error() {
    let src = own_fixtures().join("qwen3_moe");
    let tmp = tempfile::tempdir().unwrap();
    let (fp8, f32d) = (tmp.path().join("fp8"), tmp.path().join("f32"));
    write_twins(&src, &fp8, &f32d);
    let p = fp8.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    cfg["quantization_config"]["weight_block_size"] = serde_json::json!([4, 4]);
    std::fs::write(&p, cfg.to_string()).unwrap();
    let e = common::load_exact(&fp8).unwrap_err();
    assert!(
        matches!(&e, moe_core::Error::Shape { name, .. } if name.ends_with("weight_scale_inv")),
        "{e}"
    );
}
