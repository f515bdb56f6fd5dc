//! Kernel-level liveness for TCP sockets: keepalive and TCP_USER_TIMEOUT.
//!
//! Kernel keepalive is off by default and, when on, Linux waits 7200 s
//! before the first probe. It also never fires while sent data is
//! unacknowledged (the retransmission timer owns the socket then); that is
//! what TCP_USER_TIMEOUT bounds. Neither sees a peer whose kernel is alive
//! but whose application is stuck: the application heartbeat covers that.

use socket2::{SockRef, TcpKeepalive};
use std::io;
use std::time::Duration;
use tether_core::ConfigError;

/// Kernel keepalive probing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the kernel drops the connection.
    pub count: u32,
}

impl Keepalive {
    /// Worst-case detection of a silent dead peer on an idle socket:
    /// `idle + count x interval`.
    pub fn detection_bound(&self) -> Duration {
        self.idle
            .saturating_add(self.interval.saturating_mul(self.count))
    }
}

impl Default for Keepalive {
    /// 10 s idle, 5 s interval, 3 probes: dead within 25 s of silence.
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(5),
            count: 3,
        }
    }
}

/// Socket options tether applies to every TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOptions {
    /// Kernel keepalive; `None` leaves the socket's default.
    pub keepalive: Option<Keepalive>,
    /// TCP_USER_TIMEOUT (Linux): how long sent data may stay unacknowledged
    /// before the kernel drops the connection. `None` leaves the default.
    pub user_timeout: Option<Duration>,
    /// Disable Nagle's algorithm (TCP_NODELAY).
    pub nodelay: bool,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            keepalive: Some(Keepalive::default()),
            user_timeout: Some(Duration::from_secs(30)),
            nodelay: true,
        }
    }
}

impl TcpOptions {
    /// Checks the values: every duration whole seconds >= 1 for keepalive
    /// (the kernel's unit), count 1..=127, user timeout under 24 days.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(k) = self.keepalive {
            if k.idle < Duration::from_secs(1) || k.idle > Duration::from_secs(32_767) {
                return Err(ConfigError::new(
                    "tcp.keepalive.idle",
                    "must be 1..=32767 s",
                ));
            }
            if k.interval < Duration::from_secs(1) || k.interval > Duration::from_secs(32_767) {
                return Err(ConfigError::new(
                    "tcp.keepalive.interval",
                    "must be 1..=32767 s",
                ));
            }
            if k.count == 0 || k.count > 127 {
                return Err(ConfigError::new("tcp.keepalive.count", "must be 1..=127"));
            }
        }
        if let Some(t) = self.user_timeout {
            if t.is_zero() || t.as_millis() > i32::MAX as u128 {
                return Err(ConfigError::new(
                    "tcp.user_timeout",
                    "must be between 1 ms and 24 days",
                ));
            }
        }
        Ok(())
    }

    /// Applies the options to a socket.
    pub fn apply(&self, sock: SockRef<'_>) -> io::Result<()> {
        self.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if let Some(k) = self.keepalive {
            let ka = TcpKeepalive::new()
                .with_time(k.idle)
                .with_interval(k.interval);
            #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
            let ka = ka.with_retries(k.count);
            sock.set_tcp_keepalive(&ka)?;
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(t) = self.user_timeout {
            sock.set_tcp_user_timeout(Some(t))?;
        }
        sock.set_tcp_nodelay(self.nodelay)?;
        Ok(())
    }

    /// Reads the options back from a socket (what the kernel really has).
    pub fn read(sock: SockRef<'_>) -> io::Result<TcpOptions> {
        let keepalive = if sock.keepalive()? {
            Some(Keepalive {
                idle: sock.tcp_keepalive_time()?,
                interval: sock.tcp_keepalive_interval()?,
                count: sock.tcp_keepalive_retries()?,
            })
        } else {
            None
        };
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let user_timeout = sock.tcp_user_timeout()?;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let user_timeout = None;
        Ok(TcpOptions {
            keepalive,
            user_timeout,
            nodelay: sock.tcp_nodelay()?,
        })
    }

    /// Worst-case time for the kernel alone to notice a dead peer: the
    /// larger of the keepalive bound (idle socket) and the user timeout
    /// (socket with unacknowledged data), or `None` if either is unset.
    pub fn kernel_detection_bound(&self) -> Option<Duration> {
        Some(self.keepalive?.detection_bound().max(self.user_timeout?))
    }
}

/// Applies `opts` to an existing socket descriptor owned by the caller
/// (for C servers that accept their own sockets).
#[cfg(unix)]
pub fn tune_fd(fd: std::os::fd::RawFd, opts: &TcpOptions) -> io::Result<()> {
    use std::os::fd::BorrowedFd;
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(9)); // EBADF
    }
    // SAFETY: the caller promises `fd` is an open socket for this call's
    // duration; we only borrow it.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    opts.apply(SockRef::from(&fd))
}

/// Reads the keepalive options of an existing socket descriptor.
#[cfg(unix)]
pub fn read_fd(fd: std::os::fd::RawFd) -> io::Result<TcpOptions> {
    use std::os::fd::BorrowedFd;
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(9));
    }
    // SAFETY: as in `tune_fd`.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    TcpOptions::read(SockRef::from(&fd))
}
