//! `quantization_config`: which compressed weight format a checkpoint uses. Everything the engine does
//! not implement is refused here, while reading config.json, before any weight is read.

use serde_json::Value;

use super::raw::Raw;
use crate::error::{Error, Result};

/// The weight format a checkpoint declares.
#[derive(Debug, Clone, Default)]
pub enum Quantization {
    /// Float weights (no `quantization_config`).
    #[default]
    None,
    /// `quant_method: fp8`: e4m3 weights with `weight_scale_inv` block scales.
    Fp8 {
        /// Block shape of the scales (rows, columns).
        block: (usize, usize),
    },
    /// `quant_method: mxfp4` (gpt-oss): e2m1 codes with e8m0 scales per 32, routed experts only.
    Mxfp4 {
        /// `modules_to_not_convert` as published (glob patterns such as `model.layers.*.self_attn`).
        modules_to_not_convert: Vec<String>,
    },
    /// compressed-tensors `pack-quantized`: int4/int8 codes packed in i32 words.
    PackQuantized(PackScheme),
}

/// One compressed-tensors `pack-quantized` weight scheme (targets `Linear`).
#[derive(Debug, Clone)]
pub struct PackScheme {
    /// 4 or 8.
    pub bits: u32,
    /// Elements per scale along the input dimension; `None` = strategy `channel` (one per row).
    pub group_size: Option<usize>,
    /// `false`: a `weight_zero_point` accompanies the scales.
    pub symmetric: bool,
    ignore: Vec<IgnoreRule>,
}

/// An `ignore` entry: an exact module name, or `re:` + a regular expression matched at the start.
#[derive(Debug, Clone)]
enum IgnoreRule {
    Exact(String),
    Regex(regex::Regex),
}

impl PackScheme {
    /// A scheme without ignore rules (tests, twins).
    pub fn new(bits: u32, group_size: Option<usize>, symmetric: bool) -> Self {
        PackScheme {
            bits,
            group_size,
            symmetric,
            ignore: vec![],
        }
    }

    /// Whether the module `name` (e.g. `model.layers.0.self_attn.q_proj`) is left unquantized.
    pub fn ignores(&self, name: &str) -> bool {
        self.ignore.iter().any(|r| match r {
            IgnoreRule::Exact(s) => s == name,
            IgnoreRule::Regex(re) => re.is_match(name),
        })
    }
}

impl Quantization {
    /// The compressed-tensors scheme, if that is the format.
    pub fn pack_scheme(&self) -> Option<&PackScheme> {
        match self {
            Quantization::PackQuantized(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the module `name` is declared as holding packed codes of the checkpoint's format.
    pub fn quantizes(&self, name: &str) -> bool {
        match self {
            Quantization::None | Quantization::Fp8 { .. } => false,
            Quantization::Mxfp4 {
                modules_to_not_convert,
            } => !modules_to_not_convert
                .iter()
                .any(|p| glob_prefix_match(p, name)),
            Quantization::PackQuantized(s) => !s.ignores(name),
        }
    }
}

/// `pattern` (with `*` matching one dotted component or part of one) equals `name` or a dotted prefix
/// of it, as transformers matches `modules_to_not_convert`.
fn glob_prefix_match(pattern: &str, name: &str) -> bool {
    let escaped = regex::escape(pattern).replace(r"\*", r"[^.]*");
    regex::Regex::new(&format!(r"^{escaped}(\.|$)"))
        .map(|re| re.is_match(name))
        .unwrap_or(false)
}

fn unsupported(what: impl Into<String>) -> Error {
    Error::UnsupportedQuantization { what: what.into() }
}

/// Parses `quantization_config` (the object `q`).
pub(crate) fn parse(q: &Raw) -> Result<Quantization> {
    let method = q
        .opt_str("quant_method")?
        .ok_or_else(|| unsupported("quantization_config without quant_method".to_string()))?;
    match method {
        "fp8" => parse_fp8(q),
        "mxfp4" => Ok(Quantization::Mxfp4 {
            modules_to_not_convert: q
                .opt_str_list("modules_to_not_convert")?
                .unwrap_or_default()
                .into_iter()
                .map(String::from)
                .collect(),
        }),
        "compressed-tensors" => parse_compressed_tensors(q),
        other => Err(unsupported(format!(
            "quant_method {other:?} (supported: fp8, mxfp4, compressed-tensors pack-quantized)"
        ))),
    }
}

fn parse_fp8(q: &Raw) -> Result<Quantization> {
    if let Some(fmt) = q.opt_str("fmt")? {
        if fmt != "e4m3" {
            return Err(unsupported(format!("fp8 fmt {fmt:?} (supported: e4m3)")));
        }
    }
    let block = match q.opt_usize_list("weight_block_size")? {
        None => (128, 128),
        Some(b) => match b.as_slice() {
            [r, c] if *r > 0 && *c > 0 => (*r, *c),
            _ => {
                return Err(Error::InconsistentConfig(format!(
                    "weight_block_size {b:?} is not two positive sizes"
                )))
            }
        },
    };
    Ok(Quantization::Fp8 { block })
}

/// Whether a config value asks for nothing (`null`, `false`, `{}`, `[]`).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Keys whose presence with a non-empty value asks for something this engine does not do.
fn refuse_present(q: &Raw, keys: &[&str], scope: &str) -> Result<()> {
    for k in keys {
        if let Some(v) = q.map.get(*k).filter(|v| !is_empty(v)) {
            return Err(unsupported(format!("{scope}{k} = {v}")));
        }
    }
    Ok(())
}

fn parse_compressed_tensors(q: &Raw) -> Result<Quantization> {
    let format = q.opt_str("format")?;
    if let Some(f) = format {
        if f != "pack-quantized" {
            return Err(unsupported(format!(
                "compressed-tensors format {f:?} (supported: pack-quantized)"
            )));
        }
    }
    if let Some(s) = q.opt_str("quantization_status")? {
        if s != "compressed" {
            return Err(unsupported(format!(
                "compressed-tensors quantization_status {s:?} (supported: compressed)"
            )));
        }
    }
    refuse_present(
        q,
        &["kv_cache_scheme", "sparsity_config", "transform_config"],
        "",
    )?;
    let groups = q
        .opt_obj("config_groups")?
        .ok_or_else(|| unsupported("compressed-tensors without config_groups"))?;
    let mut entries = groups.map.iter();
    let (gname, group) = match (entries.next(), entries.next()) {
        (Some(g), None) => g,
        (None, _) => return Err(unsupported("compressed-tensors with empty config_groups")),
        (Some(_), Some(_)) => {
            return Err(unsupported(format!(
                "compressed-tensors with {} config_groups (supported: one)",
                groups.map.len()
            )))
        }
    };
    let group = Raw {
        map: group.as_object().ok_or_else(|| Error::Config {
            path: q.path.to_path_buf(),
            message: format!("config_groups.{gname} is not an object"),
        })?,
        path: q.path,
    };
    let scope = format!("config_groups.{gname}.");
    if let Some(f) = group.opt_str("format")? {
        if f != "pack-quantized" {
            return Err(unsupported(format!("{scope}format {f:?}")));
        }
    } else if format.is_none() {
        return Err(unsupported("compressed-tensors without format"));
    }
    refuse_present(&group, &["input_activations", "output_activations"], &scope)?;
    let targets = group.opt_str_list("targets")?.unwrap_or_default();
    if targets != ["Linear"] {
        return Err(unsupported(format!(
            "{scope}targets {targets:?} (supported: [\"Linear\"])"
        )));
    }
    let w = group
        .opt_obj("weights")?
        .ok_or_else(|| unsupported(format!("{scope}weights missing")))?;
    let scope = format!("{scope}weights.");
    refuse_present(&w, &["actorder", "block_structure", "dynamic"], &scope)?;
    let bits = w.req_usize("num_bits")?;
    if bits != 4 && bits != 8 {
        return Err(unsupported(format!(
            "{scope}num_bits = {bits} (supported: 4, 8)"
        )));
    }
    match w.opt_str("type")? {
        Some("int") | None => {}
        Some(t) => return Err(unsupported(format!("{scope}type = {t:?} (supported: int)"))),
    }
    let symmetric = w.bool_or("symmetric", true)?;
    let strategy = w.opt_str("strategy")?.unwrap_or("group");
    let group_size = match strategy {
        "channel" => None,
        "group" => match w.opt_usize("group_size")? {
            Some(g) if g > 0 => Some(g),
            _ => {
                return Err(unsupported(format!(
                    "{scope}strategy group without a positive group_size"
                )))
            }
        },
        s => {
            return Err(unsupported(format!(
                "{scope}strategy = {s:?} (supported: group, channel)"
            )))
        }
    };
    let ignore = q
        .opt_str_list("ignore")?
        .unwrap_or_default()
        .into_iter()
        .map(|e| match e.strip_prefix("re:") {
            Some(pat) => regex::Regex::new(&format!("^(?:{pat})"))
                .map(IgnoreRule::Regex)
                .map_err(|err| Error::Config {
                    path: q.path.to_path_buf(),
                    message: format!("ignore entry {e:?} is not a regular expression: {err}"),
                }),
            None => Ok(IgnoreRule::Exact(e.to_string())),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Quantization::PackQuantized(PackScheme {
        bits: bits as u32,
        group_size,
        symmetric,
        ignore,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_json(v: serde_json::Value) -> Result<Quantization> {
        let map = v.as_object().unwrap().clone();
        parse(&Raw {
            map: &map,
            path: std::path::Path::new("config.json"),
        })
    }

    fn w4a16() -> serde_json::Value {
        serde_json::json!({
            "quant_method": "compressed-tensors", "format": "pack-quantized",
            "quantization_status": "compressed", "kv_cache_scheme": null,
            "ignore": ["lm_head", "re:.*mlp.gate$", "re:.*self_attn.*"],
            "config_groups": {"group_0": {
                "input_activations": null, "output_activations": null, "targets": ["Linear"],
                "weights": {"actorder": null, "block_structure": null, "dynamic": false,
                    "group_size": 32, "num_bits": 4, "observer": "minmax", "strategy": "group",
                    "symmetric": true, "type": "int"}}}
        })
    }

    fn unsupported_naming(v: serde_json::Value, needle: &str) {
        match parse_json(v) {
            Err(Error::UnsupportedQuantization { what }) => {
                assert!(what.contains(needle), "{what:?} does not name {needle:?}")
            }
            other => panic!("expected UnsupportedQuantization naming {needle}, got {other:?}"),
        }
    }

    #[test]
    fn pack_quantized_is_read_with_its_ignore_rules() {
        let q = parse_json(w4a16()).unwrap();
        let s = q.pack_scheme().unwrap();
        assert_eq!((s.bits, s.group_size, s.symmetric), (4, Some(32), true));
        assert!(s.ignores("lm_head"));
        assert!(!s.ignores("lm_head_extra"));
        assert!(s.ignores("model.layers.3.mlp.gate"));
        assert!(!s.ignores("model.layers.3.mlp.gate_proj"));
        assert!(s.ignores("model.layers.0.self_attn.q_proj"));
        assert!(q.quantizes("model.layers.0.mlp.experts.1.up_proj"));
        let mut v = w4a16();
        v["config_groups"]["group_0"]["weights"]["strategy"] = "channel".into();
        v["config_groups"]["group_0"]["weights"]["num_bits"] = 8.into();
        v["config_groups"]["group_0"]["weights"]["symmetric"] = false.into();
        let q = parse_json(v).unwrap();
        let s = q.pack_scheme().unwrap();
        assert_eq!((s.bits, s.group_size, s.symmetric), (8, None, false));
        // Empty objects ask for nothing.
        let mut v = w4a16();
        v["sparsity_config"] = serde_json::json!({});
        v["transform_config"] = serde_json::json!({});
        assert!(parse_json(v).is_ok());
    }

    #[test]
    fn mxfp4_and_fp8_are_read() {
        let q = parse_json(serde_json::json!({"quant_method": "mxfp4",
            "modules_to_not_convert": ["model.layers.*.self_attn", "lm_head"]}))
        .unwrap();
        assert!(!q.quantizes("model.layers.3.self_attn.q_proj"));
        assert!(!q.quantizes("lm_head"));
        assert!(q.quantizes("model.layers.3.mlp.experts"));
        let q = parse_json(
            serde_json::json!({"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [32, 16]}),
        )
        .unwrap();
        assert!(matches!(q, Quantization::Fp8 { block: (32, 16) }));
    }

    #[test]
    fn every_unimplemented_choice_is_refused_by_name() {
        unsupported_naming(
            serde_json::json!({"quant_method": "gptq", "bits": 4}),
            "gptq",
        );
        unsupported_naming(serde_json::json!({"quant_method": "awq"}), "awq");
        unsupported_naming(serde_json::json!({"bits": 4}), "quant_method");
        unsupported_naming(
            serde_json::json!({"quant_method": "fp8", "fmt": "e5m2"}),
            "e5m2",
        );
        let cases: [(&str, serde_json::Value, &str); 11] = [
            ("/format", "float-quantized".into(), "float-quantized"),
            ("/quantization_status", "frozen".into(), "frozen"),
            (
                "/kv_cache_scheme",
                serde_json::json!({"num_bits": 8}),
                "kv_cache_scheme",
            ),
            (
                "/config_groups/group_0/input_activations",
                serde_json::json!({"num_bits": 8, "type": "int"}),
                "input_activations",
            ),
            (
                "/config_groups/group_0/weights/num_bits",
                2.into(),
                "num_bits = 2",
            ),
            (
                "/config_groups/group_0/weights/type",
                "float".into(),
                "float",
            ),
            (
                "/config_groups/group_0/weights/strategy",
                "block".into(),
                "block",
            ),
            (
                "/config_groups/group_0/weights/strategy",
                "tensor".into(),
                "tensor",
            ),
            (
                "/config_groups/group_0/weights/actorder",
                "group".into(),
                "actorder",
            ),
            (
                "/config_groups/group_0/weights/dynamic",
                true.into(),
                "dynamic",
            ),
            (
                "/config_groups/group_0/targets",
                serde_json::json!(["Embedding"]),
                "targets",
            ),
        ];
        for (ptr, val, needle) in cases {
            let mut v = w4a16();
            *v.pointer_mut(ptr).unwrap() = val;
            unsupported_naming(v, needle);
        }
        let mut v = w4a16();
        v["config_groups"]["group_1"] = v["config_groups"]["group_0"].clone();
        unsupported_naming(v, "config_groups");
        let mut v = w4a16();
        v["config_groups"]["group_0"]["weights"]["group_size"] = serde_json::Value::Null;
        unsupported_naming(v, "group_size");
    }

    #[test]
    fn a_bad_ignore_regex_is_a_config_error() {
        let mut v = w4a16();
        v["ignore"] = serde_json::json!(["re:(unclosed"]);
        assert!(matches!(parse_json(v), Err(Error::Config { .. })));
    }
}
