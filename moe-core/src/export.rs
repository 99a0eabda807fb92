//! Writing a float checkpoint quantized as a compressed-tensors `pack-quantized` checkpoint, one
//! tensor at a time: the source shards are mapped, each output tensor is computed when its bytes are
//! written and dropped after, so memory holds one tensor's codes and scales however large the model.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::config::quantize::{QuantizeOptions, QuantizePlan};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::kernels::packed::{quantize_matrix, quantize_scales};
use crate::weights::{Checkpoint, Tensor};

/// Largest shard written (bytes); bigger checkpoints are split with a `model.safetensors.index.json`.
const MAX_SHARD_BYTES: usize = 4 << 30;

/// What [`quantize_checkpoint`] wrote.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct QuantizeSummary {
    /// Linear layers written as packed codes.
    pub quantized: usize,
    /// Tensors copied unchanged.
    pub copied: usize,
    /// Modules in the scope left in their dtype because their input width is not a multiple of the
    /// group size (named in the ignore list).
    pub ungrouped: Vec<String>,
    /// Bytes of the source safetensors files.
    pub bytes_in: usize,
    /// Bytes of the written safetensors files.
    pub bytes_out: usize,
    /// Safetensors files written.
    pub shards: usize,
}

/// One output tensor, computed when written.
enum Out<'a> {
    Copy(&'a Tensor),
    Packed(&'a Tensor, QuantizeOptions),
    Scale(&'a Tensor, QuantizeOptions),
    Shape([i64; 2]),
}

struct View<'a, 'p> {
    out: Out<'a>,
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    len: usize,
    /// Source bytes done so far, and the observer told after each tensor.
    progress: &'a Progress<'p>,
}

struct Progress<'a> {
    done: Cell<usize>,
    total: usize,
    observer: RefCell<Option<&'a mut dyn FnMut(usize, usize)>>,
}

impl Progress<'_> {
    fn advance(&self, bytes: usize) {
        self.done.set(self.done.get() + bytes);
        if let Some(f) = self.observer.borrow_mut().as_mut() {
            f(self.done.get(), self.total);
        }
    }
}

impl safetensors::View for &View<'_, '_> {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let data: Cow<'_, [u8]> = match &self.out {
            Out::Copy(t) => {
                self.progress.advance(t.bytes().len());
                Cow::Borrowed(t.bytes())
            }
            Out::Packed(t, o) => {
                let (r, c) = (t.shape()[0], t.shape()[1]);
                let w = t.float_data().expect("float dtype checked when planned");
                let (codes, _) = quantize_matrix(&w, r, c, o.bits, o.group_size);
                self.progress.advance(t.bytes().len());
                Cow::Owned(bytemuck::cast_slice(&codes).to_vec())
            }
            Out::Scale(t, o) => {
                let (r, c) = (t.shape()[0], t.shape()[1]);
                let w = t.float_data().expect("float dtype checked when planned");
                Cow::Owned(quantize_scales(&w, r, c, o.bits, o.group_size).to_bytes())
            }
            Out::Shape(s) => Cow::Owned(s.iter().flat_map(|v| v.to_le_bytes()).collect()),
        };
        debug_assert_eq!(data.len(), self.len);
        data
    }

    fn data_len(&self) -> usize {
        self.len
    }
}

fn st_dtype(t: &Tensor) -> Result<safetensors::Dtype> {
    t.dtype()
        .to_safetensors()
        .ok_or_else(|| Error::UnsupportedQuantization {
            what: format!("copying {} of a dtype this engine does not know", t.name()),
        })
}

/// Quantizes the bf16, f16 or f32 checkpoint in `src` to `dst` (absent or an empty directory) as a
/// compressed-tensors `pack-quantized` checkpoint: every linear layer `opts` covers becomes
/// `weight_packed` (i32), `weight_scale` (the weights' dtype) and `weight_shape` (i64), with exactly
/// the codes [`LoadOptions::with_quantization`](crate::LoadOptions::with_quantization) computes;
/// every other tensor is copied; `config.json` gains the `quantization_config` compressed-tensors and
/// vLLM read (ignore list: every linear module left in its dtype), and the other files of `src`
/// (tokenizer, generation config, ...) are copied. `progress(bytes_done, bytes_total)` is called
/// after each source tensor.
pub fn quantize_checkpoint(
    src: impl AsRef<Path>,
    dst: impl AsRef<Path>,
    opts: QuantizeOptions,
    progress: Option<&mut dyn FnMut(usize, usize)>,
) -> Result<QuantizeSummary> {
    write_quantized(src.as_ref(), dst.as_ref(), opts, progress, MAX_SHARD_BYTES)
}

/// [`quantize_checkpoint`] with shards of at most `max_shard` bytes (one tensor more if it alone is
/// larger).
fn write_quantized(
    src: &Path,
    dst: &Path,
    opts: QuantizeOptions,
    progress: Option<&mut dyn FnMut(usize, usize)>,
    max_shard: usize,
) -> Result<QuantizeSummary> {
    let config = ModelConfig::load(src)?;
    let plan = QuantizePlan::new(&config, opts)?;
    prepare_dst(src, dst)?;
    let ckpt = Checkpoint::open(src)?;
    let mut names: Vec<&str> = ckpt.names().collect();
    names.sort_unstable();
    if let Some(fused) = names
        .iter()
        .find(|n| n.ends_with(".experts.gate_up_proj") && plan.in_scope(n))
    {
        return Err(Error::UnsupportedQuantization {
            what: format!(
                "quantizing fused expert tensors ({fused}); only per-expert checkpoints can be \
                 quantized"
            ),
        });
    }
    let total: usize = names
        .iter()
        .map(|n| ckpt.get(n).map_or(0, |t| t.bytes().len()))
        .sum();
    let prog = Progress {
        done: Cell::new(0),
        total,
        observer: RefCell::new(progress),
    };
    let mut summary = QuantizeSummary {
        bytes_in: ckpt.mapped_bytes(),
        ..Default::default()
    };
    let mut ignore = Vec::new();
    let mut views: Vec<(String, View<'_, '_>)> = Vec::new();
    for name in names {
        let t = ckpt.get(name).expect("names come from the checkpoint");
        let module = name.strip_suffix(".weight");
        let linear = match (module, t.shape()) {
            (Some(m), [_, _]) if t.dtype().is_float_weight() => Some(m),
            _ => None,
        };
        if let Some(m) = linear {
            let (rows, cols) = (t.shape()[0], t.shape()[1]);
            if plan.covers(m, cols) {
                let words = cols * opts.bits as usize / 32;
                let groups = cols / opts.group_size;
                let prog = &prog;
                let view = move |out, dtype, shape: Vec<usize>, size| View {
                    out,
                    dtype,
                    len: shape.iter().product::<usize>() * size,
                    shape,
                    progress: prog,
                };
                views.push((
                    format!("{m}.weight_packed"),
                    view(
                        Out::Packed(t, opts),
                        safetensors::Dtype::I32,
                        vec![rows, words],
                        4,
                    ),
                ));
                views.push((
                    format!("{m}.weight_scale"),
                    view(
                        Out::Scale(t, opts),
                        st_dtype(t)?,
                        vec![rows, groups],
                        t.dtype().size(),
                    ),
                ));
                views.push((
                    format!("{m}.weight_shape"),
                    view(
                        Out::Shape([rows as i64, cols as i64]),
                        safetensors::Dtype::I64,
                        vec![2],
                        8,
                    ),
                ));
                summary.quantized += 1;
                continue;
            }
            if plan.in_scope(m) {
                summary.ungrouped.push(m.to_string());
            }
            if !m.ends_with("embed_tokens") {
                ignore.push(m.to_string());
            }
        }
        views.push((
            name.to_string(),
            View {
                out: Out::Copy(t),
                dtype: st_dtype(t)?,
                shape: t.shape().to_vec(),
                len: t.bytes().len(),
                progress: &prog,
            },
        ));
        summary.copied += 1;
    }
    write_shards(dst, &views, &mut summary, max_shard)?;
    write_config(src, dst, opts, ignore)?;
    copy_other_files(src, dst)?;
    Ok(summary)
}

fn prepare_dst(src: &Path, dst: &Path) -> Result<()> {
    if dst.exists() {
        let mut entries = std::fs::read_dir(dst).map_err(|e| Error::io(dst, e))?;
        if entries.next().is_some() {
            return Err(Error::InvalidArgument(format!(
                "output directory {} is not empty",
                dst.display()
            )));
        }
    }
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dst.canonicalize()) {
        if a == b {
            return Err(Error::InvalidArgument(
                "the output directory is the input directory".into(),
            ));
        }
    }
    std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))
}

fn write_shards(
    dst: &Path,
    views: &[(String, View<'_, '_>)],
    summary: &mut QuantizeSummary,
    max_shard: usize,
) -> Result<()> {
    let mut shards: Vec<Vec<&(String, View<'_, '_>)>> = vec![vec![]];
    let mut size = 0;
    for v in views {
        if size > 0 && size + v.1.len > max_shard {
            shards.push(vec![]);
            size = 0;
        }
        size += v.1.len;
        shards.last_mut().expect("one shard at least").push(v);
    }
    let n = shards.len();
    let meta = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    let mut weight_map = BTreeMap::new();
    for (i, shard) in shards.iter().enumerate() {
        let file = if n == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{n:05}.safetensors", i + 1)
        };
        let path = dst.join(&file);
        safetensors::serialize_to_file(shard.iter().map(|(k, v)| (k.as_str(), v)), &meta, &path)
            .map_err(|e| match e {
                safetensors::SafeTensorError::IoError(e) => Error::io(&path, e),
                e => Error::format(&path, e.to_string()),
            })?;
        summary.bytes_out += std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len() as usize;
        for (k, _) in shard {
            weight_map.insert(k.clone(), Value::from(file.clone()));
        }
    }
    summary.shards = n;
    if n > 1 {
        let total: usize = views.iter().map(|v| v.1.len).sum();
        let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        let path = dst.join("model.safetensors.index.json");
        write_json(&path, &index)?;
    }
    Ok(())
}

/// The `quantization_config` of a compressed-tensors `pack-quantized` W4A16/W8A16 checkpoint.
pub(crate) fn quantization_config(opts: QuantizeOptions, ignore: Vec<String>) -> Value {
    json!({
        "quant_method": "compressed-tensors",
        "format": "pack-quantized",
        "quantization_status": "compressed",
        "config_groups": {
            "group_0": {
                "targets": ["Linear"],
                "weights": {
                    "num_bits": opts.bits,
                    "type": "int",
                    "symmetric": true,
                    "strategy": "group",
                    "group_size": opts.group_size,
                    "dynamic": false,
                    "actorder": null,
                    "observer": "minmax",
                    "observer_kwargs": {}
                },
                "input_activations": null,
                "output_activations": null,
                "format": "pack-quantized"
            }
        },
        "ignore": ignore,
        "kv_cache_scheme": null,
        "sparsity_config": {},
        "global_compression_ratio": null
    })
}

fn write_config(src: &Path, dst: &Path, opts: QuantizeOptions, ignore: Vec<String>) -> Result<()> {
    let path = src.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut cfg: Value = serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let obj = cfg.as_object_mut().ok_or_else(|| Error::Config {
        path: path.clone(),
        message: "config.json is not an object".into(),
    })?;
    obj.insert(
        "quantization_config".into(),
        quantization_config(opts, ignore),
    );
    write_json(&dst.join("config.json"), &cfg)
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).expect("a JSON value serializes");
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

/// Copies the regular files of `src` other than config.json and safetensors (tokenizer, generation
/// config, chat template, README).
fn copy_other_files(src: &Path, dst: &Path) -> Result<()> {
    for entry in std::fs::read_dir(src).map_err(|e| Error::io(src, e))? {
        let entry = entry.map_err(|e| Error::io(src, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let skip = name == "config.json"
            || name.ends_with(".safetensors")
            || name == "model.safetensors.index.json";
        if skip || !path.is_file() {
            continue;
        }
        std::fs::copy(&path, dst.join(&*name)).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::{LogitsMode, Model, Session, SessionParams};

    fn demo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tiny-deepseek-pycode")
    }

    fn logits(dir: &Path) -> Vec<f32> {
        let m = Arc::new(Model::load(dir).unwrap());
        let mut s = Session::new(m, &SessionParams::default()).unwrap();
        s.prefill(&[3, 1, 4, 1, 5, 9, 2, 6], LogitsMode::All)
            .unwrap()
    }

    #[test]
    fn sharded_output_has_an_index_and_loads_to_the_same_logits() {
        let tmp = std::env::temp_dir().join(format!("moe-export-test-{}", std::process::id()));
        let (one, many) = (tmp.join("one"), tmp.join("many"));
        let q = QuantizeOptions::new(4);
        let mut calls = 0;
        let mut progress = |done: usize, total: usize| {
            assert!(done <= total);
            calls += 1;
        };
        let a = write_quantized(&demo(), &one, q, Some(&mut progress), MAX_SHARD_BYTES).unwrap();
        assert!(calls > 0);
        let b = write_quantized(&demo(), &many, q, None, 1 << 20).unwrap();
        assert_eq!(a.shards, 1);
        assert!(b.shards > 3, "{} shards", b.shards);
        assert!(!one.join("model.safetensors.index.json").exists());
        let index: Value = serde_json::from_str(
            &std::fs::read_to_string(many.join("model.safetensors.index.json")).unwrap(),
        )
        .unwrap();
        let files: std::collections::BTreeSet<&str> = index["weight_map"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(files.len(), b.shards);
        assert!(files.contains(format!("model-00001-of-{:05}.safetensors", b.shards).as_str()));
        assert_eq!(logits(&one), logits(&many));
        std::fs::remove_dir_all(&tmp).ok();
    }
}
