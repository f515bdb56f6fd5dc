//! The panic boundary around every exported function, and the per-thread
//! detail message of the last failure.
//!
//! A Rust panic must never unwind into C (that aborts the process, or
//! worse), so every `extern "C"` function runs its body through [`guard`]
//! or [`guard_value`], which turn a panic into `TETHER_RESULT_PANIC`.

use crate::ptr::text_out;
use crate::result::tether_result;
use std::cell::{Cell, RefCell};
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
    /// How deep this thread is inside exported calls.
    static IN_CALL: Cell<u32> = const { Cell::new(0) };
}

static QUIET: Once = Once::new();

/// Keeps panics inside tether off the host's stderr.
///
/// The default panic hook prints every panic, including those tether
/// catches and reports as `TETHER_RESULT_PANIC` or as a `FAILED` event.
/// This hook (installed once, on the first exported call) sends a panic to
/// `tracing` instead when it happens inside an exported call or on one of
/// tether's own threads (named `tether-...`); every other panic of the
/// process goes to the hook that was there before, unchanged.
fn quiet_panics() {
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = IN_CALL.with(|c| c.get() > 0)
                || std::thread::current()
                    .name()
                    .is_some_and(|n| n.starts_with("tether-"));
            if ours {
                tracing::error!(panic = %info, "internal panic in tether");
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `body` marked as inside an exported call.
fn in_call<T>(body: impl FnOnce() -> T) -> std::thread::Result<T> {
    quiet_panics();
    IN_CALL.with(|c| c.set(c.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(body));
    IN_CALL.with(|c| c.set(c.get().saturating_sub(1)));
    result
}

/// Records `detail` as this thread's last error and returns `code`, for
/// `Err(fail(..))`.
pub(crate) fn fail(code: tether_result, detail: impl Into<String>) -> tether_result {
    let detail = detail.into();
    LAST_ERROR.with(|e| *e.borrow_mut() = detail);
    code
}

fn set_default_detail(code: tether_result) {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        if e.is_empty() {
            e.push_str(code.as_str());
        }
    });
}

/// Runs `body` inside the panic boundary. Clears the thread's last error
/// first and, on failure, makes sure it describes the failure.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), tether_result>) -> tether_result {
    LAST_ERROR.with(|e| e.borrow_mut().clear());
    let code = match in_call(body) {
        Ok(Ok(())) => return tether_result::Ok,
        Ok(Err(code)) => code,
        Err(payload) => {
            let what = tether_transports::driver::panic_text(payload.as_ref());
            fail(
                tether_result::Panic,
                format!("internal panic in tether: {what}"),
            )
        }
    };
    set_default_detail(code);
    code
}

/// Runs `body` inside the panic boundary for functions that return a value
/// rather than a `tether_result`; a panic yields `fallback`.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    in_call(body).unwrap_or(fallback)
}

/// Writes the detail of the last failed tether call made *on this thread*
/// into `buf` as a NUL-terminated string (e.g. which configuration field was
/// rejected and why, or the OS error of a failed bind).
///
/// Every tether function clears the detail when it starts (except this one),
/// so call it right after the failing call. When the last call succeeded
/// the text is empty. `buf` is caller-owned and `len` its size in bytes. On
/// `TETHER_RESULT_OK`, `*out_n` is the string length without the NUL. If
/// `len` is too small, nothing is written to `buf`, `*out_n` is the size
/// needed (with the NUL) and the result is `TETHER_RESULT_BUFFER_TOO_SMALL`.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT` if `buf` or `out_n` is NULL.
#[no_mangle]
pub extern "C" fn tether_last_error_message(
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> tether_result {
    guard_value(tether_result::Panic, || {
        let detail = LAST_ERROR.with(|e| e.borrow().clone());
        match text_out(&detail, buf, len, out_n) {
            Ok(()) => tether_result::Ok,
            Err(code) => code,
        }
    })
}
