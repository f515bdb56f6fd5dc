//! The supervised server: accepts links, runs one connection machine per
//! connection (pings, pongs, round trips, liveness, the write-stall bound,
//! as on the client), and reports each connection's end exactly once.

use super::clock::Timer;
use super::guarded::spawn_guarded;
use super::shared::{Delivery, Push, Refused, Shared};
use super::wired::{Wired, Written};
use crate::link::{BoxLink, Link};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tether_core::connection::{ConnectionConfig, ConnectionEvent, Opening, Side};
use tether_core::limits;
use tether_core::liveness::{HeartbeatConfig, Policy};
use tether_core::registry::ConnId;
use tether_core::slab::Slab;
use tether_core::slots::{AtomicSlots, MAX_SLOTS};
use tether_core::{Cause, ConfigError, Detail, DisconnectReason, HandleError};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where a server gets its connections from.
#[async_trait]
pub trait Acceptor: Send + 'static {
    /// Waits for the next connection, handshake included.
    ///
    /// An error of kind `NotConnected` means the acceptor is finished for
    /// good (its listening task ended): the server then fails (`Failed`)
    /// instead of retrying forever. Any other error is passing (a failed
    /// handshake, out of descriptors) and the server keeps accepting.
    async fn accept(&mut self) -> io::Result<(BoxLink, SocketAddr)>;
    /// The bound address.
    fn local_addr(&self) -> io::Result<SocketAddr>;
    /// The largest application message the transport carries, in bytes
    /// (`None`: no limit of its own).
    fn max_message(&self) -> Option<usize> {
        None
    }
}

/// Settings of a supervised server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerConfig {
    /// Liveness rule for every connection: the server pings silent clients
    /// (`Heartbeat`, default) or only drops them (`IdleTimeout`).
    pub policy: Policy,
    /// Frames queued per connection before `try_send` reports `Full`:
    /// 1 ..= [`tether_core::limits::MAX_QUEUE`].
    pub send_queue: usize,
    /// How each connection starts. `Hello` (default): a connection is
    /// `Accepted` only once the client's hello arrived and the welcome went
    /// back; a peer that sends none within 10 s is dropped without an event
    /// (it never was a tether connection). `Raw`: no opening exchange
    /// (clients that send no hello).
    pub opening: Opening,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            policy: Policy::Heartbeat(HeartbeatConfig::default()),
            send_queue: 1024,
            opening: Opening::Hello,
        }
    }
}

impl ServerConfig {
    /// Checks every value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.policy.validate()?;
        tether_core::limits::queue_len("server.send_queue", self.send_queue)
    }

    /// The connection machine of every accepted connection: pings, pongs,
    /// round trips, the liveness verdict and the write-stall bound. Data
    /// keeps the driver's queue (`send_queue`), so the machine's own send
    /// queue is unused.
    fn connection(&self, max_message: usize) -> ConnectionConfig {
        ConnectionConfig {
            policy: self.policy,
            opening: self.opening,
            max_frame: max_message.clamp(1, u32::MAX as usize),
            send_queue: 1,
            recv_queue: limits::MAX_QUEUE,
            ..ConnectionConfig::default()
        }
    }
}

/// What a supervised server reports. Per connection: one `Accepted`, any
/// number of `Message`s, then exactly one `Closed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A new connection.
    Accepted {
        /// Its id, valid until `Closed`.
        id: ConnId,
        /// The peer's address.
        peer: SocketAddr,
    },
    /// An application message.
    Message {
        /// The sending connection.
        id: ConnId,
        /// The payload.
        data: Bytes,
    },
    /// The connection ended.
    Closed {
        /// The connection that ended; its id is stale from now on.
        id: ConnId,
        /// Why it ended.
        reason: DisconnectReason,
        /// What happened, in words.
        detail: Detail,
    },
    /// tether failed internally (a panic in the server's tasks): the
    /// server has stopped. Every connection still open was reported
    /// `Closed` (reason `Internal`) before it; nothing follows.
    Failed(Cause),
}

/// Why a message could not be queued for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ServerSendError {
    /// The id is closed, closing, or was never valid.
    #[error(transparent)]
    Handle(#[from] HandleError),
    /// The connection's send queue is full.
    #[error("the connection's send queue is full")]
    Full,
    /// The message is larger than the transport carries.
    #[error("message of {len} bytes exceeds the transport's maximum of {max}")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The transport's maximum message length.
        max: usize,
    },
}

/// The live connection's state, shared by `send` and its task.
type Live = Arc<Shared<BoxLink>>;

struct Conn {
    shared: Live,
    /// A `ServerConn` was taken for it.
    taken: bool,
    cancel: CancellationToken,
    reason: Arc<OnceLock<Cause>>,
    /// The machine's last round trip in microseconds plus one (0: none yet).
    rtt: Arc<AtomicU64>,
}

impl Conn {
    /// Ends the connection with `cause` unless it is already ending.
    fn end(&self, cause: impl Into<Cause>) -> bool {
        end(&self.reason, &self.cancel, cause.into())
    }

    fn ending(&self) -> bool {
        self.reason.get().is_some()
    }
}

/// Ends a connection with `cause` unless it is already ending (true if
/// this was the first end).
fn end(reason: &OnceLock<Cause>, cancel: &CancellationToken, cause: Cause) -> bool {
    let first = reason.set(cause).is_ok();
    cancel.cancel();
    first
}

type Conns = Arc<ConnTable>;

/// A server's open connections: the slab (ids, iteration, removal) under
/// a lock, and beside it what the send path needs of each, by slot, read
/// without one (`tether_core::slots`), so that `send(id)` from many tasks
/// never waits on the table.
#[derive(Default)]
struct ConnTable {
    slab: Mutex<Slab<Conn>>,
    sendable: AtomicSlots<Sendable>,
}

/// What `send(id)` needs of an open connection.
struct Sendable {
    generation: u32,
    shared: Live,
    reason: Arc<OnceLock<Cause>>,
}

impl ConnTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slab<Conn>> {
        self.slab.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, conn: Conn) -> ConnId {
        let mut slab = self.lock();
        let (shared, reason) = (conn.shared.clone(), conn.reason.clone());
        let id = slab.insert(conn);
        let sendable = Sendable {
            generation: id.generation(),
            shared,
            reason,
        };
        // An index past the slots' range is looked up in the slab instead.
        let _ = self
            .sendable
            .store(id.index() as usize, Some(Arc::new(sendable)));
        id
    }

    fn remove(&self, id: ConnId) -> Result<Conn, HandleError> {
        let mut slab = self.lock();
        let conn = slab.remove(id)?;
        let _ = self.sendable.store(id.index() as usize, None);
        Ok(conn)
    }

    fn drain(&self) -> Vec<(ConnId, Conn)> {
        let mut slab = self.lock();
        let all = slab.drain();
        for (id, _) in &all {
            let _ = self.sendable.store(id.index() as usize, None);
        }
        all
    }

    /// The shared state of connection `id` while it is open and not
    /// ending; no lock taken.
    fn live(&self, id: ConnId) -> Option<Live> {
        let index = id.index() as usize;
        if index >= MAX_SLOTS {
            let slab = self.lock();
            return match slab.get(id) {
                Ok(conn) if !conn.ending() => Some(conn.shared.clone()),
                _ => None,
            };
        }
        let sendable = self.sendable.load(index)?;
        (sendable.generation == id.generation() && sendable.reason.get().is_none())
            .then(|| sendable.shared.clone())
    }
}

enum HubMsg {
    /// A connection whose opening exchange is done.
    Accepted(Box<Wired<BoxLink>>, SocketAddr),
    Ended(ConnId),
    /// A task of the server panicked (the text says where and why).
    Failed(String),
}

/// What the server reports when its hub fails: every open connection
/// closed as `Internal`, then `Failed`.
struct Failure {
    conns: Conns,
    events: mpsc::UnboundedSender<ServerEvent>,
    shutdown: CancellationToken,
}

impl Failure {
    fn report(self, text: String) {
        self.shutdown.cancel();
        let cause = Cause::new(DisconnectReason::Internal, text);
        let conns = self.conns.drain();
        for (id, conn) in conns {
            conn.end(cause.clone());
            let _ = self.events.send(ServerEvent::Closed {
                id,
                reason: cause.reason,
                detail: cause.detail.clone(),
            });
        }
        let _ = self.events.send(ServerEvent::Failed(cause));
    }
}

/// A supervised server.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tether_transports::driver::{Server, ServerConfig, ServerEvent};
/// use tether_transports::tcp::{TcpAcceptor, TcpOptions};
///
/// let acceptor = TcpAcceptor::bind("127.0.0.1:7000".parse()?, TcpOptions::default()).await?;
/// let mut server = Server::spawn(acceptor, ServerConfig::default())?;
/// while let Some(event) = server.next_event().await {
///     if let ServerEvent::Message { id, data } = event {
///         server.send(id, data).await?; // echo
///     }
/// }
/// # Ok(()) }
/// ```
pub struct Server {
    conns: Conns,
    /// Sends by id (shares `conns`).
    handle: ServerHandle,
    events: mpsc::UnboundedReceiver<ServerEvent>,
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Starts serving connections from `acceptor`. Must be called inside a
    /// tokio runtime.
    pub fn spawn<A: Acceptor>(acceptor: A, config: ServerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let max_message = acceptor.max_message().unwrap_or(usize::MAX);
        let local_addr = acceptor
            .local_addr()
            .map_err(|e| ConfigError::new("server.listen", e.to_string()))?;
        let connection = config.connection(max_message);
        connection.validate()?;
        let conns: Conns = Arc::default();
        let (hub_tx, hub_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let failed = hub_tx.clone();
        let accept_task = spawn_guarded(
            accept_loop(acceptor, connection, hub_tx.clone(), shutdown.clone()),
            move |text| {
                let _ = failed.send(HubMsg::Failed(text));
            },
        );
        let hub = Hub {
            conns: conns.clone(),
            hub_tx,
            events: events_tx,
            send_queue: config.send_queue,
            shutdown: shutdown.clone(),
        };
        let failed = hub.failure();
        let hub_task = spawn_guarded(hub.run(hub_rx), move |text| failed.report(text));
        Ok(Self {
            handle: ServerHandle {
                conns: conns.clone(),
                max_message,
            },
            conns,
            events: events_rx,
            local_addr,
            shutdown,
            tasks: vec![accept_task, hub_task],
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next event; `None` after shutdown once every `Closed` was returned.
    pub async fn next_event(&mut self) -> Option<ServerEvent> {
        self.events.recv().await
    }

    /// Waits for at least one event, then moves every ready event, up to
    /// `limit`, to the end of `out`, in order. Returns how many were moved;
    /// 0 only once the event stream has ended (or with `limit` 0). One
    /// wake-up for a burst of messages: the call for throughput.
    pub async fn next_events(&mut self, out: &mut Vec<ServerEvent>, limit: usize) -> usize {
        self.events.recv_many(out, limit).await
    }

    /// The next event if one is ready.
    pub fn try_next_event(&mut self) -> Option<ServerEvent> {
        self.events.try_recv().ok()
    }

    /// The largest message the transport carries, in bytes.
    pub fn max_message(&self) -> usize {
        self.handle.max_message
    }

    /// A handle for sending by id from other tasks (cheap to clone).
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Sends `data` on connection `id`, waiting while its queue is full.
    /// With room, the message is written to the socket from the calling
    /// task when no earlier write is still waiting for it; otherwise it
    /// queues behind that write. Finding the connection takes no lock.
    pub async fn send(&self, id: ConnId, data: Bytes) -> Result<(), ServerSendError> {
        self.handle.send(id, data).await
    }

    /// Sends `data` on connection `id` without waiting (see
    /// [`Server::send`]); `Full` when its queue is full.
    pub fn try_send(&self, id: ConnId, data: Bytes) -> Result<(), ServerSendError> {
        self.handle.try_send(id, data)
    }

    /// Closes connection `id` in an orderly way. Its `Closed` event follows
    /// with reason `ClosedLocally`. A second close, or a close of an id that
    /// already ended, is `Err(Stale)` and touches nothing else.
    pub fn close(&self, id: ConnId) -> Result<(), HandleError> {
        let conns = self.conns.lock();
        match conns.get(id) {
            Ok(conn) if conn.end(Cause::closed_by_application()) => Ok(()),
            _ => Err(HandleError::Stale),
        }
    }

    /// The last round trip measured on connection `id` (a ping of the
    /// server's and the client's pong); `Ok(None)` before the first.
    pub fn rtt(&self, id: ConnId) -> Result<Option<Duration>, HandleError> {
        let conns = self.conns.lock();
        let micros = conns.get(id)?.rtt.load(Ordering::Relaxed);
        Ok(micros.checked_sub(1).map(Duration::from_micros))
    }

    /// Takes connection `id`'s own handle: from now on its messages are
    /// read by whoever waits on the [`ServerConn`] (in that task, straight
    /// from the socket), not reported as [`ServerEvent::Message`]. Messages
    /// that arrived before the call were reported as events already; its
    /// `Closed` still comes as an event. `None` when `id` is stale or its
    /// handle was taken before.
    ///
    /// ```no_run
    /// # async fn demo(mut server: tether_transports::driver::Server) {
    /// use tether_transports::driver::ServerEvent;
    ///
    /// while let Some(event) = server.next_event().await {
    ///     if let ServerEvent::Accepted { id, .. } = event {
    ///         let Some(mut conn) = server.take_conn(id) else { continue };
    ///         tokio::spawn(async move {
    ///             let mut batch = Vec::new();
    ///             while conn.next_messages(&mut batch, 256).await > 0 {
    ///                 for msg in batch.drain(..) {
    ///                     if conn.send(msg).await.is_err() {
    ///                         return;
    ///                     }
    ///                 }
    ///             }
    ///         });
    ///     }
    /// }
    /// # }
    /// ```
    pub fn take_conn(&self, id: ConnId) -> Option<ServerConn> {
        let mut conns = self.conns.lock();
        let conn = conns.get_mut(id).ok()?;
        if conn.taken || conn.ending() {
            return None;
        }
        conn.taken = true;
        conn.shared.set_delivery(Delivery::Queued);
        Some(ServerConn {
            id,
            shared: conn.shared.clone(),
            cancel: conn.cancel.clone(),
            reason: conn.reason.clone(),
            max_message: self.handle.max_message,
            one: Vec::with_capacity(1),
        })
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.lock().len()
    }

    /// Stops accepting and closes every connection; each still gets its
    /// `Closed` event, after which the event stream ends.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

/// One connection's own handle (see [`Server::take_conn`]): its messages
/// in order, read in the task that waits for them, and its sends without
/// the server's table of connections. Its messages end (`None`, or 0 from
/// `next_messages`) once the connection has ended and every message it
/// received was taken; the server reports the `Closed`. Dropping it drops
/// the connection's later messages but leaves the connection open.
pub struct ServerConn {
    id: ConnId,
    shared: Live,
    cancel: CancellationToken,
    reason: Arc<OnceLock<Cause>>,
    max_message: usize,
    one: Vec<Bytes>,
}

impl std::fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConn")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ServerConn {
    /// The connection's id (as in the server's events).
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Waits for at least one message, then moves every ready one, up to
    /// `limit`, to the end of `out`, in order. Returns how many; 0 once the
    /// connection has ended and all were taken (or with `limit` 0).
    pub async fn next_messages(&mut self, out: &mut Vec<Bytes>, limit: usize) -> usize {
        if limit == 0 {
            return 0;
        }
        let limit = out.len().saturating_add(limit);
        std::future::poll_fn(|cx| self.shared.poll_receive(Some(cx), out, limit, |m| m)).await
    }

    /// The next message; `None` once the connection has ended.
    pub async fn next_message(&mut self) -> Option<Bytes> {
        std::future::poll_fn(|cx| self.poll_one(Some(cx))).await
    }

    /// The next message if one is ready.
    pub fn try_next_message(&mut self) -> Option<Bytes> {
        match self.poll_one(None) {
            Poll::Ready(msg) => msg,
            Poll::Pending => None,
        }
    }

    fn poll_one(&mut self, cx: Option<&mut Context<'_>>) -> Poll<Option<Bytes>> {
        let mut one = std::mem::take(&mut self.one);
        let polled = self.shared.poll_receive(cx, &mut one, 1, |m| m);
        let msg = one.pop();
        self.one = one;
        polled.map(|_| msg)
    }

    /// Sends `data`, waiting while the queue is full (see [`Server::send`]).
    pub async fn send(&self, data: Bytes) -> Result<(), ServerSendError> {
        check_size(self.max_message, &data)?;
        send_on(&self.shared, data, Push::Send).await
    }

    /// Queues `data` for the next [`ServerConn::flush`], as a buffered
    /// writer does (see `ClientHandle::feed`: until the flush, a fed
    /// message goes out with any write the connection makes anyway, at the
    /// latest on its next heartbeat turn).
    ///
    /// ```no_run
    /// # async fn demo(mut conn: tether_transports::driver::ServerConn) {
    /// // An echo: each burst received goes back in one write.
    /// let mut batch = Vec::new();
    /// while conn.next_messages(&mut batch, 256).await > 0 {
    ///     for msg in batch.drain(..) {
    ///         if conn.feed(msg).await.is_err() {
    ///             return;
    ///         }
    ///     }
    ///     conn.flush();
    /// }
    /// # }
    /// ```
    pub async fn feed(&self, data: Bytes) -> Result<(), ServerSendError> {
        check_size(self.max_message, &data)?;
        send_on(&self.shared, data, Push::Feed).await
    }

    /// Writes every message fed so far, from the calling task.
    pub fn flush(&self) {
        self.shared.flush();
    }

    /// Sends `data` without waiting; `Full` when the queue is full.
    pub fn try_send(&self, data: Bytes) -> Result<(), ServerSendError> {
        check_size(self.max_message, &data)?;
        try_send_on(&self.shared, data, Push::Send)
    }

    /// Feeds `data` without waiting (see [`ServerConn::feed`]); `Full`
    /// when the queue is full.
    pub fn try_feed(&self, data: Bytes) -> Result<(), ServerSendError> {
        check_size(self.max_message, &data)?;
        try_send_on(&self.shared, data, Push::Feed)
    }

    /// Closes the connection in an orderly way (as [`Server::close`]).
    /// `Err(Stale)` when it is already ending.
    pub fn close(&self) -> Result<(), HandleError> {
        if end(&self.reason, &self.cancel, Cause::closed_by_application()) {
            Ok(())
        } else {
            Err(HandleError::Stale)
        }
    }
}

impl Drop for ServerConn {
    fn drop(&mut self) {
        self.shared.discard_received();
    }
}

impl futures_util::Stream for ServerConn {
    type Item = Bytes;

    /// The messages one by one; `None` once the connection has ended.
    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.get_mut().poll_one(Some(cx))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for task in &self.tasks {
            task.abort();
        }
        let conns = self.conns.lock();
        for (_, conn) in conns.iter() {
            conn.end(Cause::new(
                DisconnectReason::ClosedLocally,
                "the server was dropped",
            ));
        }
    }
}

/// The sending side of a server, by connection id: cheap to clone and
/// usable from any task. Finding a connection takes no lock.
#[derive(Clone)]
pub struct ServerHandle {
    conns: Conns,
    max_message: usize,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("max_message", &self.max_message)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The shared state of connection `id` while it is open and not ending.
    fn live(&self, id: ConnId) -> Result<Live, ServerSendError> {
        self.conns
            .live(id)
            .ok_or(ServerSendError::Handle(HandleError::Stale))
    }

    /// As [`Server::send`].
    pub async fn send(&self, id: ConnId, data: Bytes) -> Result<(), ServerSendError> {
        check_size(self.max_message, &data)?;
        send_on(&self.live(id)?, data, Push::Send).await
    }

    /// As [`ServerConn::feed`], by id.
    pub async fn feed(&self, id: ConnId, data: Bytes) -> Result<(), ServerSendError> {
        check_size(self.max_message, &data)?;
        send_on(&self.live(id)?, data, Push::Feed).await
    }

    /// As [`ServerConn::flush`], by id; `Stale` once it is gone.
    pub fn flush(&self, id: ConnId) -> Result<(), HandleError> {
        self.conns.live(id).ok_or(HandleError::Stale)?.flush();
        Ok(())
    }

    /// As [`Server::try_send`].
    pub fn try_send(&self, id: ConnId, data: Bytes) -> Result<(), ServerSendError> {
        check_size(self.max_message, &data)?;
        try_send_on(&self.live(id)?, data, Push::Send)
    }

    /// As [`ServerConn::try_feed`], by id: queued for the next
    /// [`ServerHandle::flush`] of `id`.
    pub fn try_feed(&self, id: ConnId, data: Bytes) -> Result<(), ServerSendError> {
        check_size(self.max_message, &data)?;
        try_send_on(&self.live(id)?, data, Push::Feed)
    }

    /// The largest message the transport carries, in bytes.
    pub fn max_message(&self) -> usize {
        self.max_message
    }
}

fn check_size(max: usize, data: &Bytes) -> Result<(), ServerSendError> {
    if data.len() > max {
        return Err(ServerSendError::TooLarge {
            len: data.len(),
            max,
        });
    }
    Ok(())
}

/// Sends on one connection, waiting while its queue is full.
async fn send_on(shared: &Live, data: Bytes, push: Push) -> Result<(), ServerSendError> {
    let mut msg = Some(data);
    std::future::poll_fn(|cx| shared.poll_send(cx, &mut msg, push))
        .await
        .map_err(|_| ServerSendError::Handle(HandleError::Stale))
}

/// Sends (or feeds) on one connection without waiting.
fn try_send_on(shared: &Live, data: Bytes, push: Push) -> Result<(), ServerSendError> {
    match shared.try_send(data, push) {
        Ok(()) => Ok(()),
        Err(Refused::Full(_)) => Err(ServerSendError::Full),
        Err(Refused::Closed(_)) => Err(HandleError::Stale.into()),
    }
}

async fn accept_loop<A: Acceptor>(
    mut acceptor: A,
    connection: ConnectionConfig,
    hub: mpsc::UnboundedSender<HubMsg>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = acceptor.accept() => accepted,
        };
        match accepted {
            Ok((link, peer)) => {
                if hub.is_closed() {
                    return;
                }
                // Each opening runs on its own: a slow or silent peer never
                // holds up the next accept.
                let (hub, shutdown) = (hub.clone(), shutdown.clone());
                let opening = async move {
                    let opened = tokio::select! {
                        () = shutdown.cancelled() => return,
                        opened = Wired::open(link, Side::Server, connection) => opened,
                    };
                    match opened {
                        Ok(wired) => {
                            let _ = hub.send(HubMsg::Accepted(Box::new(wired), peer));
                        }
                        Err(cause) => {
                            tracing::debug!(%peer, reason = %cause.reason, detail = %cause.detail, "opening failed");
                        }
                    }
                };
                spawn_guarded(opening, move |text| {
                    tracing::warn!(%peer, panic = %text, "opening failed");
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                let _ = hub.send(HubMsg::Failed(format!("the acceptor stopped: {e}")));
                return;
            }
            Err(e) => {
                // Out of descriptors, a failed handshake, ...: keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

struct Hub {
    conns: Conns,
    hub_tx: mpsc::UnboundedSender<HubMsg>,
    events: mpsc::UnboundedSender<ServerEvent>,
    send_queue: usize,
    shutdown: CancellationToken,
}

impl Hub {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<HubMsg>) {
        let mut shutting_down = false;
        loop {
            if shutting_down && self.lock().is_empty() {
                return;
            }
            tokio::select! {
                biased;
                () = self.shutdown.cancelled(), if !shutting_down => {
                    shutting_down = true;
                    for (_, conn) in self.lock().iter() {
                        conn.end(Cause::new(DisconnectReason::ClosedLocally, "the server shut down"));
                    }
                }
                msg = rx.recv() => match msg {
                    Some(msg) => if !self.on_msg(msg, shutting_down) {
                        return;
                    },
                    None => return,
                },
            }
        }
    }

    /// What reports this server's failure (from the hub or its guard).
    fn failure(&self) -> Failure {
        Failure {
            conns: self.conns.clone(),
            events: self.events.clone(),
            shutdown: self.shutdown.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slab<Conn>> {
        self.conns.lock()
    }

    /// Handles one message; `false` when the hub must stop (the server
    /// failed).
    fn on_msg(&mut self, msg: HubMsg, shutting_down: bool) -> bool {
        match msg {
            HubMsg::Accepted(wired, peer) => {
                if !shutting_down {
                    self.on_accepted(*wired, peer);
                }
            }
            HubMsg::Ended(id) => {
                let removed = self.conns.remove(id);
                if let Ok(conn) = removed {
                    let cause = conn
                        .reason
                        .get()
                        .cloned()
                        .unwrap_or_else(|| DisconnectReason::Io.into());
                    tracing::info!(?id, reason = %cause.reason, detail = %cause.detail, "connection closed");
                    let _ = self.events.send(ServerEvent::Closed {
                        id,
                        reason: cause.reason,
                        detail: cause.detail,
                    });
                }
            }
            HubMsg::Failed(text) => {
                self.failure().report(text);
                return false;
            }
        }
        true
    }

    fn on_accepted(&mut self, wired: Wired<BoxLink>, peer: SocketAddr) {
        let shared: Live = Arc::new(Shared::new(wired, self.send_queue, Delivery::Callback));
        let conn = Conn {
            shared: shared.clone(),
            taken: false,
            cancel: CancellationToken::new(),
            reason: Arc::new(OnceLock::new()),
            rtt: Arc::new(AtomicU64::new(0)),
        };
        let reason = conn.reason.clone();
        let cancel = conn.cancel.clone();
        let rtt = conn.rtt.clone();
        let id = self.conns.insert(conn);
        let hub = self.hub_tx.clone();
        let task = ConnTask {
            id,
            shared,
            cancel,
            reason: reason.clone(),
            rtt,
            hub: self.hub_tx.clone(),
            events: self.events.clone(),
        };
        let _ = self.events.send(ServerEvent::Accepted { id, peer });
        // A panic in one connection's task ends that connection alone.
        spawn_guarded(task.run(), move |text| {
            let _ = reason.set(Cause::new(DisconnectReason::Internal, text));
            let _ = hub.send(HubMsg::Ended(id));
        });
    }
}

/// How long a local close may spend writing what was queued before it.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(2);

struct ConnTask {
    id: ConnId,
    shared: Live,
    cancel: CancellationToken,
    reason: Arc<OnceLock<Cause>>,
    rtt: Arc<AtomicU64>,
    hub: mpsc::UnboundedSender<HubMsg>,
    /// Messages go straight to the application. `Closed` still follows
    /// them: the hub sends it after this task's `Ended`, which comes after
    /// its last message.
    events: mpsc::UnboundedSender<ServerEvent>,
}

impl ConnTask {
    async fn run(mut self) {
        let cause = self.serve().await;
        let _ = self.reason.set(cause);
        let local = self.reason.get().map(|c| c.reason) == Some(DisconnectReason::ClosedLocally);
        // From here on sends are refused: the connection is ending. The
        // link is closed in a future of its own on the heap, so that this
        // task (one per connection, alive as long as it) holds no link.
        let closing = self
            .shared
            .take(false)
            .filter(|_| local)
            .map(|wired| self.close_flushed(wired));
        if let Some(closing) = closing {
            closing.await;
        }
        self.shared.finish();
        let _ = self.hub.send(HubMsg::Ended(self.id));
    }

    /// A local close: what was queued is written, then the link closed.
    fn close_flushed(&self, mut wired: Wired<BoxLink>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.flush_queue(&mut wired).await;
            wired.link.close().await;
        })
    }

    /// The cause of an end asked for from outside (close, shutdown).
    fn ended_from_outside(&self) -> Cause {
        self.reason
            .get()
            .cloned()
            .unwrap_or_else(Cause::closed_by_application)
    }

    /// Reports the machine's messages; its `Closed` ends the connection.
    fn take_events(&self, wired: &mut Wired<BoxLink>) -> Option<Cause> {
        while let Some(event) = wired.conn.poll_event() {
            match event {
                ConnectionEvent::Message(data) => {
                    if let Some(data) = self.shared.deliver_late(data) {
                        let _ = self.events.send(ServerEvent::Message { id: self.id, data });
                    }
                }
                ConnectionEvent::Closed(cause) => return Some(cause),
                ConnectionEvent::Connected { .. } => {}
            }
        }
        None
    }

    /// Serves the connection until it ends (see `Shared::poll_serve`). A
    /// peer that never reads cannot wedge this: the machine's stall bound
    /// ends the write, and close and shutdown are seen on every wake-up.
    async fn serve(&mut self) -> Cause {
        // One cancellation future for the task's life, not one per frame.
        let cancelled = self.cancel.clone().cancelled_owned();
        tokio::pin!(cancelled);
        let mut timer = Timer::new();
        let (id, events) = (self.id, &self.events);
        let served = std::future::poll_fn(|cx| {
            if cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            self.shared.poll_serve(cx, &mut timer, &self.rtt, |data| {
                let _ = events.send(ServerEvent::Message { id, data });
            })
        })
        .await;
        served.unwrap_or_else(|| self.ended_from_outside())
    }

    /// On a local close (`close(id)`, shutdown): writes what the
    /// application queued before it closed, within `FLUSH_ON_CLOSE`, so
    /// an orderly close loses nothing the peer is still reading. Messages
    /// that arrive meanwhile are still reported, before `Closed`.
    async fn flush_queue(&self, wired: &mut Wired<BoxLink>) {
        let unwritten =
            match tokio::time::timeout(FLUSH_ON_CLOSE, wired.write(std::future::pending())).await {
                Ok(Written::Done) => 0,
                _ => wired.outgoing.len().max(1),
            };
        if unwritten > 0 {
            tracing::debug!(id = ?self.id, unwritten, "queued messages not all written before the close");
        }
        let _ = self.take_events(wired);
    }
}
