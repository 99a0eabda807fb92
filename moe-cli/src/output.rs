//! Writing to stdout: a reader that stops early (`moe run | head`) closes the pipe, which ends the
//! command quietly and successfully, as `cat` and `grep` do, instead of reporting an error.

use std::io;

/// Why a subcommand stopped before finishing its work.
#[derive(Debug)]
pub(crate) enum Stopped {
    /// Whoever read stdout closed it: nothing left to do, not a failure.
    ReaderGone,
    /// A real failure, with its message.
    Failed(String),
}

impl From<String> for Stopped {
    fn from(message: String) -> Self {
        Stopped::Failed(message)
    }
}

impl From<&str> for Stopped {
    fn from(message: &str) -> Self {
        Stopped::Failed(message.to_owned())
    }
}

impl From<io::Error> for Stopped {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Stopped::ReaderGone
        } else {
            Stopped::Failed(format!("writing to stdout: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_not_a_failure_but_other_write_errors_are() {
        let gone = Stopped::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(matches!(gone, Stopped::ReaderGone));
        let full = Stopped::from(io::Error::from(io::ErrorKind::StorageFull));
        assert!(matches!(full, Stopped::Failed(m) if m.contains("stdout")));
    }
}
