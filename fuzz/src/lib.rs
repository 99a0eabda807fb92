//! Helpers shared by the fuzz targets: splitting one input into several files, and a scratch
//! directory per process (in `/dev/shm` when it is writable) that the targets write those files to.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Separates the files packed into one fuzz input (chosen so that it does not occur in JSON nor in
/// the 8-byte length prefix of a safetensors header).
pub const SEPARATOR: &[u8] = b"\n@@moe-fuzz@@\n";

/// Splits `data` at every [`SEPARATOR`].
pub fn split_sections(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(at) = find(rest, SEPARATOR) {
        out.push(&rest[..at]);
        rest = &rest[at + SEPARATOR.len()..];
    }
    out.push(rest);
    out
}

/// The first occurrence of `needle` in `hay`. Compares byte by byte on purpose: a slice comparison
/// would call `memcmp`, which libFuzzer intercepts and traces, a quarter of the loader's time.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let last_start = hay.len().checked_sub(needle.len())?;
    (0..=last_start)
        .find(|&i| hay[i] == first && rest.iter().zip(&hay[i + 1..]).all(|(a, b)| a == b))
}

/// Joins files into one input (the inverse of [`split_sections`]), for seed generators.
pub fn join_sections(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(SEPARATOR)
}

/// A directory owned by this process: `<base>/moe-fuzz-<name>-<pid>`, emptied on each [`reset`].
/// Directories of processes that no longer run are removed when a new one is made.
///
/// [`reset`]: Scratch::reset
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// Creates (or empties) this process's scratch directory for target `name`.
    pub fn new(name: &str) -> Scratch {
        let base = base_dir();
        remove_stale(&base);
        let dir = base.join(format!("moe-fuzz-{name}-{}", std::process::id()));
        let scratch = Scratch { dir };
        scratch.reset();
        scratch
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes everything in the directory and makes it again, empty.
    pub fn reset(&self) {
        // A missing directory is what we want; any other failure shows in create_dir_all.
        let _ = fs::remove_dir_all(&self.dir);
        fs::create_dir_all(&self.dir).expect("cannot create the fuzz scratch directory");
    }

    /// Removes the files `names` from the directory (cheaper than [`reset`](Scratch::reset) when
    /// the caller knows what it wrote); missing files are fine.
    pub fn remove(&self, names: &[String]) {
        for name in names {
            let _ = fs::remove_file(self.dir.join(name));
        }
    }

    /// Writes `bytes` to `name` in the directory, then extends the file with `zeros` zero bytes
    /// (a sparse extension: cheap for large tensor data).
    pub fn write(&self, name: &str, bytes: &[u8], zeros: u64) -> PathBuf {
        let path = self.dir.join(name);
        let mut f = fs::File::create(&path).expect("cannot create a fuzz scratch file");
        f.write_all(bytes)
            .expect("cannot write a fuzz scratch file");
        if zeros > 0 {
            f.set_len(bytes.len() as u64 + zeros)
                .expect("cannot extend a fuzz scratch file");
        }
        path
    }
}

fn base_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let probe = shm.join(format!("moe-fuzz-probe-{}", std::process::id()));
    if fs::create_dir_all(&probe).is_ok() {
        let _ = fs::remove_dir(&probe);
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Removes `moe-fuzz-*-<pid>` directories under `base` whose process is gone (Linux: no
/// `/proc/<pid>`; elsewhere nothing is removed).
fn remove_stale(base: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("moe-fuzz-") {
            continue;
        }
        let Some(pid) = name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// A file name that is safe to create inside the scratch directory: a plain name of at most 64
/// bytes, not hidden, not one of `reserved`; otherwise `None`.
pub fn plain_file_name<'a>(raw: &'a [u8], reserved: &[&str]) -> Option<&'a str> {
    let name = std::str::from_utf8(raw).ok()?;
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && !reserved.contains(&name);
    ok.then_some(name)
}

/// Reads typed values off the front of a fuzz input; once it is used up, every read gives zero.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next `n` bytes (fewer when fewer are left).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let b = self.bytes(N);
        out[..b.len()].copy_from_slice(b);
        out
    }

    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// Any `f32` bit pattern: NaNs, infinities and subnormals included.
    pub fn f32(&mut self) -> f32 {
        f32::from_bits(self.u32())
    }

    /// A length in `0..=max`.
    pub fn len(&mut self, max: usize) -> usize {
        usize::from(self.u16()) % (max + 1)
    }

    /// An `f32` that is usually an ordinary number near the interesting ranges of a sampling
    /// parameter and sometimes any bit pattern.
    pub fn param(&mut self) -> f32 {
        match self.u8() % 4 {
            0 => self.f32(),
            1 => f32::from(self.u8()) / 100.0,
            2 => f32::from(self.u16()) / 1000.0 - 1.0,
            _ => [
                0.0,
                1.0,
                -0.0,
                f32::NAN,
                f32::INFINITY,
                -1.0,
                f32::MIN_POSITIVE,
            ][usize::from(self.u8() % 7)],
        }
    }
}

/// Lets panics raised inside the `tokenizers` crate unwind to moe-core, which catches them and
/// returns `Error::Tokenizer` (that crate panics on some malformed files instead of failing);
/// every other panic still aborts the process as libFuzzer's hook makes it, and so is a finding.
/// Call at the start of each execution; it installs the hook once.
pub fn let_caught_dependency_panics_unwind() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_tokenizers = info
                .location()
                .is_some_and(|l| l.file().contains("/tokenizers-"));
            if !in_tokenizers {
                fuzzer_hook(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_round_trip() {
        let parts: [&[u8]; 3] = [b"{\"a\":1}", b"", b"\x08\0\0\0\0\0\0\0{}      "];
        let joined = join_sections(&parts);
        assert_eq!(split_sections(&joined), parts.to_vec());
        assert_eq!(split_sections(b"abc"), vec![&b"abc"[..]]);
        let sep_only = split_sections(SEPARATOR);
        assert_eq!(sep_only, vec![&b""[..], &b""[..]]);
        assert_eq!(find(b"xx\n@@moe-fuzz@", SEPARATOR), None);
    }

    #[test]
    fn reader_reads_little_endian_then_zeros() {
        let mut r = Reader::new(&[1, 2, 0, 0, 0, 9]);
        assert_eq!(r.u8(), 1);
        assert_eq!(r.u32(), 2);
        assert_eq!(r.u16(), 9);
        assert!(r.is_empty());
        assert_eq!(r.u64(), 0);
        assert_eq!(r.len(10), 0);
    }

    #[test]
    fn file_names_stay_inside() {
        assert_eq!(
            plain_file_name(b"a.safetensors", &[]),
            Some("a.safetensors")
        );
        assert_eq!(plain_file_name(b"../x", &[]), None);
        assert_eq!(plain_file_name(b"..", &[]), None);
        assert_eq!(plain_file_name(b"x/y", &[]), None);
        assert_eq!(plain_file_name(b"config.json", &["config.json"]), None);
        assert_eq!(plain_file_name(&[b'a'; 65], &[]), None);
    }
}
