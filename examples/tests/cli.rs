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

/// Runs `logits` on `fixture` with `args`; returns its JSON line.
fn logits_run(fixture: &Path, args: &[&str], out: &Path) -> serde_json::Value {
    let o = example("logits")
        .args(["--model", fixture.to_str().unwrap()])
        .args(args)
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

#[test]
fn logits_example_batches_several_sequences_like_running_them_alone() {
    // GQA (sliding window, sinks) and MLA with the DSA indexer.
    for family in ["gpt_oss", "deepseek_v32"] {
        let fixture = repo().join("fixtures").join(family);
        let tmp = tempfile::tempdir().unwrap();
        let pairs = [
            ("1,2,3,4,5,6,7,8,9,10,11,12", "13,14,15"),
            ("20,21", ""),
            ("30,31,32,33,34", "35,36,37,38,39"),
        ];
        let mut args = vec![];
        for (p, d) in pairs {
            args.extend(["--prompt-ids", p, "--decode-ids", d]);
        }
        let (alone, together, single) = (
            tmp.path().join("a.st"),
            tmp.path().join("b.st"),
            tmp.path().join("s.st"),
        );
        let a = logits_run(&fixture, &args, &alone);
        args.push("--batch");
        let b = logits_run(&fixture, &args, &together);
        logits_run(&fixture, &args[..4], &single);
        assert_eq!(a["batch"], false);
        assert_eq!(b["batch"], true);
        assert_eq!(a["tokens"], 12 + 3 + 2 + 5 + 5);
        assert_eq!(b["tokens"], a["tokens"]);
        assert_eq!(b["kv_cache_bytes"], a["kv_cache_bytes"]);
        assert_eq!(b["sequences"], a["sequences"]);
        assert_eq!(b["sequences"][1]["tokens"], 2);
        let v = a["vocab_size"].as_u64().unwrap() as usize;
        for (i, (p, d)) in pairs.iter().enumerate() {
            let count = |s: &str| s.split(',').filter(|x| !x.is_empty()).count();
            for (name, n) in [("prefill_logits", count(p)), ("decode_logits", count(d))] {
                let name = format!("{name}.{i}");
                let (shape, x) = tensor(&alone, &name);
                let (shape_b, y) = tensor(&together, &name);
                assert_eq!(shape, vec![n, v], "{family} {name}");
                assert_eq!(shape_b, shape, "{family} {name}");
                let d = max_diff(&x, &y);
                assert!(
                    d <= 1e-5,
                    "{family} {name}: batched vs alone max abs diff {d}"
                );
            }
        }
        // Sequence 0 alone is the single-pair run, whose names stay unsuffixed.
        for name in ["prefill_logits", "decode_logits"] {
            let (_, x) = tensor(&single, name);
            let (_, y) = tensor(&alone, &format!("{name}.0"));
            assert_eq!(x, y, "{family} {name}");
        }
        let names: Vec<String> = read_safetensors_file(&single)
            .unwrap()
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}

#[test]
fn logits_example_rejects_unknown_options_and_unpaired_decode_ids() {
    let run = |extra: &[&str]| {
        example("logits")
            .args(["--model", "fixtures/mixtral", "--out", "/dev/null"])
            .args(["--prompt-ids", "1,2"])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(&["--bogus", "3"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown option --bogus"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(&["--prompt-ids", "3", "--decode-ids", "4"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--decode-ids"));
    // A batch of one sequence writes the suffixed names.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.st");
    let line = logits_run(
        &repo().join("fixtures/mixtral"),
        &["--prompt-ids", "1,2", "--decode-ids", "3", "--batch"],
        &out,
    );
    assert_eq!(line["tokens"], 3);
    assert_eq!(tensor(&out, "decode_logits.0").0, vec![1, 256]);
}

#[test]
fn quantize_example_writes_a_checkpoint_that_loads_and_rejects_unknown_options() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q8");
    let o = example("quantize")
        .args(["--model", "models/tiny-deepseek-pycode", "--out"])
        .arg(&out)
        .args(["--bits", "8", "--scope", "linear"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("linear layers int8"));
    let m = moe_core::Model::load(&out).unwrap();
    assert!(m.config().quant.pack_scheme().is_some());
    assert!(out.join("tokenizer.json").is_file());
    for bad in [
        vec![
            "--model",
            "models/tiny-deepseek-pycode",
            "--out",
            "x",
            "--bits",
            "4",
            "--grup",
            "8",
        ],
        vec![
            "--model",
            "models/tiny-deepseek-pycode",
            "--out",
            "x",
            "--bits",
            "3",
        ],
        vec!["--model", "models/tiny-deepseek-pycode", "--bits", "4"],
    ] {
        let o = example("quantize").args(&bad).output().unwrap();
        assert!(!o.status.success(), "{bad:?} succeeded");
        assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: "));
    }
}

#[test]
fn fidelity_example_prints_one_json_line() {
    let o = example("fidelity")
        .args([
            "--model",
            "models/tiny-deepseek-pycode",
            "--quantize",
            "q4",
            "--limit",
            "64",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for key in [
        "kl_mean",
        "kl_max",
        "top1_agreement",
        "ppl_ref",
        "ppl",
        "bytes_per_token_ref",
        "bytes_per_token",
    ] {
        assert!(v[key].is_number(), "{key} missing in {out}");
    }
    assert_eq!(v["tokens"], 64);
    assert!(v["kl_mean"].as_f64().unwrap() > 0.0);
    assert!(v["bytes_per_token"].as_u64() < v["bytes_per_token_ref"].as_u64());
    // A model against itself, on random ids.
    let o = example("fidelity")
        .args([
            "--model",
            "fixtures/qwen3_moe",
            "--against",
            "fixtures/qwen3_moe",
            "--tokens",
            "32",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kl_mean"].as_f64(), Some(0.0));
    assert_eq!(v["top1_agreement"].as_f64(), Some(1.0));
    let o = example("fidelity")
        .args([
            "--model",
            "models/tiny-deepseek-pycode",
            "--quantize",
            "q4",
            "--bogus",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown option --bogus"));
}

/// `fidelity --precision bf16` compares the library's default mode with the exact mode on the same
/// checkpoint (the demo model's weights are bf16).
#[test]
fn fidelity_example_compares_a_precision_mode_with_the_exact_mode() {
    let o = example("fidelity")
        .args([
            "--model",
            "models/tiny-deepseek-pycode",
            "--precision",
            "bf16",
            "--limit",
            "64",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["precision"], "bf16");
    assert_eq!(v["reference_precision"], "f32");
    assert_eq!(v["candidate"], "precision:bf16");
    assert_eq!(v["tokens"], 64);
    let kl = v["kl_mean"].as_f64().unwrap();
    assert!((0.0..1e-2).contains(&kl), "bf16 vs exact mean KL {kl}");
    assert!(v["top1_agreement"].as_f64().unwrap() >= 0.9, "{v}");
    assert_eq!(v["bytes_per_token"], v["bytes_per_token_ref"]);
    // The exact mode against itself: nothing changes.
    let o = example("fidelity")
        .args(["--model", "fixtures/qwen3_moe", "--precision", "f32"])
        .args(["--tokens", "16"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kl_mean"].as_f64(), Some(0.0));
    let o = example("fidelity")
        .args(["--model", "fixtures/qwen3_moe", "--precision", "fp7"])
        .output()
        .unwrap();
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

#[test]
fn generate_and_bench_examples_reject_unknown_options() {
    for (name, args) in [
        (
            "generate",
            &["--max-tokens", "2", "--temprature", "0.5"][..],
        ),
        (
            "bench",
            &["--prompt", "4", "--gen", "1", "--bogus", "1"][..],
        ),
    ] {
        let o = example(name).args(args).output().unwrap();
        assert!(!o.status.success(), "{name} accepted an unknown option");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("unknown option --"), "{name}: {err}");
    }
}

#[test]
fn bench_decodes_from_a_prefilled_depth_in_every_cache_precision() {
    for kv in ["f32", "bf16", "int8"] {
        let o = example("bench")
            .args([
                "--depth",
                "40",
                "--gen",
                "3",
                "--reps",
                "2",
                "--threads",
                "2",
            ])
            .args(["--kv-dtype", kv, "--json"])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{kv}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.contains("decode 3 at depth 40: median"), "{out}");
        let json: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        assert_eq!(json["depth"], 40);
        assert_eq!(json["kv_dtype"], kv);
        assert_eq!(json["prompt"], 0);
        assert_eq!(json["decode_tok_s"].as_array().unwrap().len(), 2);
        assert!(json["depth_prefill_s"].as_f64().unwrap() > 0.0);
    }
    let o = example("bench")
        .args(["--depth", "8", "--kv-dtype", "fp4"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("KV cache dtype"));
}
