//! The engine's log records (the `log` facade) delivered to a C callback: silent until
//! `moe_log_set_callback` sets one.

use std::ffi::{c_char, c_void, CString};
use std::sync::RwLock;

use crate::boundary::ffi_boundary;
use crate::last_error::{status_of, FfiError};
use crate::status::moe_status;

/// Severity of a log record; also the most verbose level a callback receives.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum moe_log_level {
    /// No record (as a maximum: logging off).
    MOE_LOG_OFF = 0,
    /// Something failed.
    MOE_LOG_ERROR = 1,
    /// Something looks wrong.
    MOE_LOG_WARN = 2,
    /// What happens once: a model loaded (path, family, size, time).
    MOE_LOG_INFO = 3,
    /// Choices and progress: kernel level, thread pool, why a generation ended.
    MOE_LOG_DEBUG = 4,
    /// Everything.
    MOE_LOG_TRACE = 5,
}

/// The raw integer a C caller passes as a maximum `moe_log_level` (checked before use). Shown as
/// `moe_log_level` in the header.
#[allow(non_camel_case_types)]
pub type moe_log_level_arg = u32;

/// Receives one log record: its level, the engine module it comes from (`target`, e.g.
/// `moe_core::model`) and the message, both NUL-terminated and valid only during the call, and the
/// `user_data` given to `moe_log_set_callback`. It may be called from any thread, at the same time
/// on several, so it must be thread-safe; it must return normally and must not call
/// `moe_log_set_callback`.
#[allow(non_camel_case_types)]
pub type moe_log_fn = Option<
    unsafe extern "C" fn(
        level: moe_log_level,
        target: *const c_char,
        message: *const c_char,
        user_data: *mut c_void,
    ),
>;

/// The callback and its user data (kept as an address: the caller vouches for it on any thread).
struct Sink {
    f: unsafe extern "C" fn(moe_log_level, *const c_char, *const c_char, *mut c_void),
    user_data: usize,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

struct CLogger;

static LOGGER: CLogger = CLogger;

impl log::Log for CLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let Ok(sink) = SINK.read() else { return };
        let Some(sink) = sink.as_ref() else { return };
        let level = match record.level() {
            log::Level::Error => moe_log_level::MOE_LOG_ERROR,
            log::Level::Warn => moe_log_level::MOE_LOG_WARN,
            log::Level::Info => moe_log_level::MOE_LOG_INFO,
            log::Level::Debug => moe_log_level::MOE_LOG_DEBUG,
            log::Level::Trace => moe_log_level::MOE_LOG_TRACE,
        };
        let clean = |s: String| CString::new(s.replace('\0', "\u{fffd}")).unwrap_or_default();
        let target = clean(record.target().to_string());
        let message = clean(record.args().to_string());
        // SAFETY: the caller of `moe_log_set_callback` supplied `f` with this signature and vouches
        // for `user_data` on any thread; both strings live until the call returns.
        unsafe {
            (sink.f)(
                level,
                target.as_ptr(),
                message.as_ptr(),
                sink.user_data as *mut c_void,
            )
        }
    }

    fn flush(&self) {}
}

/// Sends the engine's log records up to `max_level` (a `moe_log_level`) to `callback` with
/// `user_data`; `callback` NULL (or `MOE_LOG_OFF`) turns logging off again, which is the default.
/// A later call replaces the earlier callback. Fails with `MOE_ERR_INVALID_ARGUMENT` for an unknown
/// level, or when the host program already installed its own Rust `log` logger (its records then go
/// there).
///
/// Thread-safety: may be called from any thread, but not from inside the callback.
///
/// # Safety
/// `callback` must be NULL or a function of that type, safe to call from any thread with
/// `user_data` until it is replaced.
#[no_mangle]
pub unsafe extern "C" fn moe_log_set_callback(
    callback: moe_log_fn,
    user_data: *mut c_void,
    max_level: moe_log_level_arg,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            let filter = match max_level {
                0 => log::LevelFilter::Off,
                1 => log::LevelFilter::Error,
                2 => log::LevelFilter::Warn,
                3 => log::LevelFilter::Info,
                4 => log::LevelFilter::Debug,
                5 => log::LevelFilter::Trace,
                other => {
                    return Err(FfiError::invalid(format!(
                        "max_level {other} is not a moe_log_level (0..=5)"
                    )))
                }
            };
            // The first call installs the forwarding logger for the process; installing fails only
            // when another logger is there, which is then left in charge.
            static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            let ours = *INSTALLED.get_or_init(|| log::set_logger(&LOGGER).is_ok());
            if !ours {
                return Err(FfiError::invalid(
                    "the host program installed its own log logger; moe's records go there",
                ));
            }
            let mut sink = SINK.write().unwrap_or_else(|e| e.into_inner());
            *sink = callback.map(|f| Sink {
                f,
                user_data: user_data as usize,
            });
            log::set_max_level(if sink.is_some() { filter } else { log::LevelFilter::Off });
            Ok(())
        })
    }
}
