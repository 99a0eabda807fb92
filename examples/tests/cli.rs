//! The `logits` and `generate` examples, run as a user runs them (cargo test builds the examples).

use std::path::{Path, PathBuf};
use std::process::Command;

use moe_core::internals::read_safetensors_file;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `target/<profile>/examples/<name>`, next to this test's own binary.
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.is_file(), "example not built: {}", path.display());
    let mut c = Command::new(path);
    c.current_dir(repo());
    c
}

fn tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = read_safetensors_file(path)
        .unwrap()
        .into_iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("{name} missing"));
    (
        t.shape().to_vec(),
        t.to_f32_vec()
            .unwrap_or_else(|_| t.to_i64_vec().unwrap().iter().map(|&x| x as f32).collect()),
    )
}

fn join(ids: &[f32]) -> String {
    ids.iter()
        .map(|x| (*x as u32).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn logits_example_matches_reference_and_reports_cache_bytes() {
    let fixture = repo().join("fixtures/deepseek_v32");
    let reference = fixture.join("reference.safetensors");
    let (_, prompt) = tensor(&reference, "input_ids");
    let (_, decode) = tensor(&reference, "decode_ids");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let o = example("logits")
        .args(["--model", fixture.to_str().unwrap()])
        .args([
            "--prompt-ids",
            &join(&prompt),
            "--decode-ids",
            &join(&decode),
        ])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tokens = prompt.len() + decode.len();
    assert_eq!(line["tokens"], tokens);

    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("config.json")).unwrap())
            .unwrap();
    let per_layer = cfg["kv_lora_rank"].as_u64().unwrap()
        + cfg["qk_rope_head_dim"].as_u64().unwrap()
        + cfg["index_head_dim"].as_u64().unwrap();
    let layers = cfg["num_hidden_layers"].as_u64().unwrap();
    assert_eq!(
        line["kv_cache_bytes"],
        layers * tokens as u64 * per_layer * 4
    );

    for name in ["prefill_logits", "decode_logits"] {
        let (shape, got) = tensor(&out, name);
        let (want_shape, want) = tensor(&reference, name);
        assert_eq!(shape, want_shape);
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-3, "{name}: {d}");
    }
}

#[test]
fn logits_example_reports_bad_input() {
    let o = example("logits")
        .args(["--prompt-ids", "1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--model"));
    let o = example("logits")
        .args([
            "--model",
            "fixtures/mixtral",
            "--prompt-ids",
            "1,99999",
            "--out",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("out of range"));
}

#[test]
fn generate_example_streams_text_from_the_shipped_model_by_default() {
    let o = example("generate")
        .args(["--max-tokens", "24"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with("import os"), "{text}");
    assert!(text.len() > "import os\n\n\ndef ".len() + 10, "{text}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("time to first token"));
}

#[test]
fn generate_example_prints_ids_for_models_without_tokenizer() {
    let o = example("generate")
        .args([
            "--model",
            "fixtures/mixtral",
            "--prompt-ids",
            "1,2,3",
            "--max-tokens",
            "5",
            "--temperature",
            "0.8",
            "--seed",
            "7",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ids: Vec<u32> = String::from_utf8(o.stdout)
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(!ids.is_empty() && ids.len() <= 5);
    assert!(ids.iter().all(|&i| i < 256));
}

#[test]
fn logits_example_precision_flag() {
    let fixture = repo().join("fixtures/qwen3_moe");
    let tmp = tempfile::tempdir().unwrap();
    let run = |precision: Option<&str>, out: &Path| {
        let mut c = example("logits");
        c.args(["--model", fixture.to_str().unwrap()])
            .args(["--prompt-ids", "1,2,3,4,5", "--decode-ids", "6,7"])
            .args(["--out", out.to_str().unwrap()]);
        if let Some(p) = precision {
            c.args(["--precision", p]);
        }
        c.output().unwrap()
    };
    let (default, exact, bf16) = (
        tmp.path().join("d.st"),
        tmp.path().join("f.st"),
        tmp.path().join("b.st"),
    );
    assert!(run(None, &default).status.success());
    assert!(run(Some("f32"), &exact).status.success());
    assert!(run(Some("bf16"), &bf16).status.success());
    // The default is the exact mode, bit for bit; bf16 activations stay close.
    assert_eq!(
        std::fs::read(&default).unwrap(),
        std::fs::read(&exact).unwrap()
    );
    let (_, a) = tensor(&exact, "prefill_logits");
    let (_, b) = tensor(&bf16, "prefill_logits");
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(d < 0.1, "bf16 vs f32 max abs diff {d}");
    let o = run(Some("fp7"), &tmp.path().join("x.st"));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--precision"));
}

#[test]
fn logits_example_kv_dtype_flag_sets_the_cache_precision() {
    let fixture = repo().join("fixtures/deepseek_v32");
    let tmp = tempfile::tempdir().unwrap();
    let run = |kv: Option<&str>, out: &Path| {
        let mut c = example("logits");
        c.args(["--model", fixture.to_str().unwrap()])
            .args(["--prompt-ids", "1,2,3,4,5,6,7,8", "--decode-ids", "9,10"])
            .args(["--out", out.to_str().unwrap()]);
        if let Some(k) = kv {
            c.args(["--kv-dtype", k]);
        }
        c.output().unwrap()
    };
    let bytes = |o: &std::process::Output| -> u64 {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        line["kv_cache_bytes"].as_u64().unwrap()
    };
    let outs: Vec<PathBuf> = ["d", "f", "b", "i"]
        .iter()
        .map(|n| tmp.path().join(format!("{n}.st")))
        .collect();
    let default = bytes(&run(None, &outs[0]));
    let f32b = bytes(&run(Some("f32"), &outs[1]));
    let bf16 = bytes(&run(Some("bf16"), &outs[2]));
    let int8 = bytes(&run(Some("int8"), &outs[3]));
    assert_eq!(default, f32b);
    assert_eq!(bf16 * 2, f32b);
    assert!(int8 * 3 < f32b, "int8 {int8} vs f32 {f32b}");
    assert_eq!(
        std::fs::read(&outs[0]).unwrap(),
        std::fs::read(&outs[1]).unwrap()
    );
    // Compact caches change the decode logits a little, not a lot.
    let (_, a) = tensor(&outs[1], "decode_logits");
    let (_, b) = tensor(&outs[2], "decode_logits");
    assert_ne!(a, b);
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(d < 0.1, "bf16 cache vs f32 max abs diff {d}");
    let o = run(Some("fp4"), &tmp.path().join("x.st"));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--kv-dtype"));
}
