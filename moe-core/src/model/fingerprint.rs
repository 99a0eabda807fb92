//! The model's fingerprint: a hash of its config and its checkpoint's tensor table (names, dtypes,
//! shapes), computed once at load. Session snapshots carry it so that one model's caches are never
//! restored into another.

use crate::config::ModelConfig;
use crate::hash::Hasher64;
use crate::weights::Checkpoint;

/// The fingerprint of `config` over `checkpoint`.
pub(crate) fn fingerprint(config: &ModelConfig, checkpoint: &Checkpoint) -> u64 {
    let mut h = Hasher64::default();
    h.update(format!("{config:?}").as_bytes());
    let mut names: Vec<&str> = checkpoint.names().collect();
    names.sort_unstable();
    for name in names {
        if let Some(t) = checkpoint.get(name) {
            h.update(format!("\n{name}\t{}\t{:?}", t.dtype(), t.shape()).as_bytes());
        }
    }
    h.finish()
}
