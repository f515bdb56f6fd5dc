//! The supervised server: accepts links, watches every connection's
//! liveness in one registry, and reports each connection's end exactly once.

use super::batch::gather;
use super::clock::{now, Timer};
use super::guarded::spawn_guarded;
use crate::link::{BoxLink, Link};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::FutureExt;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tether_core::codec::Frame;
use tether_core::liveness::{HeartbeatConfig, Policy};
use tether_core::registry::{ConnId, Registry, RegistryEvent};
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            policy: Policy::Heartbeat(HeartbeatConfig::default()),
            send_queue: 1024,
        }
    }
}

impl ServerConfig {
    /// Checks every value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.policy.validate()?;
        tether_core::limits::queue_len("server.send_queue", self.send_queue)
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

struct Conn {
    tx: mpsc::Sender<Frame>,
    cancel: CancellationToken,
    reason: Arc<OnceLock<Cause>>,
    /// Set by the connection's task when it asks the hub for a touch,
    /// cleared by the hub: one touch in flight covers a burst of frames.
    touch_queued: Arc<AtomicBool>,
}

impl Conn {
    /// Ends the connection with `cause` unless it is already ending.
    fn end(&self, cause: impl Into<Cause>) -> bool {
        let first = self.reason.set(cause.into()).is_ok();
        self.cancel.cancel();
        first
    }

    fn ending(&self) -> bool {
        self.reason.get().is_some()
    }
}

type Conns = Arc<Mutex<HashMap<ConnId, Conn>>>;

enum HubMsg {
    Accepted(BoxLink, SocketAddr),
    Touch(ConnId),
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
        let conns: Vec<(ConnId, Conn)> = self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
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
    events: mpsc::UnboundedReceiver<ServerEvent>,
    local_addr: SocketAddr,
    max_message: usize,
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
        let registry = Registry::new(config.policy, now())?;
        let conns: Conns = Arc::default();
        let (hub_tx, hub_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let failed = hub_tx.clone();
        let accept_task = spawn_guarded(
            accept_loop(acceptor, hub_tx.clone(), shutdown.clone()),
            move |text| {
                let _ = failed.send(HubMsg::Failed(text));
            },
        );
        let hub = Hub {
            registry,
            conns: conns.clone(),
            hub_tx,
            events: events_tx,
            send_queue: config.send_queue,
            shutdown: shutdown.clone(),
            origin: now(),
        };
        let failed = hub.failure();
        let hub_task = spawn_guarded(hub.run(hub_rx), move |text| failed.report(text));
        Ok(Self {
            conns,
            events: events_rx,
            local_addr,
            max_message,
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

    fn check_size(&self, data: &Bytes) -> Result<(), ServerSendError> {
        if data.len() > self.max_message {
            return Err(ServerSendError::TooLarge {
                len: data.len(),
                max: self.max_message,
            });
        }
        Ok(())
    }

    /// The largest message the transport carries, in bytes.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Queues `data` for connection `id`, waiting while its queue is full.
    pub async fn send(&self, id: ConnId, data: Bytes) -> Result<(), ServerSendError> {
        self.check_size(&data)?;
        // The common case (room in the queue) needs no clone of the sender.
        let (tx, frame) = {
            let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
            let conn = match conns.get(&id) {
                Some(conn) if !conn.ending() => conn,
                _ => return Err(HandleError::Stale.into()),
            };
            match conn.tx.try_send(Frame::Data(data)) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(frame)) => (conn.tx.clone(), frame),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(HandleError::Stale.into()),
            }
        };
        tx.send(frame)
            .await
            .map_err(|_| ServerSendError::Handle(HandleError::Stale))
    }

    /// Queues `data` for connection `id` without waiting.
    pub fn try_send(&self, id: ConnId, data: Bytes) -> Result<(), ServerSendError> {
        self.check_size(&data)?;
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        match conns.get(&id) {
            Some(conn) if !conn.ending() => {
                conn.tx.try_send(Frame::Data(data)).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => ServerSendError::Full,
                    mpsc::error::TrySendError::Closed(_) => HandleError::Stale.into(),
                })
            }
            _ => Err(HandleError::Stale.into()),
        }
    }

    /// Closes connection `id` in an orderly way. Its `Closed` event follows
    /// with reason `ClosedLocally`. A second close, or a close of an id that
    /// already ended, is `Err(Stale)` and touches nothing else.
    pub fn close(&self, id: ConnId) -> Result<(), HandleError> {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        match conns.get(&id) {
            Some(conn) if conn.end(Cause::closed_by_application()) => Ok(()),
            _ => Err(HandleError::Stale),
        }
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Stops accepting and closes every connection; each still gets its
    /// `Closed` event, after which the event stream ends.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for task in &self.tasks {
            task.abort();
        }
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        for conn in conns.values() {
            conn.end(Cause::new(
                DisconnectReason::ClosedLocally,
                "the server was dropped",
            ));
        }
    }
}

async fn accept_loop<A: Acceptor>(
    mut acceptor: A,
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
                if hub.send(HubMsg::Accepted(link, peer)).is_err() {
                    return;
                }
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
    registry: Registry,
    conns: Conns,
    hub_tx: mpsc::UnboundedSender<HubMsg>,
    events: mpsc::UnboundedSender<ServerEvent>,
    send_queue: usize,
    shutdown: CancellationToken,
    origin: std::time::Instant,
}

impl Hub {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<HubMsg>) {
        let mut shutting_down = false;
        let mut timer = Timer::new();
        loop {
            if shutting_down && self.lock().is_empty() {
                return;
            }
            timer.arm(self.registry.poll_timeout());
            tokio::select! {
                biased;
                () = self.shutdown.cancelled(), if !shutting_down => {
                    shutting_down = true;
                    for conn in self.lock().values() {
                        conn.end(Cause::new(DisconnectReason::ClosedLocally, "the server shut down"));
                    }
                }
                msg = rx.recv() => match msg {
                    Some(msg) => if !self.on_msg(msg, shutting_down) {
                        return;
                    },
                    None => return,
                },
                () = timer.fired() => self.on_timer(),
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Conn>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Handles one message; `false` when the hub must stop (the server
    /// failed).
    fn on_msg(&mut self, msg: HubMsg, shutting_down: bool) -> bool {
        match msg {
            HubMsg::Accepted(link, peer) => {
                if !shutting_down {
                    self.on_accepted(link, peer);
                }
            }
            HubMsg::Touch(id) => {
                // Cleared before reading the clock: a frame after this
                // point queues a new touch.
                if let Some(conn) = self.lock().get(&id) {
                    conn.touch_queued.store(false, Ordering::Release);
                }
                let _ = self.registry.touch(id, now());
            }
            HubMsg::Ended(id) => {
                let _ = self.registry.remove(id);
                if let Some(conn) = self.lock().remove(&id) {
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

    fn on_accepted(&mut self, mut link: BoxLink, peer: SocketAddr) {
        let id = match self.registry.insert(now(), 0) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "registry full; refusing connection");
                tokio::spawn(async move { link.close().await });
                return;
            }
        };
        let (tx, rx) = mpsc::channel(self.send_queue);
        let conn = Conn {
            tx,
            cancel: CancellationToken::new(),
            reason: Arc::new(OnceLock::new()),
            touch_queued: Arc::new(AtomicBool::new(false)),
        };
        let reason = conn.reason.clone();
        let hub = self.hub_tx.clone();
        let task = ConnTask {
            id,
            link,
            rx,
            cancel: conn.cancel.clone(),
            reason: conn.reason.clone(),
            touch_queued: conn.touch_queued.clone(),
            hub: self.hub_tx.clone(),
            events: self.events.clone(),
            inbox: VecDeque::new(),
            outgoing: VecDeque::new(),
            pongs_due: Vec::new(),
        };
        self.lock().insert(id, conn);
        let _ = self.events.send(ServerEvent::Accepted { id, peer });
        // A panic in one connection's task ends that connection alone.
        spawn_guarded(task.run(), move |text| {
            let _ = reason.set(Cause::new(DisconnectReason::Internal, text));
            let _ = hub.send(HubMsg::Ended(id));
        });
    }

    fn on_timer(&mut self) {
        let at = now();
        self.registry.handle_timeout(at);
        while let Some(event) = self.registry.poll_event() {
            let conns = self.lock();
            match event {
                RegistryEvent::PingDue { id, .. } => {
                    if let Some(conn) = conns.get(&id) {
                        let stamp = at.saturating_duration_since(self.origin).as_micros() as u64;
                        // A full queue means traffic is already on its way.
                        let _ = conn.tx.try_send(Frame::Ping(stamp));
                    }
                }
                RegistryEvent::Expired { id, silent_for, .. } => {
                    if let Some(conn) = conns.get(&id) {
                        conn.end(Cause::silent(silent_for, self.registry.detection_bound()));
                    }
                }
            }
        }
    }
}

/// Most frames written with one flush.
const MAX_BATCH: usize = 64;

/// How long a local close may spend writing what was queued before it.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(2);

struct ConnTask {
    id: ConnId,
    link: BoxLink,
    rx: mpsc::Receiver<Frame>,
    cancel: CancellationToken,
    reason: Arc<OnceLock<Cause>>,
    touch_queued: Arc<AtomicBool>,
    hub: mpsc::UnboundedSender<HubMsg>,
    /// Messages go straight to the application; the hub only sees the
    /// liveness touch. `Closed` still follows them: the hub sends it after
    /// this task's `Ended`, which comes after its last message.
    events: mpsc::UnboundedSender<ServerEvent>,
    /// Frames read while a write waited (see `Link::transmit`).
    inbox: VecDeque<Frame>,
    /// The batch being written; what a cut-short write left unwritten.
    outgoing: VecDeque<Frame>,
    /// Pings received that still want their pong.
    pongs_due: Vec<Frame>,
}

impl ConnTask {
    /// Asks the hub to refresh this connection's liveness, unless a request
    /// is already on its way.
    fn touch(&self) {
        if !self.touch_queued.swap(true, Ordering::AcqRel) {
            let _ = self.hub.send(HubMsg::Touch(self.id));
        }
    }

    async fn run(mut self) {
        let reason = self.serve().await;
        let _ = self.reason.set(reason.into());
        // Whatever was read ahead came before the end: reported first.
        self.take_inbox();
        if self.reason.get().map(|c| c.reason) == Some(DisconnectReason::ClosedLocally) {
            self.flush_queue().await;
            self.link.close().await;
        }
        let _ = self.hub.send(HubMsg::Ended(self.id));
    }

    /// The reason of an end asked for from outside (close, expiry, shutdown).
    fn ended_from_outside(&self) -> DisconnectReason {
        self.reason
            .get()
            .map(|c| c.reason)
            .unwrap_or(DisconnectReason::ClosedLocally)
    }

    async fn serve(&mut self) -> DisconnectReason {
        // One cancellation future for the task's life, not one per frame.
        let cancelled = self.cancel.clone().cancelled_owned();
        tokio::pin!(cancelled);
        loop {
            if self.pongs_due.is_empty() {
                tokio::select! {
                    biased;
                    () = &mut cancelled => return self.ended_from_outside(),
                    frame = self.rx.recv() => {
                        let Some(frame) = frame else { return DisconnectReason::ClosedLocally };
                        // Take what else is queued so that one flush carries it all.
                        self.outgoing.push_back(frame);
                        gather(&mut self.rx, &mut self.outgoing, MAX_BATCH).await;
                    }
                    frame = self.link.recv() => {
                        let mut frame = frame;
                        // Frames already received are handled without another
                        // turn of the loop (bounded, so sends get a turn).
                        for turn in 1..=MAX_BATCH {
                            match frame {
                                Ok(frame) => self.take_frame(frame),
                                Err(reason) => return reason,
                            }
                            if turn == MAX_BATCH {
                                break;
                            }
                            match self.link.recv().now_or_never() {
                                Some(next) => frame = next,
                                None => break,
                            }
                        }
                        continue;
                    }
                }
            }
            self.outgoing.extend(self.pongs_due.drain(..));
            // A peer that never reads must not wedge this task: expiry and
            // close still get through. Frames not yet written stay in
            // `outgoing` for `flush_queue`.
            let sent = tokio::select! {
                () = &mut cancelled => None,
                sent = self.link.transmit(&mut self.outgoing, &mut self.inbox) => Some(sent),
            };
            // What arrived while writing came before whatever ended the write.
            self.take_inbox();
            match sent {
                None => return self.ended_from_outside(),
                Some(Err(reason)) => return reason,
                Some(Ok(())) => {}
            }
        }
    }

    /// Reports the frames read ahead while a write waited.
    fn take_inbox(&mut self) {
        while let Some(frame) = self.inbox.pop_front() {
            self.take_frame(frame);
        }
    }

    /// On a local close (`close(id)`, shutdown): writes what the
    /// application queued before it closed (a batch cut short first, then
    /// the queue), within `FLUSH_ON_CLOSE`, so an orderly close loses
    /// nothing the peer is still reading. Messages that arrive meanwhile are
    /// still reported, before `Closed`.
    async fn flush_queue(&mut self) {
        self.rx.close();
        while let Ok(frame) = self.rx.try_recv() {
            self.outgoing.push_back(frame);
        }
        if self.outgoing.is_empty() {
            return;
        }
        let written = tokio::time::timeout(
            FLUSH_ON_CLOSE,
            self.link.transmit(&mut self.outgoing, &mut self.inbox),
        )
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::debug!(
                id = ?self.id,
                unwritten = self.outgoing.len(),
                "queued messages not all written before the close"
            );
        }
        self.take_inbox();
    }

    /// Accounts for one received frame; a ping's pong goes out with the
    /// next write.
    fn take_frame(&mut self, frame: Frame) {
        self.touch();
        match frame {
            Frame::Data(data) => {
                let _ = self.events.send(ServerEvent::Message { id: self.id, data });
            }
            Frame::Ping(payload) => self.pongs_due.push(Frame::Pong(payload)),
            Frame::Pong(_) | Frame::Hello(_) | Frame::Welcome(_) | Frame::Skipped { .. } => {}
        }
    }
}
