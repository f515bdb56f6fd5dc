//! `tether_server`: a supervised server on tether's runtime that watches
//! every connection's liveness and reports each connection's end once.

use crate::address;
use crate::backoff::config_error;
use crate::conn::{opening_from_c, opening_to_c};
use crate::conn_id::{conn_id, handle_error};
use crate::delivery::{Delivery, Sink, BURST};
use crate::dispatch::owe_flush;
use crate::event::{tether_event, tether_event_callback, ServerEvents};
use crate::handle::{HandleTable, Kind};
use crate::panic::{fail, guard};
use crate::policy::tether_policy;
use crate::ptr::{bytes, out, text};
use crate::result::tether_result;
use crate::runtime::runtime;
use crate::socket::tether_tcp_options;
use crate::transport_options::{settings, tether_transport_options};
use bytes::Bytes;
use std::ffi::{c_char, c_void};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use tether_core::ConfigError;
use tether_transports::driver::{Server, ServerConfig, ServerEvent, ServerHandle, ServerSendError};
use tether_transports::endpoint;
use tether_transports::quic::QuicConfigError;
use tether_transports::tcp::TcpOptions;
use tether_transports::tls::TlsConfigError;
use tether_transports::{Endpoint, EndpointError};
use tokio::task::JoinHandle;

/// Settings of a managed server. Fill it with `tether_server_config_default`
/// and adjust fields.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct tether_server_config {
    /// Liveness rule for every connection (heartbeat: the server pings
    /// silent clients; idle timeout: it only drops them).
    pub policy: tether_policy,
    /// Messages queued per connection before `tether_server_send` returns
    /// `TETHER_RESULT_FULL` (1 ..= `TETHER_MAX_QUEUE`).
    pub send_queue: usize,
    /// Kernel keepalive, TCP_USER_TIMEOUT and TCP_NODELAY of each accepted
    /// connection (`tcp://` and `tls://`).
    pub tcp: tether_tcp_options,
    /// Settings of `tls://`, `quic://` and `udp://` (certificate and key
    /// files, client CA, ALPN, 0-RTT, reset key, PSK, ...), copied at
    /// `tether_server_new`; `{0}` (the default) for each transport's
    /// defaults. See `tether_transport_options_new`.
    pub transport: tether_transport_options,
    /// One of `tether_opening`. `TETHER_OPENING_HELLO` (default): a
    /// connection is `ACCEPTED` only once the client's hello arrived (a
    /// peer that sends none within 10 s is dropped without an event).
    /// `TETHER_OPENING_RAW`: clients that send no hello.
    pub opening: u32,
}

impl tether_server_config {
    fn defaults() -> Self {
        let c = ServerConfig::default();
        Self {
            policy: tether_policy::from_core(&c.policy),
            send_queue: c.send_queue,
            tcp: (&TcpOptions::default()).into(),
            transport: tether_transport_options { id: 0 },
            opening: opening_to_c(c.opening),
        }
    }
}

/// A managed server (opaque handle). `{0}` is "none".
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tether_server {
    /// The handle value; 0 means none.
    pub id: u64,
}

struct ServerObj {
    /// `None` once freed; shared with the pump, which reads events from it.
    server: Arc<Mutex<Option<Server>>>,
    /// Sends by connection id without the lock above (the hot call).
    sender: ServerHandle,
    local_addr: SocketAddr,
    pump: JoinHandle<()>,
    delivery: Delivery,
}

fn lock(server: &Mutex<Option<Server>>) -> MutexGuard<'_, Option<Server>> {
    server.lock().unwrap_or_else(|p| p.into_inner())
}

impl ServerObj {
    fn with<R>(
        &self,
        f: impl FnOnce(&Server) -> Result<R, tether_result>,
    ) -> Result<R, tether_result> {
        match lock(&self.server).as_ref() {
            Some(s) => f(s),
            None => Err(tether_result::StaleHandle),
        }
    }

    fn shutdown(&self) {
        self.pump.abort();
        // Dropping the server stops accepting and closes every connection.
        drop(lock(&self.server).take());
        self.delivery.stop();
    }
}

impl Drop for ServerObj {
    fn drop(&mut self) {
        self.shutdown();
    }
}

static SERVERS: HandleTable<ServerObj> = HandleTable::new(Kind::Server);

/// Fills `*out_config` with the defaults: heartbeat policy 15 s / 10 s /
/// 2 misses, 1024 queued messages per connection, tether's TCP options, no
/// transport options (`{0}`).
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn tether_server_config_default(
    out_config: *mut tether_server_config,
) -> tether_result {
    guard(|| {
        out(out_config, "out_config")?.write(tether_server_config::defaults());
        Ok(())
    })
}

/// Binds `address`, starts serving on tether's runtime and writes the
/// server's handle to `*out_server`.
///
/// `address` is `"scheme://ip:port"` with an IP literal and scheme `tcp`,
/// `tls`, `quic` or `udp`, e.g. `"tcp://127.0.0.1:0"` or
/// `"quic://[::]:7000"`; port 0 lets the kernel choose (see
/// `tether_server_local_port`). `tls://` and `quic://` need a certificate
/// and key (`tether_transport_options_set_tls_cert` /
/// `_set_quic_cert`), `udp://` a pre-shared key, all in
/// `config->transport`. Under `quic://` the QUIC keep-alive and idle
/// timeout follow `config->policy`.
///
/// `config` may be NULL for the defaults; strings and structs, and the
/// transport options object, are borrowed for the call only. Delivery mode
/// as for `tether_client_new`: with a `callback`, events go to
/// `callback(userdata, &event)` on one of tether's shared dispatch threads;
/// with NULL, poll them with `tether_server_poll_event` /
/// `tether_server_event_fd`. Every event of a connection carries the peer's
/// address (`tether_event.peer`). The caller owns the handle and releases
/// it with `tether_server_free`.
///
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`; `TETHER_RESULT_INVALID_ADDRESS`
/// (also for a host name); `TETHER_RESULT_INVALID_CONFIG` (a config field,
/// or a transport option: a missing certificate or key, a file that cannot
/// be read or parsed, a missing or short UDP PSK; the detail names it);
/// `TETHER_RESULT_STALE_HANDLE` / `TETHER_RESULT_INVALID_HANDLE` for a bad
/// `config->transport`; `TETHER_RESULT_NOT_SUPPORTED` for a transport not
/// compiled into this libtether; `TETHER_RESULT_IO` (e.g. the address is in
/// use; the OS error is in `tether_last_error_message`).
#[no_mangle]
pub extern "C" fn tether_server_new(
    address: *const c_char,
    config: *const tether_server_config,
    callback: tether_event_callback,
    userdata: *mut c_void,
    out_server: *mut tether_server,
) -> tether_result {
    guard(|| {
        let endpoint = address::listen(text(address, "address")?)?;
        // SAFETY: NULL means defaults; otherwise the caller promises a valid
        // struct.
        let config = unsafe { config.as_ref() }
            .copied()
            .unwrap_or_else(tether_server_config::defaults);
        let tcp = config.tcp.to_core()?;
        let core = ServerConfig {
            policy: config.policy.to_core()?,
            send_queue: config.send_queue,
            opening: opening_from_c("server.opening", config.opening)?,
        };
        core.validate().map_err(config_error)?;
        let transport = settings(config.transport)?.for_server(tcp, &core.policy);
        let out_server = out(out_server, "out_server")?;
        let rt = runtime()?;
        let acceptor = rt
            .block_on(endpoint::acceptor(&endpoint, &transport))
            .map_err(|e| bind_error(&endpoint, e))?;
        let server = {
            let _ctx = rt.enter();
            Server::spawn(acceptor, core).map_err(config_error)?
        };
        let local_addr = server.local_addr();
        let sender = server.handle();
        let (delivery, sink) = Delivery::new(callback, userdata)?;
        let server = Arc::new(Mutex::new(Some(server)));
        // Events wait until the handle exists, so that every event (the
        // first callback included) can carry it.
        let (ready, handle) = tokio::sync::oneshot::channel();
        let pump = rt.spawn(pump(server.clone(), sink, handle));
        let id = SERVERS.insert(ServerObj {
            server,
            sender,
            local_addr,
            pump,
            delivery,
        })?;
        let _ = ready.send(id);
        out_server.write(tether_server { id });
        Ok(())
    })
}

/// A failed bind: rejected options (the transports' typed configuration
/// errors, or `InvalidInput` / `InvalidData`, which binding a socket never
/// returns) are `INVALID_CONFIG`, the rest `IO`.
fn bind_error(endpoint: &Endpoint, e: io::Error) -> tether_result {
    let typed = e.get_ref().is_some_and(|inner| {
        inner.is::<TlsConfigError>()
            || inner.is::<QuicConfigError>()
            || inner.is::<ConfigError>()
            || inner.is::<EndpointError>()
    });
    let config = matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData
    );
    if typed || config {
        address::options_error(endpoint.scheme.as_str(), "server ", &e.to_string())
    } else {
        fail(tether_result::Io, format!("cannot bind {endpoint}: {e}"))
    }
}

/// Waits for a burst of events of the shared server, without holding its
/// lock across an await (`Server::next_events` is cancel-safe, so polling
/// a fresh future each time loses nothing); 0 once they ended or the
/// server is gone.
async fn next_events(server: &Mutex<Option<Server>>, out: &mut Vec<ServerEvent>) -> usize {
    std::future::poll_fn(|cx| {
        let mut guard = lock(server);
        let Some(s) = guard.as_mut() else {
            return Poll::Ready(0);
        };
        let fut = pin!(s.next_events(out, BURST));
        fut.poll(cx)
    })
    .await
}

async fn pump(
    server: Arc<Mutex<Option<Server>>>,
    sink: Sink,
    handle: tokio::sync::oneshot::Receiver<u64>,
) {
    let Ok(object) = handle.await else { return };
    let mut events = ServerEvents::new(object);
    let mut burst = Vec::with_capacity(BURST);
    while next_events(&server, &mut burst).await > 0 {
        if !sink.push_all(burst.drain(..).map(|e| events.convert(e))) {
            break;
        }
        // A C side that lags holds this object back here.
        sink.room().await;
    }
}

/// Writes the bound port (TCP for `tcp://` and `tls://`, UDP for `quic://`
/// and `udp://`) to `*out_port`: the kernel's choice when the address said
/// port 0. Errors: `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_server_local_port(
    server: tether_server,
    out_port: *mut u16,
) -> tether_result {
    guard(|| {
        let out_port = out(out_port, "out_port")?;
        out_port.write(SERVERS.get(server.id)?.local_addr.port());
        Ok(())
    })
}

/// Queues a copy of `data[0..len]` as one message to connection `conn` (an
/// id from an `ACCEPTED` event). `data` is borrowed for the call and may be
/// NULL when `len` is 0. Never blocks.
/// Errors: `TETHER_RESULT_STALE_HANDLE` (the connection closed or is
/// closing), `TETHER_RESULT_INVALID_HANDLE` (`conn` is 0, or a bad server
/// handle), `TETHER_RESULT_FULL` (its queue is full),
/// `TETHER_RESULT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn tether_server_send(
    server: tether_server,
    conn: u64,
    data: *const u8,
    len: usize,
) -> tether_result {
    guard(|| {
        let data = bytes(data, len, "data")?;
        let id = conn_id(conn)?;
        SERVERS
            .get(server.id)?
            .sender
            .try_send(id, Bytes::copy_from_slice(data))
            .map_err(|e| send_error(e, conn))
    })
}

/// Queues a copy of `data[0..len]` to connection `conn` like
/// `tether_server_send`, but leaves the writing to the next
/// `tether_server_flush` of `conn`: a burst fed and then flushed goes out
/// in one write from the calling thread. Fed inside one of this server's
/// callbacks (an echo), it is flushed when the callback's batch ends (no
/// flush call needed). Until its flush a fed message also goes out with
/// any write the connection makes anyway, at the latest on its next
/// heartbeat turn. Never blocks.
/// Errors: as `tether_server_send`.
#[no_mangle]
pub extern "C" fn tether_server_feed(
    server: tether_server,
    conn: u64,
    data: *const u8,
    len: usize,
) -> tether_result {
    guard(|| {
        let data = bytes(data, len, "data")?;
        let id = conn_id(conn)?;
        let obj = SERVERS.get(server.id)?;
        obj.sender
            .try_feed(id, Bytes::copy_from_slice(data))
            .map_err(|e| send_error(e, conn))?;
        let sender = obj.sender.clone();
        owe_flush((server.id, conn), move || {
            // Gone meanwhile: nothing is left to write.
            let _ = sender.flush(id);
        });
        Ok(())
    })
}

/// Writes every message fed to connection `conn` so far
/// (`tether_server_feed`), from the calling thread; what the socket
/// cannot take at once is finished by tether's runtime.
/// Errors: `TETHER_RESULT_STALE_HANDLE` (the connection closed or is
/// closing), `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_server_flush(server: tether_server, conn: u64) -> tether_result {
    guard(|| {
        let id = conn_id(conn)?;
        SERVERS
            .get(server.id)?
            .sender
            .flush(id)
            .map_err(|e| handle_error(e, conn))
    })
}

fn send_error(e: ServerSendError, conn: u64) -> tether_result {
    match e {
        ServerSendError::Full => tether_result::Full,
        ServerSendError::Handle(h) => handle_error(h, conn),
        ServerSendError::TooLarge { len, max } => fail(
            tether_result::MessageTooLarge,
            format!("message of {len} bytes exceeds the transport's maximum of {max}"),
        ),
    }
}

/// Closes connection `conn` in an orderly way; its `CLOSED` event follows
/// with reason 8 (closed_locally). A second close, or a close of a
/// connection that already ended, returns `TETHER_RESULT_STALE_HANDLE` and
/// touches nothing else. Errors also: `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_server_close(server: tether_server, conn: u64) -> tether_result {
    guard(|| {
        let id = conn_id(conn)?;
        SERVERS
            .get(server.id)?
            .with(|s| s.close(id).map_err(|e| handle_error(e, conn)))
    })
}

/// Writes the number of open connections to `*out_count`.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_server_connection_count(
    server: tether_server,
    out_count: *mut usize,
) -> tether_result {
    guard(|| {
        let out_count = out(out_count, "out_count")?;
        out_count.write(SERVERS.get(server.id)?.with(|s| Ok(s.connection_count()))?);
        Ok(())
    })
}

/// Poll mode: as `tether_client_poll_event`, for a server.
/// Errors: `TETHER_RESULT_EMPTY`, `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_WRONG_MODE`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_server_poll_event(
    server: tether_server,
    out_event: *mut tether_event,
) -> tether_result {
    guard(|| {
        let out_event = out(out_event, "out_event")?;
        let event = SERVERS.get(server.id)?.delivery.poll()?;
        out_event.write(event);
        Ok(())
    })
}

/// Poll mode: as `tether_client_event_fd`, for a server (closed by
/// `tether_server_free`). Errors: `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_WRONG_MODE`, `TETHER_RESULT_NOT_SUPPORTED`,
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_server_event_fd(
    server: tether_server,
    out_fd: *mut std::ffi::c_int,
) -> tether_result {
    guard(|| {
        let out_fd = out(out_fd, "out_fd")?;
        out_fd.write(SERVERS.get(server.id)?.delivery.event_fd()?);
        Ok(())
    })
}

/// Frees the server: stops accepting, closes every connection (clients see
/// an orderly close), discards pending events and makes the handle and all
/// its connection ids stale. Callback guarantees as `tether_client_free`
/// (allowed from inside this server's own callback).
///
/// `{0}` is a no-op (`TETHER_RESULT_OK`); a second free returns
/// `TETHER_RESULT_STALE_HANDLE`; another object's handle
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_server_free(server: tether_server) -> tether_result {
    guard(|| {
        if let Some(obj) = SERVERS.remove(server.id)? {
            obj.shutdown();
        }
        Ok(())
    })
}

pub(crate) fn free_all() {
    for obj in SERVERS.drain() {
        obj.shutdown();
    }
}
