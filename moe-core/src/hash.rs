//! A 64-bit FNV-1a style hash over 8-byte words: model fingerprints and snapshot checksums.
//!
//! Every step `h = (h ^ word) · P` is a bijection of the state, so any change confined to one word
//! (every single-bit flip) always changes the result; wider corruption collides with probability
//! about 2⁻⁶⁴. Not a cryptographic hash: it detects accidents, not forgeries.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// An incremental hash.
#[derive(Debug, Clone)]
pub(crate) struct Hasher64 {
    h: u64,
    /// Bytes of an unfinished word.
    pending: [u8; 8],
    n_pending: usize,
}

impl Default for Hasher64 {
    fn default() -> Self {
        Hasher64 {
            h: OFFSET,
            pending: [0; 8],
            n_pending: 0,
        }
    }
}

impl Hasher64 {
    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(PRIME);
    }

    /// Feeds `bytes` (the result depends only on the concatenation of everything fed).
    pub(crate) fn update(&mut self, mut bytes: &[u8]) {
        if self.n_pending > 0 {
            let take = (8 - self.n_pending).min(bytes.len());
            self.pending[self.n_pending..self.n_pending + take].copy_from_slice(&bytes[..take]);
            self.n_pending += take;
            bytes = &bytes[take..];
            if self.n_pending < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.pending));
            self.n_pending = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.n_pending = rest.len();
    }

    /// The hash of everything fed (the length is mixed in, so zero padding cannot collide).
    pub(crate) fn finish(&self) -> u64 {
        let mut h = self.clone();
        if h.n_pending > 0 {
            let mut last = [0u8; 8];
            last[..h.n_pending].copy_from_slice(&h.pending[..h.n_pending]);
            h.word(u64::from_le_bytes(last));
        }
        h.word(0x80 | h.n_pending as u64);
        h.h
    }
}

/// The hash of `bytes`.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h = Hasher64::default();
    h.update(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_equals_whole_and_every_bit_flip_changes_it() {
        let data: Vec<u8> = (0..203u32).map(|i| (i * 37 % 251) as u8).collect();
        let whole = hash64(&data);
        let mut inc = Hasher64::default();
        for part in data.chunks(5) {
            inc.update(part);
        }
        assert_eq!(inc.finish(), whole);
        for i in 0..data.len() {
            for b in 0..8 {
                let mut d = data.clone();
                d[i] ^= 1 << b;
                assert_ne!(hash64(&d), whole, "flip at byte {i} bit {b}");
            }
        }
        assert_ne!(hash64(&data[..202]), whole);
        assert_ne!(hash64(&[0]), hash64(&[]));
    }
}
