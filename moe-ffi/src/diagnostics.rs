//! The two exports that describe failures: `moe_last_error` (this thread's last message) and
//! `moe_status_str` (a status's static description).

use std::ffi::c_char;

use crate::boundary::ffi_boundary;
use crate::last_error::last_error_ptr;
use crate::status::{moe_status_arg, ALL_STATUSES};

/// A message describing the last failed call on the calling thread; an empty string when no call
/// on this thread has failed yet. Successful calls leave it unchanged.
///
/// Ownership: the string belongs to the library and stays valid until the next failing call on the
/// same thread (or the thread's exit); copy it to keep it. Never NULL. Thread-safety: each thread has
/// its own message.
#[no_mangle]
pub extern "C" fn moe_last_error() -> *const c_char {
    ffi_boundary! {
        on_panic = c"".as_ptr();
        last_error_ptr()
    }
}

/// A short, static, English description of `status` (never NULL; "unknown status" for values this
/// version does not define).
///
/// Ownership: the string is static; do not free it. Thread-safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn moe_status_str(status: moe_status_arg) -> *const c_char {
    ffi_boundary! {
        on_panic = c"unknown status".as_ptr();
        let text = ALL_STATUSES
            .iter()
            .find(|s| **s as u32 == status)
            .map_or(c"unknown status", |s| s.text());
        text.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn values_are_dense_distinct_and_described() {
        for (i, s) in ALL_STATUSES.iter().enumerate() {
            assert_eq!(*s as usize, i, "{s:?}");
            // SAFETY: moe_status_str returns a pointer to a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(moe_status_str(*s as u32)) };
            assert_ne!(text, c"unknown status");
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(moe_status_str(ALL_STATUSES.len() as u32)) };
        assert_eq!(unknown, c"unknown status");
    }
}
