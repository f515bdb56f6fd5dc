//! `tether_client`: a supervised connection on tether's runtime that
//! reconnects with backoff and reports every lifecycle step exactly once.

use crate::address;
use crate::backoff::{config_error, tether_backoff_config};
use crate::conn::{opening_from_c, opening_to_c};
use crate::delivery::{Delivery, Sink, BURST};
use crate::dispatch::owe_flush;
use crate::event::{tether_event, tether_event_callback, ClientEvents};
use crate::handle::{HandleTable, Kind};
use crate::panic::{fail, guard};
use crate::ptr::{bytes, out, text};
use crate::result::tether_result;
use crate::runtime::runtime;
use crate::socket::tether_tcp_options;
use crate::time::{duration_ms, ms};
use crate::transport_options::{settings, tether_transport_options};
use bytes::Bytes;
use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use tether_core::liveness::HeartbeatConfig;
use tether_transports::driver::{Client, ClientConfig, ClientHandle, SendError};
use tether_transports::endpoint;
use tokio::task::JoinHandle;

/// Settings of a managed client. Fill it with `tether_client_config_default`
/// and adjust fields.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct tether_client_config {
    /// Application heartbeat: ping after this much silence, in ms (1 ..=
    /// `TETHER_MAX_DURATION_MS`).
    pub heartbeat_interval_ms: u64,
    /// Application heartbeat: how long a ping waits for any traffic, in ms
    /// (1 ..= `TETHER_MAX_DURATION_MS`).
    pub heartbeat_timeout_ms: u64,
    /// Application heartbeat: unanswered pings that mean dead (1..=255).
    pub heartbeat_max_missed: u32,
    /// Waiting between connection attempts.
    pub backoff: tether_backoff_config,
    /// Messages kept while disconnected (1 ..= `TETHER_MAX_QUEUE`);
    /// `tether_client_send` returns `TETHER_RESULT_FULL` beyond it.
    pub max_pending: usize,
    /// Kernel keepalive, TCP_USER_TIMEOUT and TCP_NODELAY of each
    /// connection (`tcp://` and `tls://`).
    pub tcp: tether_tcp_options,
    /// Settings of `tls://`, `quic://` and `udp://` (trust roots, server
    /// name, client certificate, ALPN, 0-RTT, PSK, ...), copied at
    /// `tether_client_new`; `{0}` (the default) for each transport's
    /// defaults. See `tether_transport_options_new`.
    pub transport: tether_transport_options,
    /// One of `tether_opening`. `TETHER_OPENING_HELLO` (default): the
    /// client counts as connected only once the server's welcome arrived
    /// within the connect timeout. `TETHER_OPENING_RAW`: no opening
    /// exchange (a plain server, watched for life only).
    pub opening: u32,
}

impl tether_client_config {
    fn defaults() -> Self {
        let c = ClientConfig::default();
        Self {
            heartbeat_interval_ms: duration_ms(c.heartbeat.interval),
            heartbeat_timeout_ms: duration_ms(c.heartbeat.timeout),
            heartbeat_max_missed: c.heartbeat.max_missed,
            backoff: (&c.backoff).into(),
            max_pending: c.max_pending,
            tcp: (&tether_transports::tcp::TcpOptions::default()).into(),
            transport: tether_transport_options { id: 0 },
            opening: opening_to_c(c.opening),
        }
    }

    fn to_core(self) -> Result<ClientConfig, tether_result> {
        let cfg = ClientConfig {
            heartbeat: HeartbeatConfig::new(
                ms(self.heartbeat_interval_ms),
                ms(self.heartbeat_timeout_ms),
                self.heartbeat_max_missed,
            ),
            backoff: self.backoff.to_core()?,
            max_pending: self.max_pending,
            opening: opening_from_c("client.opening", self.opening)?,
            ..ClientConfig::default()
        };
        cfg.validate().map_err(config_error)?;
        Ok(cfg)
    }
}

/// A managed client (opaque handle). `{0}` is "none".
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tether_client {
    /// The handle value; 0 means none.
    pub id: u64,
}

struct ClientObj {
    handle: ClientHandle,
    pump: JoinHandle<()>,
    delivery: Delivery,
    closed: AtomicBool,
}

impl ClientObj {
    fn shutdown(&self) {
        self.handle.close();
        self.pump.abort();
        self.delivery.stop();
    }
}

impl Drop for ClientObj {
    // Covers the paths that never reach `tether_client_free` (a failed
    // insert). Every step is idempotent.
    fn drop(&mut self) {
        self.shutdown();
    }
}

static CLIENTS: HandleTable<ClientObj> = HandleTable::new(Kind::Client);

/// Fills `*out_config` with the defaults: heartbeat 15 s / 10 s / 2 misses,
/// the default backoff (see `tether_backoff_config_default`), 1024 pending
/// messages, tether's TCP options (see `tether_tcp_options_default`), no
/// transport options (`{0}`).
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn tether_client_config_default(
    out_config: *mut tether_client_config,
) -> tether_result {
    guard(|| {
        out(out_config, "out_config")?.write(tether_client_config::defaults());
        Ok(())
    })
}

/// Creates a client that keeps a connection to `address` and writes its
/// handle to `*out_client`. It starts connecting at once, on tether's
/// runtime.
///
/// `address` is `"scheme://host:port"` with scheme `tcp`, `tls` (TLS over
/// TCP), `quic` (QUIC datagrams) or `udp` (UDP datagrams with an
/// authenticated session); IPv6 as `"tcp://[::1]:port"`; the name is
/// resolved again on every attempt. `tls://` and `quic://` verify the
/// server's certificate against the platform's roots unless
/// `config->transport` names a CA file; `udp://` needs a pre-shared key in
/// `config->transport` (see `tether_transport_options_set_udp_psk`). Under
/// `quic://` the QUIC keep-alive and idle timeout follow the heartbeat
/// (keep-alive = interval, idle timeout = the heartbeat's detection bound).
///
/// `config` may be NULL for the defaults; strings and structs, and the
/// transport options object, are borrowed for the call only. The delivery
/// mode is fixed here: with a `callback`, every event is passed to
/// `callback(userdata, &event)` on one of tether's few shared dispatch
/// threads (one event at a time, in order); with `callback` NULL the client is in
/// poll mode (`tether_client_poll_event`, `tether_client_event_fd`) and
/// `userdata` is ignored. The caller owns the handle and releases it with
/// `tether_client_free`.
///
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`; `TETHER_RESULT_INVALID_ADDRESS`
/// (unparsable, unknown scheme, port 0); `TETHER_RESULT_INVALID_CONFIG`
/// (a config field, or a transport option: a CA or certificate file that
/// cannot be read or holds no certificate, an invalid server name, a
/// missing or short UDP PSK), both detailed by `tether_last_error_message`;
/// `TETHER_RESULT_STALE_HANDLE` / `TETHER_RESULT_INVALID_HANDLE` for a bad
/// `config->transport`; `TETHER_RESULT_NOT_SUPPORTED` for a transport not
/// compiled into this libtether; `TETHER_RESULT_IO` if a thread or
/// descriptor cannot be created.
#[no_mangle]
pub extern "C" fn tether_client_new(
    address: *const c_char,
    config: *const tether_client_config,
    callback: tether_event_callback,
    userdata: *mut c_void,
    out_client: *mut tether_client,
) -> tether_result {
    guard(|| {
        let addr = address::dial(text(address, "address")?)?;
        // SAFETY: NULL is allowed and means defaults; otherwise the caller
        // promises a valid struct.
        let config = unsafe { config.as_ref() }
            .copied()
            .unwrap_or_else(tether_client_config::defaults);
        let tcp = config.tcp.to_core()?;
        let core = config.to_core()?;
        let transport = settings(config.transport)?.for_client(tcp, &core.heartbeat);
        let out_client = out(out_client, "out_client")?;
        let rt = runtime()?;
        let _ctx = rt.enter();
        let connector =
            endpoint::connector(&addr, &transport).map_err(|e| address::endpoint_error(&e))?;
        let (delivery, sink) = Delivery::new(callback, userdata)?;
        let client = Client::spawn(connector, core).map_err(config_error)?;
        let handle = client.handle();
        // Events wait until the handle exists, so that every event (the
        // first callback included) can carry it.
        let (ready, handle_rx) = tokio::sync::oneshot::channel();
        let pump = rt.spawn(pump(client, sink, handle_rx));
        let obj = ClientObj {
            handle,
            pump,
            delivery,
            closed: AtomicBool::new(false),
        };
        let id = CLIENTS.insert(obj)?;
        let _ = ready.send(id);
        out_client.write(tether_client { id });
        Ok(())
    })
}

async fn pump(mut client: Client, sink: Sink, handle: tokio::sync::oneshot::Receiver<u64>) {
    let Ok(object) = handle.await else { return };
    let mut events = ClientEvents::new(object);
    let mut burst = Vec::with_capacity(BURST);
    while client.next_events(&mut burst, BURST).await > 0 {
        if !sink.push_all(burst.drain(..).map(|e| events.convert(e))) {
            break;
        }
        // A C side that lags holds this object back here.
        sink.room().await;
    }
}

/// Queues a copy of `data[0..len]` as one message. While disconnected, up to
/// `max_pending` messages wait for the next connection. `data` is borrowed
/// for the call and may be NULL when `len` is 0. Never blocks.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_FULL` (buffer full;
/// retry later), `TETHER_RESULT_CLOSED` (closed or gave up),
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_client_send(
    client: tether_client,
    data: *const u8,
    len: usize,
) -> tether_result {
    guard(|| {
        let data = bytes(data, len, "data")?;
        let obj = CLIENTS.get(client.id)?;
        if obj.closed.load(Ordering::Acquire) {
            return Err(tether_result::Closed);
        }
        obj.handle
            .try_send(Bytes::copy_from_slice(data))
            .map_err(send_error)
    })
}

/// Queues a copy of `data[0..len]` like `tether_client_send`, but leaves
/// the writing to the next `tether_client_flush`, as a buffered writer
/// does: a burst fed and then flushed goes out in one write from the
/// calling thread, and wakes no tether thread. Fed inside one of this
/// client's callbacks, it is flushed when the callback's batch ends (no
/// flush call needed). Until its flush a fed message also goes out with
/// any write the connection makes anyway, at the latest on its next
/// heartbeat turn. Nothing fed is dropped: while disconnected it waits for
/// the next connection, as a sent message does. Never blocks.
/// Errors: as `tether_client_send`.
#[no_mangle]
pub extern "C" fn tether_client_feed(
    client: tether_client,
    data: *const u8,
    len: usize,
) -> tether_result {
    guard(|| {
        let data = bytes(data, len, "data")?;
        let obj = CLIENTS.get(client.id)?;
        if obj.closed.load(Ordering::Acquire) {
            return Err(tether_result::Closed);
        }
        obj.handle
            .try_feed(Bytes::copy_from_slice(data))
            .map_err(send_error)?;
        let handle = obj.handle.clone();
        owe_flush((client.id, 0), move || handle.flush());
        Ok(())
    })
}

/// Writes every message fed so far (`tether_client_feed`), from the
/// calling thread; what the socket cannot take at once is finished by
/// tether's runtime. Cheap when nothing was fed.
/// Errors: `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_client_flush(client: tether_client) -> tether_result {
    guard(|| {
        CLIENTS.get(client.id)?.handle.flush();
        Ok(())
    })
}

fn send_error(e: SendError) -> tether_result {
    match e {
        SendError::Full => tether_result::Full,
        SendError::Closed => tether_result::Closed,
        SendError::TooLarge { len, max } => fail(
            tether_result::MessageTooLarge,
            format!("message of {len} bytes exceeds the transport's maximum of {max}"),
        ),
    }
}

/// Closes the client: the connection is closed in an orderly way and the
/// events end with `TETHER_EVENT_KIND_CLOSED` (unless it had given up). The
/// handle stays valid until `tether_client_free`. A second close returns
/// `TETHER_RESULT_CLOSED` and does nothing. Errors also:
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_client_close(client: tether_client) -> tether_result {
    guard(|| {
        let obj = CLIENTS.get(client.id)?;
        if obj.closed.swap(true, Ordering::AcqRel) {
            return Err(tether_result::Closed);
        }
        obj.handle.close();
        Ok(())
    })
}

/// Poll mode: moves the next pending event into `*out_event` and returns
/// `TETHER_RESULT_OK`, or returns `TETHER_RESULT_EMPTY` (nothing written)
/// when none is pending. The event's `data` stays valid until the next poll
/// call or `tether_client_free` on this client; poll one client from one
/// thread at a time. Errors: `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_WRONG_MODE` (callback mode), `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_client_poll_event(
    client: tether_client,
    out_event: *mut tether_event,
) -> tether_result {
    guard(|| {
        let out_event = out(out_event, "out_event")?;
        let event = CLIENTS.get(client.id)?.delivery.poll()?;
        out_event.write(event);
        Ok(())
    })
}

/// Poll mode: writes to `*out_fd` a descriptor that is readable exactly
/// while events are pending (an eventfd on Linux, a pipe elsewhere). Wait on
/// it with poll/epoll/select or Python's `loop.add_reader`, then call
/// `tether_client_poll_event` until `TETHER_RESULT_EMPTY`. Never read,
/// write or close it yourself; it is closed by `tether_client_free` (remove
/// it from your poller first). Errors: `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_WRONG_MODE`, `TETHER_RESULT_NOT_SUPPORTED`,
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_client_event_fd(
    client: tether_client,
    out_fd: *mut std::ffi::c_int,
) -> tether_result {
    guard(|| {
        let out_fd = out(out_fd, "out_fd")?;
        out_fd.write(CLIENTS.get(client.id)?.delivery.event_fd()?);
        Ok(())
    })
}

/// Frees the client: closes its connection, discards pending events and
/// makes the handle stale. When it returns, the callback is not running and
/// will never be called again; the one exception is a call from inside
/// this client's own callback, which is allowed: the current callback
/// finishes normally (its event stays valid) and no other follows. Freeing
/// from another thread waits for a running callback to return, so do not
/// hold a lock there that the callback takes.
///
/// `{0}` is a no-op (`TETHER_RESULT_OK`); a second free returns
/// `TETHER_RESULT_STALE_HANDLE`; another object's handle
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_client_free(client: tether_client) -> tether_result {
    guard(|| {
        if let Some(obj) = CLIENTS.remove(client.id)? {
            obj.shutdown();
        }
        Ok(())
    })
}

pub(crate) fn free_all() {
    for obj in CLIENTS.drain() {
        obj.shutdown();
    }
}
