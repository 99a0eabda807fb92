//! The panic boundary every export runs inside: a panic never unwinds into C; it becomes
//! `MOE_ERR_PANIC` (or the call's documented failure value) with a message.

use std::any::Any;
use std::ffi::c_char;

use crate::last_error::set_last_error;
use crate::status::moe_status;

/// What an export returns when its body panicked.
pub trait OnPanic {
    fn on_panic() -> Self;
}

impl OnPanic for moe_status {
    fn on_panic() -> Self {
        moe_status::MOE_ERR_PANIC
    }
}

impl OnPanic for () {
    fn on_panic() -> Self {}
}

impl OnPanic for bool {
    fn on_panic() -> Self {
        false
    }
}

impl OnPanic for u32 {
    fn on_panic() -> Self {
        0
    }
}

impl OnPanic for usize {
    fn on_panic() -> Self {
        0
    }
}

impl OnPanic for *const c_char {
    fn on_panic() -> Self {
        std::ptr::null()
    }
}

/// Records a caught panic as this thread's last error.
pub fn record_panic(payload: Box<dyn Any + Send>) {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".into());
    set_last_error(&format!("internal error (panic): {what}"));
}

/// Runs the body of an `extern "C"` function, turning a panic into the return type's `OnPanic` value,
/// or into the value given with `on_panic = EXPR;` (which must not panic itself).
macro_rules! ffi_boundary {
    (on_panic = $fallback:expr; $($body:tt)*) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(value) => value,
            Err(payload) => {
                $crate::boundary::record_panic(payload);
                $fallback
            }
        }
    };
    ($($body:tt)*) => {
        $crate::boundary::ffi_boundary!(on_panic = $crate::boundary::OnPanic::on_panic(); $($body)*)
    };
}
pub(crate) use ffi_boundary;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::last_error::last_error_ptr as moe_last_error;
    use std::ffi::CStr;

    extern "C" fn panics(n: u32) -> moe_status {
        ffi_boundary! {
            if n > 0 {
                panic!("boom {n}");
            }
            moe_status::MOE_OK
        }
    }

    extern "C" fn panics_in_getter() -> usize {
        ffi_boundary! { let v: Vec<usize> = Vec::new(); v[3] }
    }

    extern "C" fn panics_with_fallback() -> *const c_char {
        ffi_boundary! { on_panic = c"fallback".as_ptr(); panic!("x") }
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        assert_eq!(panics(0), moe_status::MOE_OK);
        assert_eq!(panics(7), moe_status::MOE_ERR_PANIC);
        // SAFETY: moe_last_error returns a valid NUL-terminated string; copied at once.
        let msg = unsafe { CStr::from_ptr(moe_last_error()) }.to_string_lossy();
        assert!(msg.contains("boom 7"), "{msg}");
        assert_eq!(panics_in_getter(), 0);
        // SAFETY: as above.
        let msg = unsafe { CStr::from_ptr(moe_last_error()) }.to_string_lossy();
        assert!(msg.contains("index out of bounds"), "{msg}");
        // SAFETY: the fallback is a static NUL-terminated string.
        let s = unsafe { CStr::from_ptr(panics_with_fallback()) };
        assert_eq!(s, c"fallback");
    }
}
