//! Checkpoint layouts beyond the fixtures' own: a multimodal Llama 4 wrapper (`text_config`,
//! `language_model.` prefix), and fused expert tensors written with transformers-5 names.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::{max_abs_diff, own_fixtures, Reference};
use moe_core::{LogitsMode, Session, SessionParams};

/// Rewrites the header of every safetensors file in `dir`, renaming tensors through `f`.
fn rename_tensors(dir: &Path, f: impl Fn(&str) -> String) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("safetensors")
            || p.ends_with("reference.safetensors")
        {
            continue;
        }
        let bytes = fs::read(&p).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let renamed: serde_json::Map<_, _> = header
            .into_iter()
            .map(|(k, v)| {
                if k == "__metadata__" {
                    (k, v)
                } else {
                    (f(&k), v)
                }
            })
            .collect();
        let mut h = serde_json::to_vec(&renamed).unwrap();
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&h);
        out.extend_from_slice(&bytes[8 + n..]);
        fs::write(&p, out).unwrap();
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let mut v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&index).unwrap()).unwrap();
        let map = v["weight_map"].as_object().unwrap().clone();
        v["weight_map"] = map.into_iter().map(|(k, s)| (f(&k), s)).collect();
        fs::write(&index, v.to_string()).unwrap();
    }
}

fn copy(family: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for e in fs::read_dir(own_fixtures().join(family)).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    tmp
}

fn prefill_matches(dir: &Path, reference: &Path) {
    let r = Reference::load(reference);
    let model = Arc::new(common::load_exact(dir).unwrap());
    let mut s = Session::new(model, &SessionParams::default()).unwrap();
    let got = s.prefill(&r.ids["input_ids"], LogitsMode::All).unwrap();
    let d = max_abs_diff(&got, &r.f32("prefill_logits").1);
    assert!(d < 1e-3, "{d}");
}

#[test]
fn llama4_multimodal_wrapper_reads_text_config_and_language_model_prefix() {
    let tmp = copy("llama4_text");
    let cfg_path = tmp.path().join("config.json");
    let text: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let wrapped = serde_json::json!({
        "architectures": ["Llama4ForConditionalGeneration"],
        "model_type": "llama4",
        "text_config": text,
        "vision_config": {"hidden_size": 8},
    });
    fs::write(&cfg_path, wrapped.to_string()).unwrap();
    rename_tensors(tmp.path(), |k| format!("language_model.{k}"));
    let model = common::load_exact(tmp.path()).unwrap();
    assert_eq!(
        model.config().architecture,
        "Llama4ForConditionalGeneration"
    );
    prefill_matches(
        tmp.path(),
        &own_fixtures().join("llama4_text/reference.safetensors"),
    );
}

#[test]
fn moved_router_without_fused_experts_names_the_missing_tensor() {
    // `mlp.gate` with per-expert `block_sparse_moe.experts.*` is neither the published nor the
    // transformers-5 layout: loading must fail and name the tensor it looked for.
    let tmp = copy("mixtral");
    rename_tensors(tmp.path(), |k| {
        k.replace("block_sparse_moe.gate.", "mlp.gate.")
    });
    let err = common::load_exact(tmp.path()).unwrap_err();
    assert!(
        err.to_string().contains("block_sparse_moe.gate.weight"),
        "{err}"
    );
}

/// Rewrites a single-file checkpoint with each MoE layer's per-expert tensors fused into
/// `mlp.experts.gate_up_proj [E, 2I, H]` and `mlp.experts.down_proj [E, H, I]` (transformers-5 names).
fn fuse_experts(dir: &Path, n_experts: usize) {
    use moe_core::internals::read_safetensors_file;
    use safetensors::tensor::{Dtype, TensorView};
    let path = dir.join("model.safetensors");
    let tensors = read_safetensors_file(&path).unwrap();
    let get = |name: &str| tensors.iter().find(|t| t.name() == name).unwrap();
    let mut out: Vec<(String, Vec<usize>, Vec<u8>)> = vec![];
    let mut layers = std::collections::BTreeSet::new();
    for t in &tensors {
        if let Some(rest) = t.name().strip_prefix("model.layers.") {
            if let Some((layer, _)) = rest.split_once(".mlp.experts.") {
                layers.insert(layer.to_string());
                continue;
            }
        }
        out.push((t.name().to_string(), t.shape().to_vec(), t.bytes().to_vec()));
    }
    for l in layers {
        let p = format!("model.layers.{l}.mlp.experts");
        let (mut gu, mut down) = (vec![], vec![]);
        let (i, h) = (
            get(&format!("{p}.0.gate_proj.weight")).shape()[0],
            get(&format!("{p}.0.gate_proj.weight")).shape()[1],
        );
        for e in 0..n_experts {
            gu.extend_from_slice(get(&format!("{p}.{e}.gate_proj.weight")).bytes());
            gu.extend_from_slice(get(&format!("{p}.{e}.up_proj.weight")).bytes());
            down.extend_from_slice(get(&format!("{p}.{e}.down_proj.weight")).bytes());
        }
        out.push((format!("{p}.gate_up_proj"), vec![n_experts, 2 * i, h], gu));
        out.push((format!("{p}.down_proj"), vec![n_experts, h, i], down));
    }
    let views: Vec<(String, TensorView)> = out
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::BF16, s.clone(), b).unwrap(),
            )
        })
        .collect();
    drop(tensors);
    safetensors::serialize_to_file(views, &None, &path).unwrap();
}

#[test]
fn fused_expert_tensors_with_transformers5_names_load_and_match() {
    let tmp = copy("qwen3_moe");
    let cfg: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(tmp.path().join("config.json")).unwrap()).unwrap();
    let e = cfg["num_experts"].as_u64().unwrap() as usize;
    fuse_experts(tmp.path(), e);
    prefill_matches(
        tmp.path(),
        &own_fixtures().join("qwen3_moe/reference.safetensors"),
    );
}
