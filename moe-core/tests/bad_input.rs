//! Bad input answers a typed error naming what is wrong, never a panic.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use moe_core::{Error, LogitsMode, Model, Session, SessionParams};

/// A writable copy of a fixture.
fn copy_fixture(family: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let src = common::own_fixtures().join(family);
    for e in fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    let p = tmp.path().to_path_buf();
    (tmp, p)
}

fn load_err(dir: &Path) -> Error {
    Model::load(dir).expect_err("loading should fail")
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
    f(v.as_object_mut().unwrap());
    fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
}

/// Rewrites the safetensors header of `file` (keeping the data section) through `f`.
fn edit_header(file: &Path, f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let bytes = fs::read(file).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    f(header.as_object_mut().unwrap());
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    fs::write(file, out).unwrap();
}

#[test]
fn missing_directory_and_files() {
    assert!(matches!(
        load_err(Path::new("/nonexistent/model")),
        Error::NotFound(_)
    ));
    let (_t, dir) = copy_fixture("mixtral");
    fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert!(matches!(load_err(&dir), Error::NotFound(p) if p.ends_with("model.safetensors")));
    let (_t, dir) = copy_fixture("mixtral");
    fs::remove_file(dir.join("config.json")).unwrap();
    assert!(matches!(load_err(&dir), Error::NotFound(p) if p.ends_with("config.json")));
}

#[test]
fn truncated_and_corrupt_safetensors() {
    let (_t, dir) = copy_fixture("mixtral");
    let f = dir.join("model.safetensors");
    let bytes = fs::read(&f).unwrap();

    fs::write(&f, &bytes[..bytes.len() - 100]).unwrap();
    assert!(
        matches!(load_err(&dir), Error::Format { .. }),
        "truncated data"
    );

    fs::write(&f, &bytes[..4]).unwrap();
    assert!(
        matches!(load_err(&dir), Error::Format { .. }),
        "shorter than the header length"
    );

    let mut b = bytes.clone();
    b[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    fs::write(&f, &b).unwrap();
    assert!(
        matches!(load_err(&dir), Error::Format { .. }),
        "huge header length"
    );

    let mut b = bytes.clone();
    b[8] = b'#';
    fs::write(&f, &b).unwrap();
    let e = load_err(&dir);
    assert!(
        matches!(&e, Error::Format { message, .. } if message.contains("JSON")),
        "{e}"
    );
}

#[test]
fn offsets_outside_the_file_or_overlapping() {
    let (_t, dir) = copy_fixture("mixtral");
    let f = dir.join("model.safetensors");
    edit_header(&f, |h| {
        let t = h.get_mut("lm_head.weight").unwrap();
        let end = t["data_offsets"][1].as_u64().unwrap();
        t["data_offsets"] = serde_json::json!([end, end + 10_000_000]);
    });
    assert!(matches!(load_err(&dir), Error::Format { .. }));

    let (_t, dir) = copy_fixture("mixtral");
    let f = dir.join("model.safetensors");
    edit_header(&f, |h| {
        let first = h["model.norm.weight"]["data_offsets"].clone();
        h.get_mut("model.layers.0.input_layernorm.weight").unwrap()["data_offsets"] = first;
    });
    let e = load_err(&dir);
    assert!(
        matches!(&e, Error::Format { message, .. } if message.contains("overlapping")),
        "{e}"
    );
}

#[test]
fn missing_tensor_wrong_shape_wrong_dtype() {
    let (_t, dir) = copy_fixture("mixtral");
    edit_header(&dir.join("model.safetensors"), |h| {
        let v = h.remove("model.norm.weight").unwrap();
        h.insert("model.norm.weight_renamed".into(), v);
    });
    assert!(matches!(load_err(&dir), Error::MissingTensor(n) if n == "model.norm.weight"));

    let (_t, dir) = copy_fixture("mixtral");
    edit_header(&dir.join("model.safetensors"), |h| {
        let v = h
            .remove("model.layers.1.block_sparse_moe.experts.0.w1.weight")
            .unwrap();
        h.insert(
            "model.layers.1.block_sparse_moe.experts.0.w1.unused".into(),
            v,
        );
    });
    let e = load_err(&dir);
    assert!(
        matches!(&e, Error::MissingTensor(n) if n.contains("model.layers.1.block_sparse_moe.experts.0.w1.weight")),
        "{e}"
    );

    let (_t, dir) = copy_fixture("mixtral");
    edit_header(&dir.join("model.safetensors"), |h| {
        let t = h.get_mut("model.norm.weight").unwrap();
        let n = t["shape"][0].as_u64().unwrap();
        t["shape"] = serde_json::json!([n / 2, 2]);
    });
    let e = load_err(&dir);
    assert!(
        matches!(&e, Error::Shape { name, expected, found } if name == "model.norm.weight" && expected.len() == 1 && found.len() == 2),
        "{e}"
    );

    let (_t, dir) = copy_fixture("mixtral");
    edit_header(&dir.join("model.safetensors"), |h| {
        let t = h.get_mut("model.norm.weight").unwrap();
        let n = t["shape"][0].as_u64().unwrap();
        t["dtype"] = serde_json::json!("I16");
        t["shape"] = serde_json::json!([n]);
    });
    let e = load_err(&dir);
    assert!(
        matches!(&e, Error::Dtype { name, found, .. } if name == "model.norm.weight" && found == "I16"),
        "{e}"
    );
}

#[test]
fn sharded_index_naming_a_missing_tensor_or_bad_shard() {
    let (_t, dir) = copy_fixture("deepseek_v3");
    let p = dir.join("model.safetensors.index.json");
    let mut v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
    v["weight_map"]["model.extra.weight"] = serde_json::json!("model-00001-of-00003.safetensors");
    fs::write(&p, v.to_string()).unwrap();
    assert!(matches!(load_err(&dir), Error::Format { .. }));
    v["weight_map"]
        .as_object_mut()
        .unwrap()
        .remove("model.extra.weight");
    v["weight_map"]["model.norm.weight"] = serde_json::json!("../escape.safetensors");
    fs::write(&p, v.to_string()).unwrap();
    assert!(matches!(load_err(&dir), Error::Format { .. }));
}

#[test]
fn unknown_architecture_and_bad_configs() {
    let (_t, dir) = copy_fixture("mixtral");
    edit_config(&dir, |c| {
        c.insert("model_type".into(), "falcon_mamba".into());
        c.insert(
            "architectures".into(),
            serde_json::json!(["FalconMambaForCausalLM"]),
        );
    });
    assert!(matches!(load_err(&dir), Error::UnsupportedArchitecture(a) if a == "falcon_mamba"));

    let (_t, dir) = copy_fixture("mixtral");
    fs::write(dir.join("config.json"), "{ not json").unwrap();
    assert!(matches!(load_err(&dir), Error::Config { .. }));

    let (_t, dir) = copy_fixture("mixtral");
    edit_config(&dir, |c| {
        c.insert("hidden_size".into(), "sixty-four".into());
    });
    let e = load_err(&dir);
    assert!(
        matches!(&e, Error::Config { message, .. } if message.contains("hidden_size")),
        "{e}"
    );

    let (_t, dir) = copy_fixture("mixtral");
    edit_config(&dir, |c| {
        c.remove("num_hidden_layers");
    });
    assert!(matches!(load_err(&dir), Error::Config { .. }));

    let (_t, dir) = copy_fixture("mixtral");
    edit_config(&dir, |c| {
        c.insert("num_key_value_heads".into(), 3.into());
    });
    assert!(matches!(load_err(&dir), Error::InconsistentConfig(_)));

    let (_t, dir) = copy_fixture("mixtral");
    edit_config(&dir, |c| {
        c.insert("num_experts_per_tok".into(), 99.into());
    });
    assert!(matches!(load_err(&dir), Error::InconsistentConfig(_)));
}

#[test]
fn session_input_errors() {
    let model = Arc::new(Model::load(common::own_fixtures().join("qwen3_moe")).unwrap());
    let v = model.vocab_size() as u32;
    let mut s = Session::new(
        model.clone(),
        &SessionParams::default().with_max_context(Some(8)),
    )
    .unwrap();
    assert!(matches!(
        s.prefill(&[], LogitsMode::Last),
        Err(Error::EmptyPrompt)
    ));
    assert!(matches!(
        s.prefill(&[1, v], LogitsMode::Last),
        Err(Error::TokenOutOfRange { token, .. }) if token == v
    ));
    assert!(matches!(
        s.decode(v + 5),
        Err(Error::TokenOutOfRange { .. })
    ));
    assert_eq!(s.len(), 0, "failed calls change nothing");
    s.prefill(&[1, 2, 3, 4, 5, 6], LogitsMode::None).unwrap();
    assert!(matches!(
        s.prefill(&[1, 2, 3], LogitsMode::Last),
        Err(Error::ContextFull {
            needed: 9,
            max_context: 8
        })
    ));
    s.decode(7).unwrap();
    s.decode(8).unwrap();
    assert!(matches!(s.decode(9), Err(Error::ContextFull { .. })));
    assert!(Session::new(model, &SessionParams::default().with_max_context(Some(0))).is_err());
}

/// An edit of a config.json object.
type ConfigEdit = Box<dyn Fn(&mut serde_json::Map<String, serde_json::Value>)>;

#[test]
fn hostile_new_family_configs_are_typed_errors() {
    let cases: Vec<(&str, ConfigEdit)> = vec![
        // Qwen3.5-MoE: a recurrent state too large to allocate, value heads not a multiple of
        // key heads, an unknown layer type.
        (
            "qwen3_5_moe",
            Box::new(|c| {
                c.insert("linear_key_head_dim".into(), (1u64 << 20).into());
                c.insert("linear_value_head_dim".into(), (1u64 << 20).into());
            }),
        ),
        (
            "qwen3_5_moe",
            Box::new(|c| {
                c.insert("linear_num_value_heads".into(), 3.into());
            }),
        ),
        (
            "qwen3_5_moe",
            Box::new(|c| {
                c.insert(
                    "layer_types".into(),
                    serde_json::json!(["mamba", "mamba", "mamba", "mamba"]),
                );
            }),
        ),
        // DeepSeek V4: sizes past their limits, an odd rope dim, a bad compress ratio, no streams,
        // an unsupported scoring function.
        (
            "deepseek_v4",
            Box::new(|c| {
                c.insert("o_lora_rank".into(), (1u64 << 40).into());
                c.insert("o_groups".into(), (1u64 << 40).into());
            }),
        ),
        (
            "deepseek_v4",
            Box::new(|c| {
                c.insert("qk_rope_head_dim".into(), 7.into());
            }),
        ),
        (
            "deepseek_v4",
            Box::new(|c| {
                c.insert("compress_ratios".into(), serde_json::json!([0, 4, 5, 4]));
            }),
        ),
        (
            "deepseek_v4",
            Box::new(|c| {
                c.insert("hc_mult".into(), 0.into());
            }),
        ),
        (
            "deepseek_v4",
            Box::new(|c| {
                c.insert("scoring_func".into(), "softmax".into());
            }),
        ),
    ];
    for (i, (family, edit)) in cases.iter().enumerate() {
        let (_t, dir) = copy_fixture(family);
        edit_config(&dir, |c| edit(c));
        let e = load_err(&dir);
        assert!(
            matches!(e, Error::Config { .. } | Error::InconsistentConfig(_)),
            "case {i} ({family}): {e}"
        );
    }
    // A tid2eid naming an expert that does not exist.
    let (_t, dir) = copy_fixture("deepseek_v4");
    let file = dir.join("model.safetensors");
    let bytes = fs::read(&file).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let off = header["model.layers.0.ffn.gate.tid2eid"]["data_offsets"][0]
        .as_u64()
        .unwrap() as usize;
    let mut bytes = bytes;
    bytes[8 + n + off..8 + n + off + 8].copy_from_slice(&99i64.to_le_bytes());
    fs::write(&file, bytes).unwrap();
    let e = load_err(&dir);
    assert!(e.to_string().contains("tid2eid"), "{e}");
}
