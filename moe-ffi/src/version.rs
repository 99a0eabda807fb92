//! The library version, from Cargo.toml. The header's `MOE_VERSION_*` macros are generated from the
//! same numbers by `moe-ffi/gen-header.sh`; a test checks that they agree.

use std::ffi::{c_char, CStr};

use crate::boundary::ffi_boundary;

const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => panic!("the package version contains a NUL byte"),
    };

/// The version of the library actually linked, "MAJOR.MINOR.PATCH" (compare with
/// `MOE_VERSION_STRING`, the version of the header compiled against).
///
/// Ownership: static; do not free. Thread-safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn moe_version() -> *const c_char {
    ffi_boundary! { on_panic = VERSION.as_ptr(); VERSION.as_ptr() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_package_version() {
        // SAFETY: a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(moe_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
