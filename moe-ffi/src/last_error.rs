//! The thread-local message of the last failed call, and the error type the exports return inside.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use crate::status::moe_status;

/// A failed call: the status the caller gets and the message `moe_last_error` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct FfiError {
    pub status: moe_status,
    pub message: String,
}

impl FfiError {
    pub fn new(status: moe_status, message: impl Into<String>) -> Self {
        FfiError {
            status,
            message: message.into(),
        }
    }

    /// A NULL pointer where argument `name` must point somewhere.
    pub fn null(name: &str) -> Self {
        Self::new(
            moe_status::MOE_ERR_NULL_ARGUMENT,
            format!("argument `{name}` is NULL"),
        )
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(moe_status::MOE_ERR_INVALID_ARGUMENT, message)
    }
}

impl From<moe_core::Error> for FfiError {
    fn from(e: moe_core::Error) -> Self {
        FfiError::new(moe_status::of(&e), e.to_string())
    }
}

pub type FfiResult<T> = Result<T, FfiError>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as this thread's last error (interior NULs are replaced so nothing is cut).
pub fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "\u{fffd}")).unwrap_or_default();
    // A thread being torn down has no slot any more; the message is then dropped.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = c);
}

/// Records `e` and returns its status.
pub fn fail(e: FfiError) -> moe_status {
    set_last_error(&e.message);
    e.status
}

/// Runs `f`: `MOE_OK` when it succeeds, otherwise records the error and returns its status.
pub fn status_of(f: impl FnOnce() -> FfiResult<()>) -> moe_status {
    match f() {
        Ok(()) => moe_status::MOE_OK,
        Err(e) => fail(e),
    }
}

/// Runs `f`: its value, or `fallback` after recording the error (for calls that return a value, not
/// a status).
pub fn value_or<T>(fallback: T, f: impl FnOnce() -> FfiResult<T>) -> T {
    f().unwrap_or_else(|e| {
        fail(e);
        fallback
    })
}

/// This thread's last error message, owned by the thread-local slot (valid until the next failure on
/// this thread); an empty string when there is none or the thread is being torn down.
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        // SAFETY: last_error_ptr returns a valid NUL-terminated string that lives until the next
        // failing call on this thread; it is copied at once.
        unsafe { CStr::from_ptr(last_error_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn message_is_per_thread_and_survives_success() {
        assert_eq!(last(), "");
        let s = fail(FfiError::invalid("bad\0thing"));
        assert_eq!(s, moe_status::MOE_ERR_INVALID_ARGUMENT);
        assert_eq!(last(), "bad\u{fffd}thing");
        assert_eq!(status_of(|| Ok(())), moe_status::MOE_OK);
        assert_eq!(value_or(3, || Err(FfiError::invalid("again"))), 3);
        assert_eq!(last(), "again");
        assert_eq!(value_or(3, || Ok(4)), 4);
        assert_eq!(last(), "again");
        let other = std::thread::spawn(last).join().unwrap();
        assert_eq!(other, "");
    }
}
