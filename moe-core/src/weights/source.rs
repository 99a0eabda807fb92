//! A prefix-scoped view of a checkpoint (`src.pp("model.layers.3.mlp")`) that checks shape and dtype
//! of every tensor it hands out.

use std::sync::Arc;

use super::{Checkpoint, Tensor};
use crate::config::quantize::QuantizePlan;
use crate::config::Quantization;
use crate::error::{Error, Result};

/// Tensors of a checkpoint under a name prefix.
#[derive(Clone)]
pub(crate) struct WeightSource {
    ckpt: Arc<Checkpoint>,
    prefix: String,
    /// Block shape of FP8 `weight_scale_inv` grids (`quantization_config.weight_block_size`).
    fp8_block: (usize, usize),
    /// The checkpoint's declared weight format (`quantization_config`).
    quant: Arc<Quantization>,
    /// Quantization on load: which float linear layers become packed int4/int8 (`None`: none).
    quantize: Option<Arc<QuantizePlan>>,
}

impl WeightSource {
    pub(crate) fn new(ckpt: Arc<Checkpoint>) -> Self {
        WeightSource {
            ckpt,
            prefix: String::new(),
            fp8_block: (128, 128),
            quant: Arc::new(Quantization::None),
            quantize: None,
        }
    }

    /// The same source reading packed weights as `quant` declares them.
    pub(crate) fn with_quant(mut self, quant: Arc<Quantization>) -> Self {
        self.quant = quant;
        self
    }

    /// The same source quantizing the float linear layers `plan` covers while loading them.
    pub(crate) fn with_quantize(mut self, plan: Option<Arc<QuantizePlan>>) -> Self {
        self.quantize = plan;
        self
    }

    /// The quantization on load, if any.
    pub(crate) fn quantize_plan(&self) -> Option<&QuantizePlan> {
        self.quantize.as_deref()
    }

    /// The checkpoint's declared weight format.
    pub(crate) fn quant(&self) -> &Quantization {
        &self.quant
    }

    /// The name prefix of this scope (the module name, e.g. `model.layers.0.mlp.experts`).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The same source with another FP8 scale block shape.
    pub(crate) fn with_fp8_block(mut self, block: (usize, usize)) -> Self {
        self.fp8_block = block;
        self
    }

    pub(crate) fn fp8_block(&self) -> (usize, usize) {
        self.fp8_block
    }

    /// The stored dtype of `name`, if present.
    pub(crate) fn dtype_of(&self, name: &str) -> Option<super::DType> {
        self.ckpt.get(&self.full(name)).map(|t| t.dtype())
    }

    /// The source one level down: names under `prefix.name`.
    pub(crate) fn pp(&self, name: impl std::fmt::Display) -> Self {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        };
        WeightSource {
            ckpt: self.ckpt.clone(),
            prefix,
            fp8_block: self.fp8_block,
            quant: self.quant.clone(),
            quantize: self.quantize.clone(),
        }
    }

    /// The checkpoint name of `name` under this prefix.
    pub(crate) fn full_name(&self, name: &str) -> String {
        self.full(name)
    }

    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        }
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.ckpt.contains(&self.full(name))
    }

    /// A float tensor (F32/F16/BF16) of exactly `shape`.
    pub(crate) fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.get_any(name, shape)?;
        if !t.dtype().is_float_weight() {
            return Err(Error::Dtype {
                name: self.full(name),
                expected: "F32, F16 or BF16".into(),
                found: t.dtype().to_string(),
            });
        }
        Ok(t)
    }

    /// A tensor of exactly `shape` in any dtype (callers check the dtype they can use).
    pub(crate) fn get_any(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = self.full(name);
        let t = self
            .ckpt
            .get(&full)
            .ok_or_else(|| Error::MissingTensor(full.clone()))?;
        if t.shape() != shape {
            return Err(Error::Shape {
                name: full,
                expected: shape.to_vec(),
                found: t.shape().to_vec(),
            });
        }
        Ok(t.clone())
    }

    /// Like `get_f32`, but `None` when the tensor is absent.
    pub(crate) fn get_f32_opt(&self, name: &str, shape: &[usize]) -> Result<Option<Vec<f32>>> {
        if self.contains(name) {
            self.get_f32(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A small float tensor widened to f32 (norm weights, biases).
    pub(crate) fn get_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.get(name, shape)?.to_f32_vec()
    }
}
