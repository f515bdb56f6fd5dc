//! `tether_result`: the status code every fallible function returns, and
//! the functions that turn a code into words.

use crate::panic::{guard, guard_value};
use crate::ptr::text_out;
use std::ffi::{c_char, CStr};

/// The status returned by every fallible tether function.
///
/// The numbers are part of the ABI: they never change and are never reused.
/// New codes are only ever appended.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tether_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument is out of range or malformed (see `tether_last_error_message`).
    InvalidArgument = 2,
    /// A configuration value was rejected; the detail names the field.
    InvalidConfig = 3,
    /// The handle was valid once but its object is gone: freed, closed,
    /// removed or expired. A double free or double close lands here.
    StaleHandle = 4,
    /// The handle was never issued (wrong object type, or garbage).
    InvalidHandle = 5,
    /// Nothing to return right now (no event pending, no deadline armed).
    Empty = 6,
    /// A queue or table is full; try again later.
    Full = 7,
    /// The object is closed (or closing) and accepts no more work.
    Closed = 8,
    /// An operating-system call failed; the detail carries the OS error.
    Io = 9,
    /// tether panicked internally. The call had no effect that can be relied
    /// on; please report it.
    Panic = 10,
    /// The caller's buffer was too small; the output says how much is needed.
    BufferTooSmall = 11,
    /// An address string could not be parsed or resolved.
    InvalidAddress = 12,
    /// A backoff reached its give-up limit (attempts or elapsed time).
    GaveUp = 13,
    /// The call does not fit the object's delivery mode (e.g. polling an
    /// object created with a callback).
    WrongMode = 14,
    /// The operation is not available on this platform.
    NotSupported = 15,
    /// The message is larger than the transport carries; it was not queued
    /// and the connection is unaffected.
    MessageTooLarge = 16,
}

impl tether_result {
    /// The fixed, human-readable description of the code.
    pub fn as_str(self) -> &'static str {
        self.message().to_str().unwrap_or("")
    }

    /// The description as a static C string.
    pub fn message(self) -> &'static CStr {
        match self {
            Self::Ok => c"ok",
            Self::NullArgument => c"a required pointer argument was NULL",
            Self::InvalidArgument => c"invalid argument",
            Self::InvalidConfig => c"invalid configuration",
            Self::StaleHandle => c"stale handle: the object was already freed, closed or removed",
            Self::InvalidHandle => c"invalid handle: never issued, or of another object type",
            Self::Empty => c"nothing available",
            Self::Full => c"full",
            Self::Closed => c"the object is closed",
            Self::Io => c"I/O error",
            Self::Panic => c"internal panic in tether",
            Self::BufferTooSmall => c"buffer too small",
            Self::InvalidAddress => c"invalid address",
            Self::GaveUp => c"gave up: the backoff's limits are reached",
            Self::WrongMode => c"not available in this object's delivery mode",
            Self::NotSupported => c"not supported on this platform",
            Self::MessageTooLarge => c"message larger than the transport carries",
        }
    }

    /// The code for a raw number, if it names one.
    pub fn from_u32(v: u32) -> Option<Self> {
        use tether_result as R;
        const ALL: [tether_result; 17] = [
            R::Ok,
            R::NullArgument,
            R::InvalidArgument,
            R::InvalidConfig,
            R::StaleHandle,
            R::InvalidHandle,
            R::Empty,
            R::Full,
            R::Closed,
            R::Io,
            R::Panic,
            R::BufferTooSmall,
            R::InvalidAddress,
            R::GaveUp,
            R::WrongMode,
            R::NotSupported,
            R::MessageTooLarge,
        ];
        ALL.into_iter().find(|r| *r as u32 == v)
    }
}

impl From<tether_core::HandleError> for tether_result {
    fn from(e: tether_core::HandleError) -> Self {
        match e {
            tether_core::HandleError::Stale => Self::StaleHandle,
            tether_core::HandleError::Invalid => Self::InvalidHandle,
        }
    }
}

/// Writes the description of `code` into `buf` as a NUL-terminated string.
///
/// `buf` is caller-owned and `len` its size in bytes. On `TETHER_RESULT_OK`,
/// `*out_n` is the string length (without the NUL). If `len` is too small,
/// nothing is written to `buf`, `*out_n` is the size needed (with the NUL)
/// and the result is `TETHER_RESULT_BUFFER_TOO_SMALL`. An unknown `code` is
/// described as such. Errors: `TETHER_RESULT_NULL_ARGUMENT` if `buf` or
/// `out_n` is NULL.
#[no_mangle]
pub extern "C" fn tether_result_message(
    code: u32,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> tether_result {
    guard(|| {
        let text = static_message(code).to_str().unwrap_or("");
        text_out(text, buf, len, out_n)
    })
}

/// The description of `code` as a static NUL-terminated string.
///
/// The pointer is owned by the library, valid for the whole process and
/// must not be freed. Never returns NULL.
#[no_mangle]
pub extern "C" fn tether_result_str(code: u32) -> *const c_char {
    guard_value(c"internal panic in tether".as_ptr(), || {
        static_message(code).as_ptr()
    })
}

fn static_message(code: u32) -> &'static CStr {
    match tether_result::from_u32(code) {
        Some(r) => r.message(),
        None => c"unknown tether_result code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_fixed_and_strings_agree() {
        for v in 0..17 {
            let r = tether_result::from_u32(v).unwrap();
            assert_eq!(r as u32, v);
            assert_eq!(static_message(v).to_str().unwrap(), r.as_str());
        }
        assert_eq!(tether_result::from_u32(17), None);
        assert_eq!(tether_result::StaleHandle as u32, 4);
        assert_eq!(tether_result::Panic as u32, 10);
    }
}
