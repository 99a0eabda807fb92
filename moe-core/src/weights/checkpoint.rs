//! A checkpoint directory: one `model.safetensors` or shards listed in `model.safetensors.index.json`,
//! each memory-mapped; every tensor found by name without reading or converting its data.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::tensor::Storage;
use super::{DType, Tensor};
use crate::error::{Error, Result};

const INDEX_FILE: &str = "model.safetensors.index.json";
const SINGLE_FILE: &str = "model.safetensors";

/// All tensors of a checkpoint, by name.
pub struct Checkpoint {
    dir: PathBuf,
    tensors: HashMap<String, Tensor>,
    mapped_bytes: usize,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("dir", &self.dir)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// How shard bytes are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Residence {
    /// Memory-mapped: zero-copy, but the files must not change while the model lives (SIGBUS).
    #[default]
    Mapped,
    /// Read into memory once: immune to the files changing, costs their size in RAM and a read.
    Copied,
}

impl Checkpoint {
    /// Maps the safetensors files of `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, Residence::Mapped)
    }

    /// Opens the safetensors files of `dir`, mapped or copied.
    pub(crate) fn open_with(dir: &Path, residence: Residence) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::NotFound(dir.to_path_buf()));
        }
        let index_path = dir.join(INDEX_FILE);
        let shard_files = if index_path.is_file() {
            shards_from_index(&index_path)?
        } else if dir.join(SINGLE_FILE).is_file() {
            vec![(SINGLE_FILE.to_string(), None)]
        } else {
            return Err(Error::NotFound(dir.join(SINGLE_FILE)));
        };

        let mut tensors = HashMap::new();
        let mut mapped_bytes = 0;
        for (file, expected) in shard_files {
            let path = dir.join(&file);
            let shard = open_shard(&path, residence)?;
            mapped_bytes += shard.bytes().len();
            let found = read_shard(&path, &shard)?;
            if let Some(expected) = expected {
                for name in &expected {
                    if !found.iter().any(|t| t.name() == name) {
                        return Err(Error::format(
                            &path,
                            format!(
                                "index lists tensor {name} in this shard, but the shard lacks it"
                            ),
                        ));
                    }
                }
            }
            for t in found {
                tensors.insert(t.name().to_string(), t);
            }
        }
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            tensors,
            mapped_bytes,
        })
    }

    /// The checkpoint folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tensor called `name`, if the checkpoint has one.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Whether the checkpoint has a tensor called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Names of all tensors (unordered).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Total size of the mapped (or copied) files in bytes.
    pub fn mapped_bytes(&self) -> usize {
        self.mapped_bytes
    }
}

/// Maps one safetensors file and returns its tensors (reference files in tests and tools).
pub fn read_safetensors_file(path: &Path) -> Result<Vec<Tensor>> {
    let shard = open_shard(path, Residence::Mapped)?;
    read_shard(path, &shard)
}

/// Shard file names from the index, each with the tensor names it must hold.
fn shards_from_index(path: &Path) -> Result<Vec<(String, Option<Vec<String>>)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::format(path, format!("bad JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::format(path, "no \"weight_map\" object"))?;
    let mut shards: Vec<(String, Option<Vec<String>>)> = Vec::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| Error::format(path, format!("weight_map[{tensor}] is not a string")))?;
        if file.contains('/') || file.contains('\\') || file.contains("..") {
            return Err(Error::format(
                path,
                format!("shard name {file:?} is not a plain file name"),
            ));
        }
        match shards.iter_mut().find(|(f, _)| f == file) {
            Some((_, Some(names))) => names.push(tensor.clone()),
            _ => shards.push((file.to_string(), Some(vec![tensor.clone()]))),
        }
    }
    if shards.is_empty() {
        return Err(Error::format(path, "weight_map is empty"));
    }
    Ok(shards)
}

fn open_shard(path: &Path, residence: Residence) -> Result<Storage> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len < 8 {
        return Err(Error::format(
            path,
            format!("file is {len} bytes, shorter than the 8-byte header length"),
        ));
    }
    match residence {
        Residence::Mapped => {
            // SAFETY: the map is read-only and lives as long as the tensors that borrow from it
            // (they hold an Arc). Like every mmap-based loader we assume the file is not truncated or
            // rewritten while the model is loaded; that is documented on `Model::load`, with the
            // copying load as the alternative.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            Ok(Storage::Mapped(Arc::new(map)))
        }
        Residence::Copied => {
            let len = usize::try_from(len)
                .map_err(|_| Error::format(path, format!("file of {len} bytes is too large")))?;
            // u64 words keep every tensor's start as aligned as the file allows.
            let mut words: Vec<u64> = Vec::new();
            words.try_reserve_exact(len.div_ceil(8)).map_err(|_| {
                Error::format(path, format!("cannot allocate {len} bytes to copy it"))
            })?;
            words.resize(len.div_ceil(8), 0);
            let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..len];
            std::io::Read::read_exact(&mut file, bytes).map_err(|e| Error::io(path, e))?;
            Ok(Storage::Heap(Arc::new(words), len))
        }
    }
}

/// Parses and validates the header of one shard (header length, JSON, offsets inside the file and
/// not overlapping, sizes consistent with shapes), returning a view per tensor.
fn read_shard(path: &Path, shard: &Storage) -> Result<Vec<Tensor>> {
    let bytes = shard.bytes();
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| Error::format(path, describe_safetensors_error(&e)))?;
    let base = bytes.as_ptr() as usize;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let start = data.as_ptr() as usize - base;
        let dtype = DType::from_safetensors(view.dtype());
        out.push(Tensor::new(
            &name,
            dtype,
            view.shape().to_vec(),
            shard,
            start..start + data.len(),
        ));
    }
    Ok(out)
}

fn describe_safetensors_error(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooLarge => "header length is larger than allowed".into(),
        E::HeaderTooSmall => "header is too small".into(),
        E::InvalidHeaderLength => {
            "header length points past the end of the file (truncated?)".into()
        }
        E::InvalidHeader | E::InvalidHeaderStart | E::InvalidHeaderDeserialization => {
            format!("header is not valid JSON: {e}")
        }
        E::InvalidOffset(name) => {
            format!("tensor {name} has offsets outside the file or overlapping another tensor")
        }
        E::MetadataIncompleteBuffer => {
            "data section does not match the header (truncated file?)".into()
        }
        E::TensorInvalidInfo => "a tensor's shape and byte size disagree".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file: the header JSON padded with `pad` spaces, then `data`.
    fn safetensors(header: &str, pad: usize, data: &[u8]) -> Vec<u8> {
        let header = format!("{header}{}", " ".repeat(pad));
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    const HEADER: &str = r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}}"#;

    fn data() -> Vec<u8> {
        let mut d: Vec<u8> = [1.0f32, -2.0, 0.5, 8.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        for v in [1.5f32, -0.25, 3.0] {
            d.extend_from_slice(&half::bf16::from_f32(v).to_bits().to_le_bytes());
        }
        d
    }

    #[test]
    fn copied_shards_read_every_tensor_aligned_or_not() {
        // Padding 0..8: the data starts at every alignment, so some tensors are read in place and
        // others copied to aligned memory (Tensor::new).
        for pad in 0..8 {
            let dir = tempfile::tempdir().unwrap();
            let file = safetensors(HEADER, pad, &data());
            std::fs::write(dir.path().join(SINGLE_FILE), &file).unwrap();
            let ck = Checkpoint::open_with(dir.path(), Residence::Copied).unwrap();
            assert_eq!(ck.mapped_bytes(), file.len());
            assert_eq!(ck.names().count(), 2);
            let a = ck.get("a").unwrap();
            assert_eq!((a.dtype(), a.shape()), (DType::F32, &[2, 2][..]));
            assert_eq!(a.to_f32_vec().unwrap(), [1.0, -2.0, 0.5, 8.0]);
            let b = ck.get("b").unwrap();
            assert_eq!(b.shape(), &[3]);
            assert_eq!(b.to_f32_vec().unwrap(), [1.5, -0.25, 3.0]);
            assert!(!a.is_mapped());
        }
    }

    #[test]
    fn copied_shards_of_an_index_are_checked_against_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s1.safetensors"),
            safetensors(HEADER, 2, &data()),
        )
        .unwrap();
        let index = |files: &str| format!(r#"{{"weight_map":{{{files}}}}}"#);
        let path = dir.path().join(INDEX_FILE);
        std::fs::write(&path, index(r#""a":"s1.safetensors","b":"s1.safetensors""#)).unwrap();
        let ck = Checkpoint::open_with(dir.path(), Residence::Copied).unwrap();
        assert_eq!(
            ck.get("b").unwrap().to_f32_vec().unwrap(),
            [1.5, -0.25, 3.0]
        );
        // A tensor the index places in a shard that lacks it; a shard that is not there.
        std::fs::write(&path, index(r#""a":"s1.safetensors","c":"s1.safetensors""#)).unwrap();
        let err = Checkpoint::open_with(dir.path(), Residence::Copied).unwrap_err();
        assert!(err.to_string().contains("lacks"), "{err}");
        std::fs::write(&path, index(r#""a":"s2.safetensors""#)).unwrap();
        assert!(matches!(
            Checkpoint::open_with(dir.path(), Residence::Copied),
            Err(Error::NotFound(_))
        ));
        std::fs::write(&path, index(r#""a":"../s1.safetensors""#)).unwrap();
        assert!(matches!(
            Checkpoint::open_with(dir.path(), Residence::Copied),
            Err(Error::Format { .. })
        ));
    }

    #[test]
    fn malformed_copied_shards_are_format_errors() {
        let good = safetensors(HEADER, 0, &data());
        let past_end = HEADER.replace("[16,22]", "[16,24]");
        let overlap = HEADER.replace("[16,22]", "[10,16]");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("shorter than the length", good[..5].to_vec()),
            ("truncated data", good[..good.len() - 1].to_vec()),
            ("header length past the end", {
                let mut f = good.clone();
                f[..8].copy_from_slice(&u64::MAX.to_le_bytes());
                f
            }),
            ("garbage header", safetensors("{not json", 0, &data())),
            ("offsets past the end", safetensors(&past_end, 0, &data())),
            ("overlapping tensors", safetensors(&overlap, 0, &data())),
        ];
        for (what, file) in cases {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(SINGLE_FILE), &file).unwrap();
            match Checkpoint::open_with(dir.path(), Residence::Copied) {
                Err(Error::Format { message, .. }) => assert!(!message.is_empty(), "{what}"),
                other => panic!("{what}: {other:?}"),
            }
        }
    }
}
