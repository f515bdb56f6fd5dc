//! Checked conversions of the raw pointers C hands us: NULL becomes
//! `TETHER_RESULT_NULL_ARGUMENT`, never a dereference.
//!
//! Every helper trusts what C cannot be checked for (alignment, that a
//! non-NULL pointer points at live memory of the stated size); that is the
//! contract written on each exported function.

use crate::result::tether_result;
use std::ffi::{c_char, CStr};

/// The error for a NULL `name`: `TETHER_RESULT_NULL_ARGUMENT`, with a
/// detail naming the argument.
pub(crate) fn null(name: &str) -> tether_result {
    crate::panic::fail(
        tether_result::NullArgument,
        format!("argument `{name}` is NULL"),
    )
}

/// A borrowed input struct `name`.
pub(crate) fn arg<'a, T>(p: *const T, name: &str) -> Result<&'a T, tether_result> {
    // SAFETY: non-NULL checked; validity is the caller's contract.
    unsafe { p.as_ref() }.ok_or_else(|| null(name))
}

/// An output location, written at most once and only on success.
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// Stores `value` (the previous contents are not dropped: outputs are
    /// plain C data).
    pub(crate) fn write(self, value: T) {
        // SAFETY: non-NULL checked in `out`; validity is the caller's contract.
        unsafe { self.0.write(value) }
    }
}

/// A required output pointer `name`.
pub(crate) fn out<T>(p: *mut T, name: &str) -> Result<Out<T>, tether_result> {
    if p.is_null() {
        Err(null(name))
    } else {
        Ok(Out(p))
    }
}

/// An optional output pointer (NULL means "not wanted").
pub(crate) fn out_opt<T>(p: *mut T) -> Option<Out<T>> {
    (!p.is_null()).then_some(Out(p))
}

/// A borrowed input buffer; NULL is accepted only with length 0.
pub(crate) fn bytes<'a>(p: *const u8, len: usize, name: &str) -> Result<&'a [u8], tether_result> {
    slice(p, len, name)
}

/// A borrowed input array; NULL is accepted only with length 0.
pub(crate) fn slice<'a, T>(p: *const T, len: usize, name: &str) -> Result<&'a [T], tether_result> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(null(name));
    }
    // SAFETY: non-NULL; the caller promises `len` readable elements.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A caller-owned output array; NULL is accepted only with length 0.
pub(crate) fn slice_mut<'a, T>(
    p: *mut T,
    len: usize,
    name: &str,
) -> Result<&'a mut [T], tether_result> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(null(name));
    }
    // SAFETY: non-NULL; the caller promises `len` writable elements of plain
    // C data (every bit pattern we write is valid).
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// A NUL-terminated UTF-8 string argument `name`.
pub(crate) fn text<'a>(p: *const c_char, name: &str) -> Result<&'a str, tether_result> {
    if p.is_null() {
        return Err(null(name));
    }
    // SAFETY: non-NULL; the caller promises a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map_err(|_| {
        crate::panic::fail(
            tether_result::InvalidArgument,
            format!("argument `{name}` is not valid UTF-8"),
        )
    })
}

/// Copies `text` NUL-terminated into the caller's `buf` of `len` bytes and
/// writes its length to `out_n`; when `buf` is too small, writes only the
/// size needed (NUL included) and fails with `BufferTooSmall`.
pub(crate) fn text_out(
    text: &str,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> Result<(), tether_result> {
    let out_n = out(out_n, "out_n")?;
    if buf.is_null() {
        return Err(null("buf"));
    }
    let bytes = text.as_bytes();
    if len < bytes.len() + 1 {
        out_n.write(bytes.len() + 1);
        return Err(tether_result::BufferTooSmall);
    }
    let dst = slice_mut(buf.cast::<u8>(), len, "buf")?;
    dst[..bytes.len()].copy_from_slice(bytes);
    dst[bytes.len()] = 0;
    out_n.write(bytes.len());
    Ok(())
}
