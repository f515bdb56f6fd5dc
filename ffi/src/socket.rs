//! `tether_tcp_options` and `tether_socket_*`: kernel liveness for sockets
//! the caller owns (scenario S3).

use crate::backoff::config_error;
use crate::panic::{fail, guard};
use crate::ptr::{arg, out};
use crate::result::tether_result;
use crate::time::{duration_ms, ms};
use std::time::Duration;
use tether_transports::tcp::{Keepalive, TcpOptions};

/// Kernel-level liveness settings of a TCP socket.
///
/// Kernel keepalive is off by default and Linux waits 7200 s before the
/// first probe; it also never fires while sent data is unacknowledged, which
/// is what `user_timeout_ms` (TCP_USER_TIMEOUT) bounds. Neither notices a
/// peer whose kernel is alive but whose application hangs: keep an
/// application heartbeat (`tether_monitor`, `tether_registry`) for that.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tether_tcp_options {
    /// Enable kernel keepalive with the three values below. When false,
    /// `tether_socket_tune` leaves keepalive as it is, and
    /// `tether_socket_read_options` reports keepalive off.
    pub keepalive: bool,
    /// Idle time before the first probe, in ms: whole seconds, 1..=32767 s.
    pub keepalive_idle_ms: u64,
    /// Time between probes, in ms: whole seconds, 1..=32767 s.
    pub keepalive_interval_ms: u64,
    /// Unanswered probes before the kernel drops the connection (1..=127).
    pub keepalive_count: u32,
    /// TCP_USER_TIMEOUT in ms (Linux): how long sent data may stay
    /// unacknowledged. 0 = leave it unset (the kernel's default).
    pub user_timeout_ms: u64,
    /// TCP_NODELAY (disable Nagle's algorithm).
    pub nodelay: bool,
}

impl From<&TcpOptions> for tether_tcp_options {
    fn from(o: &TcpOptions) -> Self {
        let k = o.keepalive;
        Self {
            keepalive: k.is_some(),
            keepalive_idle_ms: k.map_or(0, |k| duration_ms(k.idle)),
            keepalive_interval_ms: k.map_or(0, |k| duration_ms(k.interval)),
            keepalive_count: k.map_or(0, |k| k.count),
            user_timeout_ms: o.user_timeout.map_or(0, duration_ms),
            nodelay: o.nodelay,
        }
    }
}

impl tether_tcp_options {
    /// The validated transport options.
    pub(crate) fn to_core(self) -> Result<TcpOptions, tether_result> {
        let keepalive = if self.keepalive {
            for (field, v) in [
                ("tcp.keepalive_idle_ms", self.keepalive_idle_ms),
                ("tcp.keepalive_interval_ms", self.keepalive_interval_ms),
            ] {
                if v % 1000 != 0 {
                    return Err(fail(
                        tether_result::InvalidConfig,
                        format!("invalid configuration: {field}: must be whole seconds (the kernel's unit), got {v} ms"),
                    ));
                }
            }
            Some(Keepalive {
                idle: ms(self.keepalive_idle_ms),
                interval: ms(self.keepalive_interval_ms),
                count: self.keepalive_count,
            })
        } else {
            None
        };
        let opts = TcpOptions {
            keepalive,
            user_timeout: (self.user_timeout_ms != 0).then(|| ms(self.user_timeout_ms)),
            nodelay: self.nodelay,
        };
        opts.validate().map_err(config_error)?;
        Ok(opts)
    }
}

/// Fills `*out_options` with tether's defaults: keepalive after 10 s idle,
/// probes every 5 s, 3 probes (a dead idle peer is noticed within 25 s),
/// TCP_USER_TIMEOUT 30 s, TCP_NODELAY on. Errors: `TETHER_RESULT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn tether_tcp_options_default(
    out_options: *mut tether_tcp_options,
) -> tether_result {
    guard(|| {
        out(out_options, "out_options")?.write((&TcpOptions::default()).into());
        Ok(())
    })
}

/// Applies `*options` (borrowed for the call) to the TCP socket `fd`, which
/// stays owned by the caller: keepalive (on/off, idle, interval, count),
/// TCP_USER_TIMEOUT (Linux only; ignored elsewhere) and TCP_NODELAY.
///
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`; `TETHER_RESULT_INVALID_CONFIG`
/// (values out of range; nothing applied); `TETHER_RESULT_INVALID_ARGUMENT`
/// for a negative `fd`; `TETHER_RESULT_IO` when the kernel rejects an
/// option (e.g. `fd` is not a TCP socket), with the OS error in
/// `tether_last_error_message`; `TETHER_RESULT_NOT_SUPPORTED` off Unix.
#[no_mangle]
pub extern "C" fn tether_socket_tune(
    fd: std::ffi::c_int,
    options: *const tether_tcp_options,
) -> tether_result {
    guard(|| {
        let opts = arg(options, "options")?.to_core()?;
        check_fd(fd)?;
        tune(fd, &opts)
    })
}

/// Reads the kernel's current keepalive, TCP_USER_TIMEOUT and TCP_NODELAY
/// settings of socket `fd` (owned by the caller) into `*out_options`,
/// written only on success. Errors: `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_INVALID_ARGUMENT` (negative `fd`), `TETHER_RESULT_IO`,
/// `TETHER_RESULT_NOT_SUPPORTED` off Unix.
#[no_mangle]
pub extern "C" fn tether_socket_read_options(
    fd: std::ffi::c_int,
    out_options: *mut tether_tcp_options,
) -> tether_result {
    guard(|| {
        let out_options = out(out_options, "out_options")?;
        check_fd(fd)?;
        let opts = read(fd)?;
        out_options.write((&opts).into());
        Ok(())
    })
}

fn check_fd(fd: i32) -> Result<(), tether_result> {
    if fd < 0 {
        return Err(fail(
            tether_result::InvalidArgument,
            format!("invalid file descriptor {fd}"),
        ));
    }
    Ok(())
}

fn io_error(e: std::io::Error) -> tether_result {
    fail(tether_result::Io, e.to_string())
}

#[cfg(unix)]
fn tune(fd: i32, opts: &TcpOptions) -> Result<(), tether_result> {
    tether_transports::tcp::tune_fd(fd, opts).map_err(io_error)
}

#[cfg(unix)]
fn read(fd: i32) -> Result<TcpOptions, tether_result> {
    let mut opts = tether_transports::tcp::read_fd(fd).map_err(io_error)?;
    // The kernel reports whole seconds; keep them exact in ms.
    if let Some(k) = opts.keepalive.as_mut() {
        k.idle = Duration::from_secs(k.idle.as_secs());
        k.interval = Duration::from_secs(k.interval.as_secs());
    }
    Ok(opts)
}

#[cfg(not(unix))]
fn tune(_fd: i32, _opts: &TcpOptions) -> Result<(), tether_result> {
    Err(tether_result::NotSupported)
}

#[cfg(not(unix))]
fn read(_fd: i32) -> Result<TcpOptions, tether_result> {
    Err(tether_result::NotSupported)
}
