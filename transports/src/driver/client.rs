//! The supervised client: one task that dials, watches liveness, reconnects
//! with backoff and reports every lifecycle step exactly once.

use super::batch::gather;
use super::clock::{earliest, now, Timer};
use super::guarded::spawn_guarded;
use crate::link::Link;
use crate::Reconnect;
use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tether_core::backoff::{BackoffConfig, ExponentialBackoff};
use tether_core::codec::Frame;
use tether_core::connection::{Connection, ConnectionConfig, ConnectionEvent, Opening, Side};
use tether_core::limits;
use tether_core::liveness::{HeartbeatConfig, Policy};
use tether_core::supervisor::{Action, Lifecycle, Supervisor};
use tether_core::{Cause, ConfigError, ConnectError, DisconnectReason};
use thiserror::Error;
use tokio::sync::mpsc;

/// Settings of a supervised client.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// Application heartbeat on every connection.
    pub heartbeat: HeartbeatConfig,
    /// Waiting between connection attempts.
    pub backoff: BackoffConfig,
    /// Messages kept while disconnected; when full, `send` waits and
    /// `try_send` fails. From 1 to [`limits::MAX_QUEUE`].
    pub max_pending: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            heartbeat: HeartbeatConfig::default(),
            backoff: BackoffConfig::default(),
            max_pending: 1024,
        }
    }
}

impl ClientConfig {
    /// Checks every value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.heartbeat.validate()?;
        self.backoff.validate()?;
        limits::queue_len("client.max_pending", self.max_pending)
    }
}

/// What a supervised client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A lifecycle step (exactly once each, in order).
    Lifecycle(Lifecycle),
    /// An application message from the peer.
    Message(Bytes),
    /// tether failed internally (a panic in the client's task): the client
    /// has ended. Reason `Internal`, the detail carries the panic message.
    /// Terminal, like `Closed` and `GaveUp`; a connection that was up was
    /// reported `Disconnected` (reason `Internal`) just before.
    Failed(Cause),
}

impl ClientEvent {
    /// True for the last event of a client: `Closed`, `GaveUp`, `Failed`.
    pub fn is_terminal(&self) -> bool {
        match self {
            Self::Lifecycle(step) => step.is_terminal(),
            Self::Message(_) => false,
            Self::Failed(_) => true,
        }
    }
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    /// The client is closed (or gave up).
    #[error("the client is closed")]
    Closed,
    /// The pending buffer is full (only from `try_send`).
    #[error("the send buffer is full")]
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

enum Control {
    Close,
}

/// The sending side of a client; cheap to clone and usable from any task.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    data: mpsc::Sender<Bytes>,
    control: mpsc::UnboundedSender<Control>,
    max_message: usize,
}

impl ClientHandle {
    fn check_size(&self, msg: &Bytes) -> Result<(), SendError> {
        if msg.len() > self.max_message {
            return Err(SendError::TooLarge {
                len: msg.len(),
                max: self.max_message,
            });
        }
        Ok(())
    }

    /// Queues `msg`, waiting while the buffer is full.
    pub async fn send(&self, msg: Bytes) -> Result<(), SendError> {
        self.check_size(&msg)?;
        self.data.send(msg).await.map_err(|_| SendError::Closed)
    }

    /// The largest message the transport carries, in bytes.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Queues `msg` without waiting.
    pub fn try_send(&self, msg: Bytes) -> Result<(), SendError> {
        self.check_size(&msg)?;
        self.data.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    /// Queues `msg` from a thread outside the runtime, waiting while full.
    pub fn blocking_send(&self, msg: Bytes) -> Result<(), SendError> {
        self.check_size(&msg)?;
        self.data.blocking_send(msg).map_err(|_| SendError::Closed)
    }

    /// Closes the client: the connection is closed in an orderly way and the
    /// event stream ends with `Closed`. Idempotent.
    pub fn close(&self) {
        let _ = self.control.send(Control::Close);
    }

    /// True once the client's task has ended.
    pub fn is_closed(&self) -> bool {
        self.control.is_closed()
    }
}

/// A supervised client connection.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tether_transports::driver::{Client, ClientConfig, ClientEvent};
/// use tether_transports::tcp::{TcpConnector, TcpOptions};
///
/// let connector = TcpConnector::new("127.0.0.1", 7000, TcpOptions::default());
/// let mut client = Client::spawn(connector, ClientConfig::default())?;
/// client.handle().send("hello".into()).await?;
/// while let Some(event) = client.next_event().await {
///     match event {
///         ClientEvent::Lifecycle(step) => println!("{step:?}"),
///         ClientEvent::Message(msg) => println!("got {} bytes", msg.len()),
///         ClientEvent::Failed(cause) => eprintln!("tether failed: {cause}"),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Client {
    handle: ClientHandle,
    events: mpsc::UnboundedReceiver<ClientEvent>,
}

impl Client {
    /// Starts supervising connections made by `connector`. Must be called
    /// inside a tokio runtime.
    pub fn spawn<R>(connector: R, config: ClientConfig) -> Result<Self, ConfigError>
    where
        R: Reconnect,
        R::Conn: Link,
    {
        config.validate()?;
        let backoff = ExponentialBackoff::new(config.backoff.clone())?;
        let (data_tx, data_rx) = mpsc::channel(config.max_pending);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let max_message = connector.max_message().unwrap_or(usize::MAX);
        // Pings, pongs and the liveness verdict of each connection are the
        // connection machine's; data keeps the driver's resend-on-failure
        // queue. The raw opening: servers of this version send no welcome.
        let connection = ConnectionConfig {
            policy: Policy::Heartbeat(config.heartbeat),
            opening: Opening::Raw,
            max_frame: max_message.clamp(1, u32::MAX as usize),
            send_queue: 1,
            recv_queue: limits::MAX_QUEUE,
            ..ConnectionConfig::default()
        };
        connection.validate()?;
        // A write that cannot complete within the machine's stall bound (the
        // detection bound) means the peer stopped reading.
        let write_timeout = connection.stall_bound();
        let live = Arc::new(AtomicU64::new(0));
        let driver = Driver {
            connector: Arc::new(connector),
            supervisor: Supervisor::new(backoff),
            connection,
            conn: None,
            link: None,
            dial: None,
            pending: VecDeque::new(),
            max_pending: config.max_pending,
            inbox: VecDeque::new(),
            data_rx,
            data_open: true,
            control_rx,
            events: events_tx.clone(),
            live: live.clone(),
            write_timeout,
        };
        spawn_guarded(driver.run(), move |text| {
            let cause = Cause::new(DisconnectReason::Internal, text);
            let generation = live.load(Ordering::Acquire);
            if generation != 0 {
                let _ = events_tx.send(ClientEvent::Lifecycle(Lifecycle::Disconnected {
                    generation,
                    reason: cause.reason,
                    detail: cause.detail.clone(),
                }));
            }
            let _ = events_tx.send(ClientEvent::Failed(cause));
        });
        Ok(Self {
            handle: ClientHandle {
                data: data_tx,
                control: control_tx,
                max_message,
            },
            events: events_rx,
        })
    }

    /// A handle for sending and closing from other tasks.
    pub fn handle(&self) -> ClientHandle {
        self.handle.clone()
    }

    /// The next event; `None` after the terminal event has been returned.
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }

    /// Waits for at least one event, then moves every ready event, up to
    /// `limit`, to the end of `out`, in order. Returns how many were moved;
    /// 0 only after the terminal event has been returned (or with `limit`
    /// 0). One wake-up for a burst of messages: the call for throughput.
    pub async fn next_events(&mut self, out: &mut Vec<ClientEvent>, limit: usize) -> usize {
        self.events.recv_many(out, limit).await
    }

    /// The next event if one is ready.
    pub fn try_next_event(&mut self) -> Option<ClientEvent> {
        self.events.try_recv().ok()
    }

    /// Closes the client (see [`ClientHandle::close`]).
    pub fn close(&self) {
        self.handle.close();
    }
}

/// Most messages written with one flush.
const MAX_BATCH: usize = 64;

type DialFuture<C> = BoxFuture<'static, Result<C, ConnectError>>;

struct Driver<R: Reconnect> {
    connector: Arc<R>,
    supervisor: Supervisor<ExponentialBackoff>,
    connection: ConnectionConfig,
    /// The machine of the live link (`Some` exactly while `link` is).
    conn: Option<Connection>,
    link: Option<(u64, R::Conn)>,
    dial: Option<(u64, DialFuture<R::Conn>)>,
    pending: VecDeque<Bytes>,
    max_pending: usize,
    /// Frames read while a write waited (see `Link::transmit`).
    inbox: VecDeque<Frame>,
    data_rx: mpsc::Receiver<Bytes>,
    data_open: bool,
    control_rx: mpsc::UnboundedReceiver<Control>,
    events: mpsc::UnboundedSender<ClientEvent>,
    /// The generation that is up (0: none), for the report of a panic.
    live: Arc<AtomicU64>,
    write_timeout: Duration,
}

impl<R> Driver<R>
where
    R: Reconnect,
    R::Conn: Link,
{
    async fn run(mut self) {
        self.supervisor.start(now());
        let mut timer = Timer::new();
        loop {
            self.drain_supervisor().await;
            if self.supervisor.is_terminal() {
                return;
            }
            if self.conn.as_ref().is_some_and(Connection::has_transmit) {
                self.send_control().await;
                continue;
            }
            let liveness = self.conn.as_ref().and_then(Connection::poll_timeout);
            timer.arm(earliest(self.supervisor.poll_timeout(), liveness));
            // While disconnected, messages wait in the channel (which holds
            // exactly `max_pending`); the driver's own queue only keeps a
            // batch whose write failed, to resend it first.
            let take_data = self.data_open && self.link.is_some();
            tokio::select! {
                biased;
                control = self.control_rx.recv() => match control {
                    Some(Control::Close) | None => self.supervisor.handle_close(now()),
                },
                result = dial(&mut self.dial), if self.dial.is_some() => self.on_dialed(result).await,
                frame = recv(&mut self.link), if self.link.is_some() => {
                    self.on_frame(frame);
                    self.drain_frames();
                }
                data = self.data_rx.recv(), if take_data => match data {
                    Some(msg) => self.on_data(msg).await,
                    None => self.data_open = false,
                },
                () = timer.fired() => self.on_timer().await,
            }
        }
    }

    /// Handles frames that are already received, without another turn of
    /// the event loop (bounded, so that timers and sends still get a turn).
    fn drain_frames(&mut self) {
        for _ in 1..MAX_BATCH {
            if self.link.is_none() {
                return;
            }
            match recv(&mut self.link).now_or_never() {
                Some(frame) => self.on_frame(frame),
                None => return,
            }
        }
    }

    async fn drain_supervisor(&mut self) {
        while let Some(action) = self.supervisor.poll_action() {
            match action {
                Action::Dial {
                    generation,
                    timeout,
                } => {
                    let connector = self.connector.clone();
                    let fut = async move {
                        match tokio::time::timeout(timeout, connector.connect()).await {
                            Ok(result) => result,
                            Err(_) => Err(ConnectError::new(
                                DisconnectReason::ConnectTimeout,
                                connector.timeout_detail(timeout),
                            )),
                        }
                    };
                    self.dial = Some((generation, Box::pin(fut)));
                }
                Action::AbortDial { generation } => {
                    if self.dial.as_ref().is_some_and(|(g, _)| *g == generation) {
                        self.dial = None;
                    }
                }
                Action::CloseLink { generation } => {
                    if let Some((g, mut link)) = self.link.take() {
                        if g == generation {
                            link.close().await;
                        } else {
                            self.link = Some((g, link));
                        }
                    }
                }
            }
        }
        while let Some(step) = self.supervisor.poll_event() {
            match &step {
                Lifecycle::Connected { generation, .. } => {
                    self.live.store(*generation, Ordering::Release);
                }
                Lifecycle::Disconnected { .. } => self.live.store(0, Ordering::Release),
                _ => {}
            }
            if let Some((reason, detail)) = step.cause() {
                tracing::info!(
                    peer = %self.connector.peer(),
                    event = step.name(),
                    %reason,
                    %detail,
                    "connection event"
                );
            }
            let _ = self.events.send(ClientEvent::Lifecycle(step));
        }
    }

    async fn on_dialed(&mut self, result: (u64, Result<R::Conn, ConnectError>)) {
        let (generation, result) = result;
        self.dial = None;
        let at = now();
        match result {
            Ok(mut link) => {
                if self.supervisor.handle_connected(generation, at) {
                    // Validated at spawn: cannot fail.
                    self.conn = Connection::new(Side::Client, self.connection, at).ok();
                    self.link = Some((generation, link));
                    self.flush_pending().await;
                } else {
                    link.close().await;
                }
            }
            Err(e) => {
                self.supervisor
                    .handle_connect_failed(generation, e.cause(), at);
            }
        }
    }

    fn on_frame(&mut self, frame: Result<Frame, DisconnectReason>) {
        match frame {
            Ok(frame) => self.take_frame(frame),
            Err(reason) => self.lose_link(reason.into()),
        }
    }

    /// Hands one received frame to the connection machine; a ping's pong
    /// is sent from the event loop (`send_control`).
    fn take_frame(&mut self, frame: Frame) {
        if let Some(conn) = self.conn.as_mut() {
            conn.handle_frame(now(), frame);
        }
        self.take_conn_events();
    }

    /// Reports the machine's messages; its `Closed` ends the link.
    fn take_conn_events(&mut self) {
        while let Some(event) = self.conn.as_mut().and_then(Connection::poll_event) {
            match event {
                ConnectionEvent::Message(msg) => {
                    let _ = self.events.send(ClientEvent::Message(msg));
                }
                ConnectionEvent::Closed(cause) => self.lose_link(cause),
                ConnectionEvent::Connected { .. } => {}
            }
        }
    }

    /// Writes the pongs and pings the machine asks for.
    async fn send_control(&mut self) {
        let at = now();
        let frames: Vec<Frame> = match self.conn.as_mut() {
            Some(conn) => std::iter::from_fn(|| conn.poll_frame(at)).collect(),
            None => return,
        };
        if !frames.is_empty() {
            self.transmit(Some(frames)).await;
        }
    }

    async fn on_data(&mut self, msg: Bytes) {
        self.pending.push_back(msg);
        if self.link.is_some() {
            // Take what else is queued so that one flush carries it all.
            let limit = self.max_pending.min(MAX_BATCH);
            if !gather(&mut self.data_rx, &mut self.pending, limit).await {
                self.data_open = false;
            }
            self.flush_pending().await;
        }
    }

    /// Writes every pending message with one flush; a message leaves the
    /// queue only once the flush carrying it succeeded.
    async fn flush_pending(&mut self) {
        if !self.pending.is_empty() {
            self.transmit(None).await;
        }
    }

    async fn on_timer(&mut self) {
        let at = now();
        self.supervisor.handle_timeout(at);
        if self.link.is_none() {
            return;
        }
        if let Some(conn) = self.conn.as_mut() {
            conn.handle_timeout(at);
        }
        // A ping goes out on the next turn of the loop (`send_control`).
        self.take_conn_events();
    }

    /// Writes `frames`, or with `None` every pending message, with one
    /// flush, reading meanwhile (see `Link::transmit`). The write is bounded
    /// by the write timeout (a peer that stopped reading is as dead as a
    /// silent one) and abandoned at once when the application closes the
    /// client meanwhile. On failure the link is lost.
    async fn transmit(&mut self, frames: Option<Vec<Frame>>) -> bool {
        let Some((_, link)) = self.link.as_mut() else {
            return false;
        };
        let data = frames.is_none();
        // Pending messages leave `self.pending` only once written, so a
        // failed batch is sent again on the next connection.
        let mut frames: VecDeque<Frame> = match frames {
            Some(frames) => frames.into(),
            None => self.pending.iter().cloned().map(Frame::Data).collect(),
        };
        let io = link.transmit(&mut frames, &mut self.inbox);
        let outcome = tokio::select! {
            written = tokio::time::timeout(self.write_timeout, io) => match written {
                Ok(result) => result.map_err(|r| Some(Cause::from(r))),
                Err(_) => Err(Some(Cause::write_stall(self.write_timeout))),
            },
            control = self.control_rx.recv() => match control {
                Some(Control::Close) | None => Err(None),
            },
        };
        // What arrived while writing came before whatever ended the write.
        while let Some(frame) = self.inbox.pop_front() {
            self.take_frame(frame);
        }
        match outcome {
            Ok(()) => {
                if data {
                    self.pending.clear();
                }
                true
            }
            Err(Some(cause)) => {
                self.lose_link(cause);
                false
            }
            Err(None) => {
                self.supervisor.handle_close(now());
                false
            }
        }
    }

    fn lose_link(&mut self, cause: Cause) {
        if let Some((generation, link)) = self.link.take() {
            drop(link);
            self.conn = None;
            self.supervisor
                .handle_disconnected(generation, cause, now());
        }
    }
}

async fn dial<C>(dial: &mut Option<(u64, DialFuture<C>)>) -> (u64, Result<C, ConnectError>) {
    match dial {
        Some((generation, fut)) => (*generation, fut.await),
        None => std::future::pending().await,
    }
}

async fn recv<L: Link>(link: &mut Option<(u64, L)>) -> Result<Frame, DisconnectReason> {
    match link {
        Some((_, link)) => link.recv().await,
        None => std::future::pending().await,
    }
}
