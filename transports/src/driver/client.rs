//! The supervised client: one task that dials, watches liveness, reconnects
//! with backoff and reports every lifecycle step exactly once.

use super::batch::gather;
use super::clock::{earliest, now, Timer};
use super::guarded::spawn_guarded;
use super::wired::{Wired, Written};
use crate::link::{Link, LinkExt};
use crate::Reconnect;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tether_core::backoff::{BackoffConfig, ExponentialBackoff};
use tether_core::codec::Frame;
use tether_core::connection::{ConnectionConfig, ConnectionEvent, Opening, Side};
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
    /// How each connection starts. `Hello` (default): the client sends a
    /// hello and counts as connected only once the server's welcome has
    /// arrived, within the attempt's connect timeout, so a connection the
    /// kernel completed but no tether server answered is a failed attempt.
    /// `Raw`: no opening exchange (a plain server, watched for life only).
    pub opening: Opening,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            heartbeat: HeartbeatConfig::default(),
            backoff: BackoffConfig::default(),
            max_pending: 1024,
            opening: Opening::Hello,
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
    rtt: Arc<AtomicU64>,
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

    /// The last round trip measured (a ping and its pong), on this or an
    /// earlier connection; `None` before the first.
    pub fn rtt(&self) -> Option<Duration> {
        let micros = self.rtt.load(Ordering::Relaxed);
        micros.checked_sub(1).map(Duration::from_micros)
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
        // The opening, pings, pongs and the liveness verdict of each
        // connection are the connection machine's; data keeps the driver's
        // resend-on-failure queue.
        let connection = ConnectionConfig {
            policy: Policy::Heartbeat(config.heartbeat),
            opening: config.opening,
            max_frame: max_message.clamp(1, u32::MAX as usize),
            send_queue: 1,
            recv_queue: limits::MAX_QUEUE,
            ..ConnectionConfig::default()
        };
        connection.validate()?;
        let live = Arc::new(AtomicU64::new(0));
        let rtt = Arc::new(AtomicU64::new(0));
        let driver = Driver {
            connector: Arc::new(connector),
            supervisor: Supervisor::new(backoff),
            connection,
            link: None,
            dial: None,
            pending: VecDeque::new(),
            max_pending: config.max_pending,
            data_rx,
            data_open: true,
            control_rx,
            events: events_tx.clone(),
            live: live.clone(),
            rtt: rtt.clone(),
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
                rtt,
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

type DialFuture<C> = BoxFuture<'static, Result<Wired<C>, ConnectError>>;

struct Driver<R: Reconnect> {
    connector: Arc<R>,
    supervisor: Supervisor<ExponentialBackoff>,
    connection: ConnectionConfig,
    /// The live link of generation `.0` and its connection machine.
    link: Option<(u64, Wired<R::Conn>)>,
    dial: Option<(u64, DialFuture<R::Conn>)>,
    pending: VecDeque<Bytes>,
    max_pending: usize,
    data_rx: mpsc::Receiver<Bytes>,
    data_open: bool,
    control_rx: mpsc::UnboundedReceiver<Control>,
    events: mpsc::UnboundedSender<ClientEvent>,
    /// The generation that is up (0: none), for the report of a panic.
    live: Arc<AtomicU64>,
    /// The last round trip in microseconds plus one (0: none yet).
    rtt: Arc<AtomicU64>,
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
            if let Some((_, wired)) = self.link.as_mut() {
                if wired.take_control() {
                    self.transmit(false).await;
                    continue;
                }
            }
            let liveness = self.link.as_ref().and_then(|(_, w)| w.conn.poll_timeout());
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
                    if let Some((_, wired)) = self.link.as_mut() {
                        wired.handle_recv(frame);
                        wired.drain_received(MAX_BATCH - 1);
                    }
                    self.take_conn_events();
                }
                data = self.data_rx.recv(), if take_data => match data {
                    Some(msg) => self.on_data(msg).await,
                    None => self.data_open = false,
                },
                () = timer.fired() => self.on_timer(),
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
                    let mut connection = self.connection;
                    // One attempt: the transport's connect, then the
                    // opening exchange, within one connect timeout.
                    let fut = async move {
                        let started = tokio::time::Instant::now();
                        let link = match tokio::time::timeout(timeout, connector.connect()).await {
                            Ok(result) => result?,
                            Err(_) => {
                                return Err(ConnectError::new(
                                    DisconnectReason::ConnectTimeout,
                                    connector.timeout_detail(timeout),
                                ))
                            }
                        };
                        connection.opening_timeout = timeout
                            .saturating_sub(started.elapsed())
                            .max(Duration::from_millis(1));
                        Wired::open(link, Side::Client, connection)
                            .await
                            .map_err(|c| ConnectError::new(c.reason, c.detail.to_string()))
                    };
                    self.dial = Some((generation, Box::pin(fut)));
                }
                Action::AbortDial { generation } => {
                    if self.dial.as_ref().is_some_and(|(g, _)| *g == generation) {
                        self.dial = None;
                    }
                }
                Action::CloseLink { generation } => {
                    if let Some((g, mut wired)) = self.link.take() {
                        if g == generation {
                            wired.link.close().await;
                        } else {
                            self.link = Some((g, wired));
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

    async fn on_dialed(&mut self, result: (u64, Result<Wired<R::Conn>, ConnectError>)) {
        let (generation, result) = result;
        self.dial = None;
        let at = now();
        match result {
            Ok(mut wired) => {
                if self.supervisor.handle_connected(generation, at) {
                    self.link = Some((generation, wired));
                    // Messages that came with the welcome, then ours.
                    self.take_conn_events();
                    self.flush_pending().await;
                } else {
                    wired.link.close().await;
                }
            }
            Err(e) => {
                self.supervisor
                    .handle_connect_failed(generation, e.cause(), at);
            }
        }
    }

    /// Reports the machine's messages; its `Closed` ends the link.
    fn take_conn_events(&mut self) {
        loop {
            let Some((_, wired)) = self.link.as_mut() else {
                return;
            };
            let Some(event) = wired.conn.poll_event() else {
                if let Some(rtt) = wired.conn.rtt() {
                    self.rtt
                        .store(rtt.as_micros() as u64 + 1, Ordering::Relaxed);
                }
                return;
            };
            match event {
                ConnectionEvent::Message(msg) => {
                    let _ = self.events.send(ClientEvent::Message(msg));
                }
                ConnectionEvent::Closed(cause) => self.lose_link(cause),
                ConnectionEvent::Connected { .. } => {}
            }
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
            self.transmit(true).await;
        }
    }

    fn on_timer(&mut self) {
        let at = now();
        self.supervisor.handle_timeout(at);
        if let Some((_, wired)) = self.link.as_mut() {
            wired.handle_timeout();
        }
        // A ping goes out on the next turn of the loop.
        self.take_conn_events();
    }

    /// Writes what the machine asked for and, with `data`, every pending
    /// message, with one flush (see `Wired::write`: bounded by the
    /// machine's stall bound). Abandoned at once when the application
    /// closes the client meanwhile.
    async fn transmit(&mut self, data: bool) {
        let Some((_, wired)) = self.link.as_mut() else {
            return;
        };
        // Pending messages leave `self.pending` only once written, so a
        // failed batch is sent again on the next connection.
        if data {
            wired
                .outgoing
                .extend(self.pending.iter().cloned().map(Frame::Data));
        }
        let control = &mut self.control_rx;
        let written = wired
            .write(async {
                let _ = control.recv().await;
            })
            .await;
        match written {
            Written::Done => {
                if data {
                    self.pending.clear();
                }
            }
            Written::Failed => {}
            Written::Aborted => self.supervisor.handle_close(now()),
        }
        self.take_conn_events();
    }

    fn lose_link(&mut self, cause: Cause) {
        if let Some((generation, wired)) = self.link.take() {
            drop(wired);
            self.supervisor
                .handle_disconnected(generation, cause, now());
        }
    }
}

async fn dial<C>(dial: &mut Option<(u64, DialFuture<C>)>) -> (u64, Result<Wired<C>, ConnectError>) {
    match dial {
        Some((generation, fut)) => (*generation, fut.await),
        None => std::future::pending().await,
    }
}

async fn recv<L: Link>(link: &mut Option<(u64, Wired<L>)>) -> Result<Frame, DisconnectReason> {
    match link {
        Some((_, wired)) => wired.link.recv().await,
        None => std::future::pending().await,
    }
}
