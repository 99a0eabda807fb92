//! The `moe` binary run as a user runs it: help, unknown flags, `run`, `inspect`, completions, and
//! `serve` refusing a non-loopback address without a key.

use std::process::{Command, Output};

fn moe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_lists_every_subcommand_and_unknown_flags_fail() {
    let o = moe(&["--help"]);
    assert!(o.status.success());
    for sub in ["run", "serve", "bench", "inspect", "completions"] {
        assert!(text(&o.stdout).contains(sub), "{sub} missing from --help");
        let o = moe(&[sub, "--help"]);
        assert!(o.status.success(), "{sub} --help: {}", text(&o.stderr));
    }
    for sub in ["run", "serve", "bench", "inspect"] {
        let o = moe(&[sub, "--no-such-flag"]);
        assert!(!o.status.success());
        assert!(text(&o.stderr).contains("unexpected argument '--no-such-flag'"));
    }
    let o = moe(&["completions", "bash"]);
    assert!(o.status.success() && text(&o.stdout).contains("_moe"));
}

#[test]
fn run_generates_from_the_demo_model_by_default() {
    let o = moe(&["run", "--max-tokens", "12", "--threads", "1"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.starts_with("import os\n\n\ndef "), "{out}");
    assert!(out.len() > "import os\n\n\ndef ".len() + 5, "{out}");
    // --logprobs: one JSON line per token, then a summary whose text is the tokens' text.
    let o = moe(&[
        "run",
        "--max-tokens",
        "5",
        "--logprobs",
        "2",
        "--threads",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lines: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    let joined: String = lines[..5]
        .iter()
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(lines[5]["text"].as_str().unwrap(), joined);
    for l in &lines[..5] {
        let top = l["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 2);
        // Greedy: the chosen token is the most likely one.
        assert_eq!(top[0]["id"], l["id"]);
        assert!(l["logprob"].as_f64().unwrap() <= 0.0);
    }
    // The chat template is required for --chat.
    let o = moe(&["run", "--chat", "--prompt", "hi", "--max-tokens", "2"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("chat template"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn inspect_reports_the_demo_model_and_refuses_what_it_cannot_read() {
    let o = moe(&["inspect", "--json", "--load"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["family"], "deepseek_v3");
    assert_eq!(v["supported"], true);
    assert_eq!(v["kv_cache_bytes_per_token"], 1280);
    let total = v["parameters_total"].as_u64().unwrap();
    let active = v["parameters_active"].as_u64().unwrap();
    assert!(active < total && total > 6_000_000, "{v}");
    assert!(v["memory_total_bytes"].as_u64().unwrap() > v["memory_weight_bytes"].as_u64().unwrap());

    let dir = std::env::temp_dir().join(format!("moe-cli-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"model_type": "bert"}"#).unwrap();
    let o = moe(&["inspect", dir.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o.stdout).contains("supported    no"),
        "{}",
        text(&o.stdout)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let o = moe(&["inspect", "/no/such/dir"]);
    assert!(!o.status.success());
}

#[test]
fn serve_refuses_other_addresses_without_an_api_key() {
    let o = moe(&[
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--threads",
        "1",
    ]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("--api-key"), "{}", text(&o.stderr));
}

#[test]
fn run_into_a_closed_pipe_ends_quietly_and_successfully() {
    use std::process::Stdio;
    // The reader (`head -c0`, in effect) is gone before the first token: every write fails with
    // EPIPE, which must end the command with success and nothing on stderr but its own summary.
    let mut child = Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(["run", "--max-tokens", "40", "--threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = text(&o.stderr);
    assert!(o.status.success(), "status {:?}: {err}", o.status);
    assert!(!err.contains("error"), "{err}");
}
