//! The engine's log records reach a C callback set with `moe_log_set_callback`, up to its level, and
//! nothing is logged without one. (Its own test binary: the logger is process-wide.)

mod common;

use std::ffi::{c_char, c_void, CStr};
use std::sync::Mutex;

use common::{fixture, CModel};
use moe::moe_log_level::{self, *};
use moe::moe_status::*;

static RECORDS: Mutex<Vec<(u32, String, String)>> = Mutex::new(Vec::new());

unsafe extern "C" fn collect(
    level: moe_log_level,
    target: *const c_char,
    message: *const c_char,
    user: *mut c_void,
) {
    assert_eq!(user as usize, 42);
    // SAFETY: both strings are NUL-terminated and valid during the call.
    let (t, m) = unsafe { (CStr::from_ptr(target), CStr::from_ptr(message)) };
    RECORDS.lock().unwrap().push((
        level as u32,
        t.to_string_lossy().into_owned(),
        m.to_string_lossy().into_owned(),
    ));
}

fn taken() -> Vec<(u32, String, String)> {
    std::mem::take(&mut *RECORDS.lock().unwrap())
}

#[test]
fn records_go_to_the_callback_up_to_its_level() {
    let dir = fixture("mixtral");
    drop(CModel::load(&dir));
    assert!(taken().is_empty(), "silent without a callback");

    let user = 42usize as *mut c_void;
    // SAFETY: `collect` has the callback's signature and is thread-safe; `user` is only compared.
    unsafe {
        assert_eq!(
            moe::moe_log_set_callback(Some(collect), user, MOE_LOG_DEBUG as u32),
            MOE_OK
        );
    }
    let model = CModel::load(&dir);
    let got = taken();
    let loaded = got
        .iter()
        .find(|(l, t, m)| {
            *l == MOE_LOG_INFO as u32 && t == "moe_core::model" && m.contains("loaded")
        })
        .unwrap_or_else(|| panic!("no load record in {got:?}"));
    assert!(loaded.2.contains("mixtral"), "{loaded:?}");
    drop(model);

    // SAFETY: as above.
    unsafe {
        assert_eq!(
            moe::moe_log_set_callback(Some(collect), user, MOE_LOG_WARN as u32),
            MOE_OK
        );
    }
    drop(CModel::load(&dir));
    assert!(taken().is_empty(), "info records filtered out at warn");

    // SAFETY: a NULL callback turns logging off; 9 is refused before anything changes.
    unsafe {
        assert_eq!(
            moe::moe_log_set_callback(Some(collect), user, 9),
            MOE_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            moe::moe_log_set_callback(None, std::ptr::null_mut(), MOE_LOG_TRACE as u32),
            MOE_OK
        );
    }
    drop(CModel::load(&dir));
    assert!(taken().is_empty());
    let _: moe_log_level = MOE_LOG_OFF;
}
