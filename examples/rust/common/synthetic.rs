//! Writes a random-weight bf16 checkpoint (config.json + model.safetensors) for benchmarks.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// A tiny splitmix64 for reproducible weights.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-a, a)`.
    pub fn uniform(&mut self, a: f32) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
    }
}

/// Writes `tensors` (name → shape; values uniform in ±1/sqrt(fan_in), norms 1) as one bf16 safetensors
/// file plus `config`.
pub fn write_checkpoint(
    dir: &Path,
    config: &serde_json::Value,
    tensors: &BTreeMap<String, Vec<usize>>,
    seed: u64,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(config)?,
    )?;
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in tensors {
        let bytes = shape.iter().product::<usize>() * 2;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header))?;
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("model.safetensors"))?);
    f.write_all(&(h.len() as u64).to_le_bytes())?;
    f.write_all(&h)?;
    let mut rng = Rng::new(seed);
    for (name, shape) in tensors {
        let n: usize = shape.iter().product();
        let is_norm = name.contains("norm") && shape.len() == 1;
        let fan_in = *shape.last().unwrap_or(&1) as f32;
        let a = 1.0 / fan_in.sqrt();
        let mut buf = Vec::with_capacity(n * 2);
        for _ in 0..n {
            let v = if is_norm && !name.ends_with(".bias") {
                1.0
            } else {
                rng.uniform(a)
            };
            buf.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes());
        }
        f.write_all(&buf)?;
    }
    f.flush()
}
