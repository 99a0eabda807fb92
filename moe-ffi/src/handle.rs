//! Opaque handles: boxed objects whose addresses are recorded in a registry while they live, so that
//! a freed, foreign or wrong-kind pointer is answered with `MOE_ERR_INVALID_HANDLE` instead of being
//! dereferenced.
//!
//! The check is best effort: once freed memory is reused for a new object of the same kind, a stale
//! pointer names that new object. It never makes using a freed handle correct; it makes it loud.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::last_error::{FfiError, FfiResult};
use crate::status::moe_status;

/// The kinds of object handed to C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Model,
    Session,
    Sampler,
}

/// A type handed to C as an opaque pointer.
pub trait Handle: Sized {
    const KIND: Kind;
    /// The C type name, for messages.
    const NAME: &'static str;
}

static LIVE: Mutex<BTreeMap<usize, Kind>> = Mutex::new(BTreeMap::new());

fn live() -> MutexGuard<'static, BTreeMap<usize, Kind>> {
    // The map is consistent after every operation, so a poisoned lock is still usable.
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Moves `value` to the heap and returns its handle.
pub fn register<T: Handle>(value: T) -> *mut T {
    let ptr = Box::into_raw(Box::new(value));
    live().insert(ptr as usize, T::KIND);
    ptr
}

fn check<T: Handle>(ptr: *const T, arg: &str) -> FfiResult<()> {
    if ptr.is_null() {
        return Err(FfiError::null(arg));
    }
    check_in(&live(), ptr, arg)
}

/// Whether the registry `map` holds `ptr` as a `T`.
fn check_in<T: Handle>(map: &BTreeMap<usize, Kind>, ptr: *const T, arg: &str) -> FfiResult<()> {
    let message = match map.get(&(ptr as usize)) {
        Some(k) if *k == T::KIND => return Ok(()),
        Some(k) => format!("argument `{arg}` is a {k:?} handle, not a {}", T::NAME),
        None => format!(
            "argument `{arg}` is not a live {} (already freed, or never created by this library)",
            T::NAME
        ),
    };
    Err(FfiError::new(moe_status::MOE_ERR_INVALID_HANDLE, message))
}

/// A shared reference to the object behind a live handle.
///
/// # Safety
/// No other call may free the handle while the reference is used (the C contract: a handle is not
/// freed while another call uses it), and no `&mut` to it may be alive.
pub unsafe fn get<'a, T: Handle>(ptr: *const T, arg: &str) -> FfiResult<&'a T> {
    check(ptr, arg)?;
    // SAFETY: the registry says `ptr` came from `register::<T>` and has not been released, so it
    // points to a live, aligned `T`; the caller guarantees no conflicting access.
    Ok(unsafe { &*ptr })
}

/// An exclusive reference to the object behind a live handle.
///
/// # Safety
/// As for [`get`], and no other reference to the object may be used meanwhile (the C contract: a
/// session or sampler is used by one thread at a time).
pub unsafe fn get_mut<'a, T: Handle>(ptr: *mut T, arg: &str) -> FfiResult<&'a mut T> {
    check(ptr, arg)?;
    // SAFETY: as in `get`; exclusivity is the caller's promise.
    Ok(unsafe { &mut *ptr })
}

/// Frees the object behind `ptr`. NULL is a no-op; a pointer that is not a live `T` is left alone
/// and reported as an error.
///
/// # Safety
/// No other call may use the handle concurrently.
pub unsafe fn release<T: Handle>(ptr: *mut T, arg: &str) -> FfiResult<()> {
    if ptr.is_null() {
        return Ok(());
    }
    {
        let mut map = live();
        check_in(&map, ptr, arg)?;
        map.remove(&(ptr as usize));
    }
    // SAFETY: `ptr` was produced by `Box::into_raw` in `register::<T>` and has just been removed from
    // the registry, so this is the only release of it.
    drop(unsafe { Box::from_raw(ptr) });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct A(#[allow(dead_code)] u64);
    impl Handle for A {
        const KIND: Kind = Kind::Model;
        const NAME: &'static str = "A";
    }
    struct B;
    impl Handle for B {
        const KIND: Kind = Kind::Sampler;
        const NAME: &'static str = "B";
    }

    #[test]
    fn freed_foreign_and_wrong_kind_pointers_are_refused() {
        let a = register(A(5));
        // SAFETY: `a` is live and used by this thread only.
        assert!(unsafe { get(a, "a") }.is_ok());
        let as_b = a as *mut B;
        // SAFETY: the registry refuses the wrong kind before any dereference.
        let e = unsafe { get(as_b, "b") }.err().unwrap();
        assert_eq!(e.status, moe_status::MOE_ERR_INVALID_HANDLE);
        // SAFETY: the registry refuses the wrong kind; nothing is freed.
        assert!(unsafe { release(as_b, "b") }.is_err());
        // SAFETY: `a` is live; released once.
        unsafe { release(a, "a") }.unwrap();
        // SAFETY: the registry refuses the stale pointer before any dereference.
        let e = unsafe { get(a, "a") }.err().unwrap();
        assert_eq!(e.status, moe_status::MOE_ERR_INVALID_HANDLE);
        // SAFETY: a second release is refused by the registry.
        assert!(unsafe { release(a, "a") }.is_err());
        // SAFETY: NULL is a no-op.
        assert!(unsafe { release(std::ptr::null_mut::<A>(), "a") }.is_ok());
        let foreign = Box::into_raw(Box::new(A(1)));
        // SAFETY: never registered: refused without dereference.
        assert!(unsafe { get(foreign, "a") }.is_err());
        // SAFETY: `foreign` came from Box::into_raw above.
        drop(unsafe { Box::from_raw(foreign) });
        // SAFETY: NULL is refused.
        let e = unsafe { get(std::ptr::null::<A>(), "x") }.err().unwrap();
        assert_eq!(e.status, moe_status::MOE_ERR_NULL_ARGUMENT);
    }

    #[test]
    fn threads_register_use_and_release_their_own_handles() {
        // Under Miri this also checks the registry for data races and the boxes for leaks.
        std::thread::scope(|s| {
            for t in 0..4u64 {
                s.spawn(move || {
                    let mine: Vec<*mut A> = (0..8).map(|i| register(A(t * 100 + i))).collect();
                    for (i, &h) in mine.iter().enumerate() {
                        // SAFETY: `h` is live and only this thread uses it.
                        let a = unsafe { get_mut(h, "a") }.unwrap();
                        assert_eq!(a.0, t * 100 + i as u64);
                        a.0 += 1000;
                        // SAFETY: as above; a wrong-kind view is refused before any dereference.
                        assert!(unsafe { get(h as *const B, "b") }.is_err());
                    }
                    for &h in &mine {
                        // SAFETY: `h` is live; released once, by its only user.
                        unsafe { release(h, "a") }.unwrap();
                    }
                });
            }
        });
    }
}
