//! `tether_conn`: the sans-IO connection machine for C programs that own
//! their sockets and event loop.
//!
//! A C server (or client) keeps its epoll loop and its sockets; tether does
//! the rest on each connection: framing, the opening hello, pings and
//! pongs, liveness, the write-stall deadline and bounded queues. Per
//! connection the loop is:
//!
//! 1. bytes read from the socket: `tether_conn_handle_bytes`;
//! 2. bytes to write: `tether_conn_transmit_peek`, write what the socket
//!    takes, `tether_conn_transmit_consume` that many (wait for `EPOLLOUT`
//!    while some remain);
//! 3. `tether_conn_poll_event` until `TETHER_RESULT_EMPTY` (connected,
//!    messages, and exactly one `CLOSED`, after which you close the socket);
//! 4. sleep at most `tether_conn_next_timeout_ms`, then
//!    `tether_conn_handle_timeout`.
//!
//! Stop reading the socket while `tether_conn_wants_read` says false: the
//! application has `recv_queue` messages unpolled, and the sender is held
//! back by TCP instead of tether's memory growing. The object starts no
//! thread and reads no clock; one connection must be driven from one thread
//! at a time (different connections from any threads).

use crate::event::tether_reason;
use crate::handle::{HandleTable, Kind};
use crate::panic::{fail, guard};
use crate::policy::tether_policy;
use crate::ptr::{bytes, out, text};
use crate::result::tether_result;
use crate::time::{duration_ms, instant, wait_ms};
use bytes::{Buf, Bytes, BytesMut};
use std::ffi::{c_char, CString};
use std::sync::Mutex;
use std::time::Duration;
use tether_core::connection::{
    ConnSendError, Connection, ConnectionConfig, ConnectionEvent, Opening, Side,
};
use tether_core::{Cause, DisconnectReason};

/// Which end a `tether_conn` is.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tether_side {
    /// Dialed out: sends the hello, is connected on the server's welcome.
    Client = 1,
    /// Accepted: waits for the hello and answers it.
    Server = 2,
}

/// How a connection starts (`tether_conn_config.opening`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tether_opening {
    /// The hello / welcome exchange: the peer is a tether peer, and a
    /// client counts as connected only once the server answered.
    Hello = 1,
    /// No exchange: connected at once (plain peers that speak no tether
    /// opening, peers of an older tether).
    Raw = 2,
}

/// A `tether_opening` value from C; the error names `field`.
pub(crate) fn opening_from_c(field: &str, value: u32) -> Result<Opening, tether_result> {
    match value {
        1 => Ok(Opening::Hello),
        2 => Ok(Opening::Raw),
        other => Err(fail(
            tether_result::InvalidConfig,
            format!("invalid configuration: {field}: {other} is not a tether_opening"),
        )),
    }
}

/// The C value of an opening.
pub(crate) fn opening_to_c(opening: Opening) -> u32 {
    match opening {
        Opening::Hello => tether_opening::Hello as u32,
        Opening::Raw => tether_opening::Raw as u32,
    }
}

/// Settings of a `tether_conn`. Fill it with `tether_conn_config_default`,
/// then adjust fields.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct tether_conn_config {
    /// What to do about silence (heartbeat or idle timeout).
    pub policy: tether_policy,
    /// One of `tether_opening`.
    pub opening: u32,
    /// Longest wait for the peer's hello or welcome, in ms (1 ..=
    /// `TETHER_MAX_DURATION_MS`); then `CLOSED` with `connect_timeout`.
    pub opening_timeout_ms: u64,
    /// Largest message sent or accepted, in bytes (1 ..= 2^32 - 1).
    pub max_frame: usize,
    /// Messages waiting to be written, at most (1 ..= `TETHER_MAX_QUEUE`).
    pub send_queue: usize,
    /// Received messages waiting for `tether_conn_poll_event`, at most (1
    /// ..= `TETHER_MAX_QUEUE`); see `tether_conn_wants_read`.
    pub recv_queue: usize,
    /// A write that makes no progress for this long (ms) ends the
    /// connection with `timeout`; 0: the policy's detection bound.
    pub write_stall_ms: u64,
    /// Capability bits announced in the hello.
    pub capabilities: u64,
}

impl tether_conn_config {
    fn defaults() -> Self {
        let c = ConnectionConfig::default();
        Self {
            policy: tether_policy::from_core(&c.policy),
            opening: opening_to_c(c.opening),
            opening_timeout_ms: duration_ms(c.opening_timeout),
            max_frame: c.max_frame,
            send_queue: c.send_queue,
            recv_queue: c.recv_queue,
            write_stall_ms: 0,
            capabilities: c.capabilities,
        }
    }

    fn to_core(self) -> Result<ConnectionConfig, tether_result> {
        let opening = opening_from_c("connection.opening", self.opening)?;
        let cfg = ConnectionConfig {
            policy: self.policy.to_core()?,
            opening,
            opening_timeout: Duration::from_millis(self.opening_timeout_ms),
            max_frame: self.max_frame,
            send_queue: self.send_queue,
            recv_queue: self.recv_queue,
            write_stall: (self.write_stall_ms > 0)
                .then(|| Duration::from_millis(self.write_stall_ms)),
            capabilities: self.capabilities,
        };
        cfg.validate().map_err(crate::backoff::config_error)?;
        Ok(cfg)
    }
}

/// The kinds of `tether_conn_event`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tether_conn_event_kind {
    /// The opening finished (`version`, `capabilities`).
    Connected = 1,
    /// An application message (`data`, `len`).
    Message = 2,
    /// The connection ended (`reason`, `detail`); nothing follows. Close the
    /// socket.
    Closed = 3,
}

/// An event of a `tether_conn`. `data` and `detail` are owned by tether
/// and valid until the next call on the same connection.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tether_conn_event {
    /// What happened.
    pub kind: tether_conn_event_kind,
    /// `MESSAGE`: the payload.
    pub data: *const u8,
    /// `MESSAGE`: its length.
    pub len: usize,
    /// `CLOSED`: a `tether_reason`.
    pub reason: u32,
    /// `CLOSED`: why, in words (NUL-terminated); NULL otherwise.
    pub detail: *const c_char,
    /// `CONNECTED`: the peer's protocol version.
    pub version: u16,
    /// `CONNECTED`: the capability bits both sides set.
    pub capabilities: u64,
}

/// A connection machine (opaque handle). `{0}` is "none".
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tether_conn {
    /// The handle value; 0 means none.
    pub id: u64,
}

struct ConnObj {
    conn: Connection,
    /// Bytes received but not yet a whole frame.
    inbox: BytesMut,
    /// Bytes to write, the front of which `transmit_peek` showed.
    outbox: BytesMut,
    /// The event last handed out, kept alive for its pointers.
    current: Option<(Bytes, Option<CString>)>,
}

static CONNS: HandleTable<Mutex<ConnObj>> = HandleTable::new(Kind::Conn);

/// Fills `*out_config` with the defaults: heartbeat 15 s / 10 s / 2 misses,
/// the hello opening with a 10 s timeout, 16 MiB messages, 1024 messages
/// each way, the write-stall bound equal to the detection bound, no
/// capability bits. Errors: `TETHER_RESULT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn tether_conn_config_default(out_config: *mut tether_conn_config) -> tether_result {
    guard(|| {
        out(out_config, "out_config")?.write(tether_conn_config::defaults());
        Ok(())
    })
}

/// Creates the machine of one connection whose socket just connected
/// (`TETHER_SIDE_CLIENT`) or was accepted (`TETHER_SIDE_SERVER`) at
/// `now_ms`, with `*config` (NULL for the defaults; borrowed for the call),
/// and writes its handle to `*out_conn`. A client has its hello ready to
/// transmit at once. Release it with `tether_conn_free`. Errors:
/// `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_INVALID_ARGUMENT` (side),
/// `TETHER_RESULT_INVALID_CONFIG` (detail names the field),
/// `TETHER_RESULT_FULL`.
#[no_mangle]
pub extern "C" fn tether_conn_new(
    side: u32,
    config: *const tether_conn_config,
    now_ms: u64,
    out_conn: *mut tether_conn,
) -> tether_result {
    guard(|| {
        let side = match side {
            1 => Side::Client,
            2 => Side::Server,
            other => {
                return Err(fail(
                    tether_result::InvalidArgument,
                    format!("side {other} is neither TETHER_SIDE_CLIENT nor TETHER_SIDE_SERVER"),
                ))
            }
        };
        // SAFETY: NULL means defaults; otherwise the caller promises a
        // valid struct.
        let config = unsafe { config.as_ref() }
            .copied()
            .unwrap_or_else(tether_conn_config::defaults)
            .to_core()?;
        let out_conn = out(out_conn, "out_conn")?;
        let conn =
            Connection::new(side, config, instant(now_ms)).map_err(crate::backoff::config_error)?;
        let id = CONNS.insert(Mutex::new(ConnObj {
            conn,
            inbox: BytesMut::new(),
            outbox: BytesMut::new(),
            current: None,
        }))?;
        out_conn.write(tether_conn { id });
        Ok(())
    })
}

/// Feeds `data[0..len]`, bytes read from the socket at `now_ms` (copied;
/// NULL allowed with `len` 0, e.g. to resume after `tether_conn_wants_read`
/// turned true again). Whole frames become events; a partial one waits for
/// more. Errors: `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_conn_handle_bytes(
    conn: tether_conn,
    data: *const u8,
    len: usize,
    now_ms: u64,
) -> tether_result {
    guard(|| {
        let data = bytes(data, len, "data")?;
        CONNS.with(conn.id, |o| {
            o.inbox.extend_from_slice(data);
            o.conn.handle_bytes(instant(now_ms), &mut o.inbox);
        })
    })
}

/// Points `*out_data` / `*out_len` at the bytes to write now (valid until
/// the next call on this connection) and returns `TETHER_RESULT_OK`, or
/// `TETHER_RESULT_EMPTY` when there is nothing to write. Write what the
/// socket takes, then call `tether_conn_transmit_consume` with that count,
/// even 0 (a socket that takes nothing for the write-stall bound means the
/// peer stopped reading). Errors: `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_conn_transmit_peek(
    conn: tether_conn,
    now_ms: u64,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> tether_result {
    guard(|| {
        let out_data = out(out_data, "out_data")?;
        let out_len = out(out_len, "out_len")?;
        let (ptr, len) = CONNS.with(conn.id, |o| {
            if o.outbox.len() < tether_core::connection::TRANSMIT_BUDGET {
                o.conn.poll_transmit(instant(now_ms), &mut o.outbox);
            }
            (o.outbox.as_ptr(), o.outbox.len())
        })?;
        if len == 0 {
            return Err(tether_result::Empty);
        }
        out_data.write(ptr);
        out_len.write(len);
        Ok(())
    })
}

/// The socket took `n` of the bytes `tether_conn_transmit_peek` showed
/// (`n` may be 0). Errors: `TETHER_RESULT_INVALID_ARGUMENT` (more than was
/// shown), `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_conn_transmit_consume(
    conn: tether_conn,
    n: usize,
    now_ms: u64,
) -> tether_result {
    guard(|| {
        CONNS.with(conn.id, |o| {
            if n > o.outbox.len() {
                return Err(fail(
                    tether_result::InvalidArgument,
                    format!("consumed {n} bytes of {} shown", o.outbox.len()),
                ));
            }
            o.outbox.advance(n);
            o.conn.handle_written(instant(now_ms), n, o.outbox.len());
            if o.outbox.is_empty() && o.outbox.capacity() > tether_core::connection::TRANSMIT_BUDGET
            {
                o.outbox = BytesMut::new();
            }
            Ok(())
        })?
    })
}

/// Queues a copy of `data[0..len]` as one message (sent once the opening
/// is done, in order). Errors: `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_FULL` (`send_queue` messages wait),
/// `TETHER_RESULT_MESSAGE_TOO_LARGE`, `TETHER_RESULT_CLOSED`,
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_conn_send(
    conn: tether_conn,
    data: *const u8,
    len: usize,
) -> tether_result {
    guard(|| {
        let data = bytes(data, len, "data")?;
        CONNS.with(conn.id, |o| {
            o.conn
                .send(Bytes::copy_from_slice(data))
                .map_err(|e| match e {
                    ConnSendError::Full => tether_result::Full,
                    ConnSendError::Closed => tether_result::Closed,
                    ConnSendError::TooLarge { len, max } => fail(
                        tether_result::MessageTooLarge,
                        format!("message of {len} bytes exceeds the maximum of {max}"),
                    ),
                })
        })?
    })
}

/// Closes in an orderly way: queued messages are still transmitted, then a
/// `CLOSED` event (reason `closed_locally`) follows; write out what
/// `tether_conn_transmit_peek` still shows, then close the socket.
/// Idempotent. Errors: `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_conn_close(conn: tether_conn, now_ms: u64) -> tether_result {
    guard(|| CONNS.with(conn.id, |o| o.conn.close(instant(now_ms))))
}

/// The socket ended (read returned 0: `reason` = `TETHER_REASON_PEER_CLOSED`;
/// an error: `TETHER_REASON_RESET`, `TETHER_REASON_IO`, ...), with an
/// optional `detail` (NULL allowed, e.g. `strerror(errno)`): reported once
/// as `CLOSED` unless the connection had ended already. Errors:
/// `TETHER_RESULT_INVALID_ARGUMENT` (unknown reason),
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_conn_handle_closed(
    conn: tether_conn,
    reason: u32,
    detail: *const c_char,
) -> tether_result {
    guard(|| {
        let reason = DisconnectReason::from_u32(reason).ok_or_else(|| {
            fail(
                tether_result::InvalidArgument,
                format!("{reason} is not a tether_reason"),
            )
        })?;
        let detail = if detail.is_null() {
            reason.describe().to_string()
        } else {
            text(detail, "detail")?.to_string()
        };
        CONNS.with(conn.id, |o| {
            o.conn.handle_closed(Cause::new(reason, detail))
        })
    })
}

/// Time passed to `now_ms`: the opening deadline, pings, the liveness
/// verdict, the write-stall deadline. Errors: `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_conn_handle_timeout(conn: tether_conn, now_ms: u64) -> tether_result {
    guard(|| CONNS.with(conn.id, |o| o.conn.handle_timeout(instant(now_ms))))
}

/// Writes to `*out_timeout_ms` how long to wait before
/// `tether_conn_handle_timeout` is due, seen at `now_ms`: 0 when due, -1
/// when nothing is pending (a closed connection), capped at INT32_MAX, so
/// it suits `epoll_wait` (take the minimum over your connections). Errors:
/// `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_conn_next_timeout_ms(
    conn: tether_conn,
    now_ms: u64,
    out_timeout_ms: *mut i32,
) -> tether_result {
    guard(|| {
        let out_timeout_ms = out(out_timeout_ms, "out_timeout_ms")?;
        let deadline = CONNS.with(conn.id, |o| o.conn.poll_timeout())?;
        out_timeout_ms.write(wait_ms(deadline, now_ms));
        Ok(())
    })
}

/// Writes to `*out_wants` whether to keep reading the socket: false while
/// `recv_queue` messages wait for `tether_conn_poll_event`, or once
/// closed. Errors: `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_conn_wants_read(conn: tether_conn, out_wants: *mut bool) -> tether_result {
    guard(|| {
        let out_wants = out(out_wants, "out_wants")?;
        out_wants.write(CONNS.with(conn.id, |o| o.conn.wants_read())?);
        Ok(())
    })
}

/// Writes the last measured round-trip time (a ping and its pong), in ms
/// rounded up, to `*out_rtt_ms`. Errors: `TETHER_RESULT_EMPTY` (none
/// measured yet), `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_conn_rtt_ms(conn: tether_conn, out_rtt_ms: *mut u64) -> tether_result {
    guard(|| {
        let out_rtt_ms = out(out_rtt_ms, "out_rtt_ms")?;
        let rtt = CONNS
            .with(conn.id, |o| o.conn.rtt())?
            .ok_or(tether_result::Empty)?;
        out_rtt_ms.write(duration_ms(rtt));
        Ok(())
    })
}

/// Moves the next event into `*out_event` (its `data` and `detail` valid
/// until the next call on this connection) and returns `TETHER_RESULT_OK`,
/// or `TETHER_RESULT_EMPTY`. Errors: `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_conn_poll_event(
    conn: tether_conn,
    out_event: *mut tether_conn_event,
) -> tether_result {
    guard(|| {
        let out_event = out(out_event, "out_event")?;
        let event = CONNS.with(conn.id, |o| {
            let e = o.conn.poll_event()?;
            let mut c = tether_conn_event {
                kind: tether_conn_event_kind::Connected,
                data: std::ptr::null(),
                len: 0,
                reason: tether_reason::None as u32,
                detail: std::ptr::null(),
                version: 0,
                capabilities: 0,
            };
            let (data, detail) = match e {
                ConnectionEvent::Connected {
                    version,
                    capabilities,
                    ..
                } => {
                    c.version = version;
                    c.capabilities = capabilities;
                    (Bytes::new(), None)
                }
                ConnectionEvent::Message(m) => {
                    c.kind = tether_conn_event_kind::Message;
                    c.len = m.len();
                    (m, None)
                }
                ConnectionEvent::Closed(cause) => {
                    c.kind = tether_conn_event_kind::Closed;
                    c.reason = cause.reason as u32;
                    let text = cause.detail.as_str().replace('\0', "\u{fffd}");
                    (Bytes::new(), CString::new(text).ok())
                }
            };
            let (data, detail) = o.current.insert((data, detail));
            if !data.is_empty() {
                c.data = data.as_ptr();
            }
            if let Some(d) = detail {
                c.detail = d.as_ptr();
            }
            Some(c)
        })?;
        out_event.write(event.ok_or(tether_result::Empty)?);
        Ok(())
    })
}

/// Frees the machine; the handle becomes stale. `{0}` is a no-op; a second
/// free returns `TETHER_RESULT_STALE_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_conn_free(conn: tether_conn) -> tether_result {
    guard(|| {
        CONNS.remove(conn.id)?;
        Ok(())
    })
}

pub(crate) fn free_all() {
    drop(CONNS.drain());
}
