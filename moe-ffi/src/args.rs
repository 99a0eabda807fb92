//! Checked views of raw C arguments: arrays, output buffers, out-pointers and strings.

use std::ffi::{c_char, CStr};
use std::path::PathBuf;

use crate::last_error::{FfiError, FfiResult};

fn check_array<T>(ptr: *const T, len: usize, arg: &str) -> FfiResult<()> {
    if ptr.is_null() {
        return Err(FfiError::null(arg));
    }
    if !ptr.is_aligned() {
        return Err(FfiError::invalid(format!(
            "argument `{arg}` is not aligned for its element type"
        )));
    }
    if len
        .checked_mul(size_of::<T>())
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return Err(FfiError::invalid(format!(
            "argument `{arg}`: length {len} is too large"
        )));
    }
    Ok(())
}

/// `len` elements at `ptr` for reading; `len == 0` needs no pointer.
///
/// # Safety
/// When `len > 0` and `ptr` is not NULL, `ptr` must point to `len` initialised `T` that are not
/// written during the borrow.
pub unsafe fn array_in<'a, T>(ptr: *const T, len: usize, arg: &str) -> FfiResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    check_array(ptr, len, arg)?;
    // SAFETY: non-NULL, aligned, size in range (checked above); validity is the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// `len` elements at `ptr` for writing; `len == 0` needs no pointer.
///
/// # Safety
/// When `len > 0` and `ptr` is not NULL, `ptr` must point to `len` writable `T` not otherwise
/// accessed during the borrow.
pub unsafe fn array_out<'a, T>(ptr: *mut T, len: usize, arg: &str) -> FfiResult<&'a mut [T]> {
    if len == 0 {
        return Ok(&mut []);
    }
    check_array(ptr, len, arg)?;
    // SAFETY: as in `array_in`, with exclusive access promised by the caller.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Checks an out-pointer before any work is done, so that a failing call leaves it untouched.
pub fn out_ptr<T>(ptr: *mut T, arg: &str) -> FfiResult<*mut T> {
    if ptr.is_null() {
        return Err(FfiError::null(arg));
    }
    if !ptr.is_aligned() {
        return Err(FfiError::invalid(format!(
            "argument `{arg}` is not aligned"
        )));
    }
    Ok(ptr)
}

/// Writes the result of a successful call through a pointer checked by [`out_ptr`].
///
/// # Safety
/// `ptr` must be valid for a write of `T` (it came from `out_ptr`, so it is non-NULL and aligned).
pub unsafe fn write_out<T>(ptr: *mut T, value: T) {
    // SAFETY: non-NULL and aligned (checked by `out_ptr`); writable by the caller's promise. `write`
    // does not drop the (possibly uninitialised) old value.
    unsafe { ptr.write(value) }
}

/// A NUL-terminated path argument.
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string.
pub unsafe fn path_arg(ptr: *const c_char, arg: &str) -> FfiResult<PathBuf> {
    if ptr.is_null() {
        return Err(FfiError::null(arg));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's promise.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    if bytes.is_empty() {
        return Err(FfiError::invalid(format!("argument `{arg}` is empty")));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(std::ffi::OsStr::from_bytes(bytes).into())
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes)
            .map(PathBuf::from)
            .map_err(|_| FfiError::invalid(format!("argument `{arg}` is not UTF-8")))
    }
}

/// `len` bytes of UTF-8 text at `ptr` (not necessarily NUL-terminated); `len == 0` needs no pointer.
///
/// # Safety
/// When `len > 0` and `ptr` is not NULL, `ptr` must point to `len` readable bytes.
pub unsafe fn text_arg<'a>(ptr: *const c_char, len: usize, arg: &str) -> FfiResult<&'a str> {
    // SAFETY: forwarded caller promise.
    let bytes = unsafe { array_in(ptr.cast::<u8>(), len, arg) }?;
    std::str::from_utf8(bytes)
        .map_err(|e| FfiError::invalid(format!("argument `{arg}` is not valid UTF-8: {e}")))
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string that outlives the borrow.
pub unsafe fn cstr_arg<'a>(ptr: *const c_char, arg: &str) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return Err(FfiError::null(arg));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's promise.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|e| FfiError::invalid(format!("argument `{arg}` is not valid UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::moe_status;

    #[test]
    fn arrays_need_a_pointer_only_when_non_empty() {
        // SAFETY: len 0 never dereferences.
        assert!(unsafe { array_in::<u32>(std::ptr::null(), 0, "a") }
            .unwrap()
            .is_empty());
        // SAFETY: NULL with len > 0 is refused before use.
        let e = unsafe { array_in::<u32>(std::ptr::null(), 3, "a") }.unwrap_err();
        assert_eq!(e.status, moe_status::MOE_ERR_NULL_ARGUMENT);
        let v = [1u32, 2, 3];
        // SAFETY: `v` holds 3 elements.
        assert_eq!(unsafe { array_in(v.as_ptr(), 3, "a") }.unwrap(), &v);
        // One byte past a u32-aligned buffer: never 4-aligned, wherever the buffer lands.
        let words = [0u32; 4];
        let misaligned = (words.as_ptr() as *const u8).wrapping_add(1) as *const u32;
        // SAFETY: refused before use.
        let e = unsafe { array_in(misaligned, 2, "a") }.unwrap_err();
        assert_eq!(e.status, moe_status::MOE_ERR_INVALID_ARGUMENT);
        // SAFETY: refused before use (length overflows).
        assert!(unsafe { array_in(v.as_ptr(), usize::MAX / 2, "a") }.is_err());
    }

    #[test]
    fn text_must_be_utf8() {
        let bad = [b'a', 0xff];
        // SAFETY: literal arrays of the stated lengths; NUL-terminated C literals.
        unsafe {
            assert_eq!(text_arg(c"ab".as_ptr(), 2, "t").unwrap(), "ab");
            assert_eq!(text_arg(std::ptr::null(), 0, "t").unwrap(), "");
            assert!(text_arg(bad.as_ptr().cast(), 2, "t").is_err());
            assert_eq!(cstr_arg(c"\u{e9}".as_ptr(), "t").unwrap(), "\u{e9}");
            assert!(cstr_arg(std::ptr::null(), "t").is_err());
            assert!(cstr_arg(c"\xff".as_ptr(), "t").is_err());
        }
    }

    #[test]
    fn paths_must_be_non_null_and_non_empty() {
        // SAFETY: NULL is refused; literals are NUL-terminated.
        unsafe {
            assert!(path_arg(std::ptr::null(), "p").is_err());
            assert!(path_arg(c"".as_ptr(), "p").is_err());
            assert_eq!(
                path_arg(c"a/b".as_ptr(), "p").unwrap(),
                PathBuf::from("a/b")
            );
        }
    }
}
