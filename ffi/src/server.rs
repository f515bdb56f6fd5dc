//! `tether_server`: a supervised server on tether's runtime that watches
//! every connection's liveness and reports each connection's end once.

use crate::address;
use crate::backoff::config_error;
use crate::conn_id::{conn_id, handle_error};
use crate::delivery::{Delivery, Sink};
use crate::event::{tether_event, tether_event_callback, OwnedEvent};
use crate::handle::{HandleTable, Kind};
use crate::panic::{fail, guard};
use crate::policy::tether_policy;
use crate::ptr::{bytes, out, text};
use crate::result::tether_result;
use crate::runtime::runtime;
use crate::socket::tether_tcp_options;
use bytes::Bytes;
use std::ffi::{c_char, c_void};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use tether_transports::driver::{Server, ServerConfig, ServerEvent, ServerSendError};
use tether_transports::tcp::{TcpAcceptor, TcpOptions};
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
    /// `TETHER_RESULT_FULL` (>= 1).
    pub send_queue: usize,
    /// Kernel keepalive, TCP_USER_TIMEOUT and TCP_NODELAY of each accepted
    /// connection.
    pub tcp: tether_tcp_options,
}

impl tether_server_config {
    fn defaults() -> Self {
        let c = ServerConfig::default();
        let policy = match c.policy {
            tether_core::liveness::Policy::Heartbeat(h) => tether_policy::heartbeat(&h),
            tether_core::liveness::Policy::IdleTimeout(_) => {
                tether_policy::heartbeat(&Default::default())
            }
        };
        Self {
            policy,
            send_queue: c.send_queue,
            tcp: (&TcpOptions::default()).into(),
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
/// 2 misses, 1024 queued messages per connection, tether's TCP options.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn tether_server_config_default(
    out_config: *mut tether_server_config,
) -> tether_result {
    guard(|| {
        out(out_config)?.write(tether_server_config::defaults());
        Ok(())
    })
}

/// Binds `address` (`"tcp://ip:port"` with an IP literal, e.g.
/// `"tcp://127.0.0.1:0"` or `"tcp://[::]:7000"`; port 0 lets the kernel
/// choose, see `tether_server_local_port`), starts serving on tether's
/// runtime and writes the server's handle to `*out_server`.
///
/// `config` may be NULL for the defaults; strings and structs are borrowed
/// for the call only. Delivery mode as for `tether_client_new`: with a
/// `callback`, events go to `callback(userdata, &event)` on a dispatch thread
/// owned by this server; with NULL, poll them with
/// `tether_server_poll_event` / `tether_server_event_fd`. The caller owns
/// the handle and releases it with `tether_server_free`.
///
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_INVALID_ADDRESS`
/// (also for a host name), `TETHER_RESULT_NOT_SUPPORTED` (a scheme other
/// than `tcp://`), `TETHER_RESULT_INVALID_CONFIG`, `TETHER_RESULT_IO` (e.g.
/// the address is in use; the OS error is in `tether_last_error_message`).
#[no_mangle]
pub extern "C" fn tether_server_new(
    address: *const c_char,
    config: *const tether_server_config,
    callback: tether_event_callback,
    userdata: *mut c_void,
    out_server: *mut tether_server,
) -> tether_result {
    guard(|| {
        let sockaddr = address::listen(text(address)?)?;
        // SAFETY: NULL means defaults; otherwise the caller promises a valid
        // struct.
        let config = unsafe { config.as_ref() }
            .copied()
            .unwrap_or_else(tether_server_config::defaults);
        let tcp = config.tcp.to_core()?;
        let core = ServerConfig {
            policy: config.policy.to_core()?,
            send_queue: config.send_queue,
        };
        core.validate().map_err(config_error)?;
        let out_server = out(out_server)?;
        let rt = runtime()?;
        let acceptor = rt
            .block_on(TcpAcceptor::bind(sockaddr, tcp))
            .map_err(|e| fail(tether_result::Io, format!("cannot bind {sockaddr}: {e}")))?;
        let server = {
            let _ctx = rt.enter();
            Server::spawn(acceptor, core).map_err(config_error)?
        };
        let local_addr = server.local_addr();
        let (delivery, sink) = Delivery::new(callback, userdata, "tether-server-cb")?;
        let server = Arc::new(Mutex::new(Some(server)));
        let pump = rt.spawn(pump(server.clone(), sink));
        let id = SERVERS.insert(ServerObj {
            server,
            local_addr,
            pump,
            delivery,
        })?;
        out_server.write(tether_server { id });
        Ok(())
    })
}

/// The next event of the shared server, without holding its lock across an
/// await (the receive is cancel-safe, so polling a fresh future each time
/// loses nothing).
async fn next_event(server: &Mutex<Option<Server>>) -> Option<ServerEvent> {
    std::future::poll_fn(|cx| {
        let mut guard = lock(server);
        let Some(s) = guard.as_mut() else {
            return Poll::Ready(None);
        };
        let fut = pin!(s.next_event());
        fut.poll(cx)
    })
    .await
}

async fn pump(server: Arc<Mutex<Option<Server>>>, sink: Sink) {
    while let Some(event) = next_event(&server).await {
        if !sink.push(OwnedEvent::from(event)) {
            break;
        }
    }
}

/// Writes the bound TCP port to `*out_port` (the kernel's choice when the
/// address said port 0). Errors: `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_server_local_port(
    server: tether_server,
    out_port: *mut u16,
) -> tether_result {
    guard(|| {
        let out_port = out(out_port)?;
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
        let data = bytes(data, len)?;
        let id = conn_id(conn)?;
        SERVERS.get(server.id)?.with(|s| {
            s.try_send(id, Bytes::copy_from_slice(data))
                .map_err(|e| match e {
                    ServerSendError::Full => tether_result::Full,
                    ServerSendError::Handle(h) => handle_error(h, conn),
                    ServerSendError::TooLarge { len, max } => fail(
                        tether_result::MessageTooLarge,
                        format!("message of {len} bytes exceeds the transport's maximum of {max}"),
                    ),
                })
        })
    })
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
        let out_count = out(out_count)?;
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
        let out_event = out(out_event)?;
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
        let out_fd = out(out_fd)?;
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
