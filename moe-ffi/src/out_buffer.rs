//! Caller buffers that may be too short: the llama.h convention over a status. A short buffer answers
//! `MOE_ERR_BUFFER_TOO_SMALL` and writes the size needed to the length out-parameter (and nothing
//! else), so the caller can grow the buffer and call again; `NULL` with capacity 0 asks for the size.

use std::ffi::c_char;

use crate::args::{array_out, out_ptr, write_out};
use crate::last_error::{FfiError, FfiResult};
use crate::status::moe_status;

fn too_small(what: &str, needed: usize, capacity: usize) -> FfiError {
    FfiError::new(
        moe_status::MOE_ERR_BUFFER_TOO_SMALL,
        format!("{what} needs {needed} elements, the buffer holds {capacity}"),
    )
}

/// Copies `text` and a terminating NUL into `buf` (`capacity` bytes) and its length without the NUL
/// into `*len`. When `capacity <= text.len()`, writes only `*len` (the text's length; the buffer needs
/// one byte more) and fails with `MOE_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `buf` must be NULL or valid for `capacity` byte writes; `len` NULL or valid for one write.
pub unsafe fn write_text(
    text: &str,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> FfiResult<()> {
    let len = out_ptr(len, "text_len")?;
    if capacity <= text.len() {
        // SAFETY: checked by `out_ptr`; the needed size is the documented output of a short buffer.
        unsafe { write_out(len, text.len()) };
        return Err(too_small(
            "the text (with its NUL)",
            text.len() + 1,
            capacity,
        ));
    }
    // SAFETY: forwarded caller promise; NULL and alignment are checked.
    let out = unsafe { array_out(buf.cast::<u8>(), capacity, "text") }?;
    out[..text.len()].copy_from_slice(text.as_bytes());
    out[text.len()] = 0;
    // SAFETY: checked by `out_ptr`.
    unsafe { write_out(len, text.len()) };
    Ok(())
}

/// Copies `ids` into `buf` (`capacity` ids) and their number into `*n`. When `capacity < ids.len()`,
/// writes only `*n` (the number needed) and fails with `MOE_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `buf` must be NULL or valid for `capacity` writes; `n` NULL or valid for one write.
pub unsafe fn write_ids(
    ids: &[u32],
    buf: *mut u32,
    capacity: usize,
    n: *mut usize,
) -> FfiResult<()> {
    let n = out_ptr(n, "n_tokens")?;
    if capacity < ids.len() {
        // SAFETY: checked by `out_ptr`; the needed size is the documented output of a short buffer.
        unsafe { write_out(n, ids.len()) };
        return Err(too_small("the token ids", ids.len(), capacity));
    }
    // SAFETY: forwarded caller promise; NULL and alignment are checked.
    let out = unsafe { array_out(buf, capacity, "tokens") }?;
    out[..ids.len()].copy_from_slice(ids);
    // SAFETY: checked by `out_ptr`.
    unsafe { write_out(n, ids.len()) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_buffers_report_the_size_needed_and_stay_untouched() {
        let mut buf = [b'x' as c_char; 6];
        let mut len = 99;
        // SAFETY: `buf` holds 6 bytes; `len` is writable.
        let e = unsafe { write_text("hello", buf.as_mut_ptr(), 5, &mut len) }.unwrap_err();
        assert_eq!(e.status, moe_status::MOE_ERR_BUFFER_TOO_SMALL);
        assert_eq!(len, 5);
        assert!(buf.iter().all(|&c| c == b'x' as c_char));
        // SAFETY: NULL with capacity 0 only asks for the size.
        assert!(unsafe { write_text("hello", std::ptr::null_mut(), 0, &mut len) }.is_err());
        // SAFETY: as above.
        unsafe { write_text("hello", buf.as_mut_ptr(), 6, &mut len) }.unwrap();
        assert_eq!((len, buf[5]), (5, 0));
        // SAFETY: `len` NULL is refused.
        assert!(unsafe { write_text("", buf.as_mut_ptr(), 6, std::ptr::null_mut()) }.is_err());

        let mut ids = [7u32; 3];
        let mut n = 0;
        // SAFETY: `ids` holds 3; `n` is writable.
        let e = unsafe { write_ids(&[1, 2, 3, 4], ids.as_mut_ptr(), 3, &mut n) }.unwrap_err();
        assert_eq!(
            (e.status, n, ids),
            (moe_status::MOE_ERR_BUFFER_TOO_SMALL, 4, [7; 3])
        );
        // SAFETY: as above.
        unsafe { write_ids(&[1, 2], ids.as_mut_ptr(), 3, &mut n) }.unwrap();
        assert_eq!((n, ids), (2, [1, 2, 7]));
        // SAFETY: no ids: nothing to write, NULL is fine.
        unsafe { write_ids(&[], std::ptr::null_mut(), 0, &mut n) }.unwrap();
        assert_eq!(n, 0);
    }
}
