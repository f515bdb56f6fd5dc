//! The supervised client: one task that dials, watches liveness, reconnects
//! with backoff and reports every lifecycle step exactly once.

use super::clock::{now, Timer};
use super::guarded::spawn_guarded;
use super::mailbox::{Closer, Mailbox, Poster};
use super::outbox::{Live, NotTaken, Outbox};
use super::shared::{Delivery, Push, Shared};
use super::wired::Wired;
use crate::link::{BoxLink, Link};
use crate::Reconnect;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::Stream;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tether_core::backoff::{BackoffConfig, ExponentialBackoff};
use tether_core::connection::{ConnectionConfig, Opening, Side};
use tether_core::limits;
use tether_core::liveness::{HeartbeatConfig, Policy};
use tether_core::supervisor::{Action, Lifecycle, Supervisor};
use tether_core::{Cause, ConfigError, ConnectError, DisconnectReason};
use thiserror::Error;

/// Settings of a supervised client.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// Application heartbeat on every connection.
    pub heartbeat: HeartbeatConfig,
    /// Waiting between connection attempts.
    pub backoff: BackoffConfig,
    /// Messages kept while disconnected, and queued on a connection for
    /// writing; when full, `send` waits and `try_send` fails. From 1 to
    /// [`limits::MAX_QUEUE`].
    pub max_pending: usize,
    /// Messages received and not yet taken by the application. When full,
    /// tether stops reading from the socket: a lagging application holds
    /// the peer back (its writes wait, and its write-stall bound applies)
    /// instead of memory growing. From 1 to [`limits::MAX_QUEUE`].
    pub max_received: usize,
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
            max_received: 1024,
            opening: Opening::Hello,
        }
    }
}

impl ClientConfig {
    /// Checks every value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.heartbeat.validate()?;
        self.backoff.validate()?;
        limits::queue_len("client.max_pending", self.max_pending)?;
        limits::queue_len("client.max_received", self.max_received)
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

/// What the client's task tells the application's `Client`, in order.
enum Note {
    /// The connection about to be reported `Connected`: its messages are
    /// taken from it directly.
    Attach(Live),
    Step(Lifecycle),
    Failed(Cause),
}

/// The sending side of a client; cheap to clone and usable from any task.
#[derive(Clone)]
pub struct ClientHandle {
    outbox: Arc<Outbox>,
    /// Asks the client's task to close; the last handle going asks too.
    closer: Closer<Note>,
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

    /// Sends `msg`, waiting while the buffer is full. While connected and
    /// no earlier write is still waiting for the socket, the message is
    /// written from the calling task; otherwise it queues (while
    /// disconnected, for the next connection).
    pub async fn send(&self, msg: Bytes) -> Result<(), SendError> {
        self.push(msg, Push::Send).await
    }

    /// Queues `msg` like [`ClientHandle::send`] but leaves the writing to
    /// the caller's next [`ClientHandle::flush`], as a buffered writer
    /// does: a burst of small messages then goes out in one write from the
    /// calling task, and no other task is woken for it. Until the flush,
    /// a fed message goes out with any write the connection makes anyway
    /// (a `send`, a pong), at the latest on its next heartbeat turn; a full
    /// queue writes what was fed before waiting. Nothing fed is ever
    /// dropped: it is sent, or waits for the next connection, like a sent
    /// message.
    ///
    /// ```no_run
    /// # async fn demo(handle: tether_transports::driver::ClientHandle) -> Result<(), tether_transports::driver::SendError> {
    /// for i in 0..64u8 {
    ///     handle.feed(vec![i; 64].into()).await?;
    /// }
    /// handle.flush(); // one write for all 64
    /// # Ok(()) }
    /// ```
    pub async fn feed(&self, msg: Bytes) -> Result<(), SendError> {
        self.push(msg, Push::Feed).await
    }

    /// Writes every message fed so far, from the calling task; a write
    /// the socket cannot take at once is finished by the connection's own
    /// task. Cheap when nothing was fed.
    pub fn flush(&self) {
        self.outbox.flush();
    }

    async fn push(&self, msg: Bytes, push: Push) -> Result<(), SendError> {
        self.check_size(&msg)?;
        let mut msg = Some(msg);
        std::future::poll_fn(|cx| self.outbox.poll_send(Some(cx), &mut msg, push))
            .await
            .map_err(SendError::from)
    }

    /// The largest message the transport carries, in bytes.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Sends `msg` without waiting (see [`ClientHandle::send`]); `Full`
    /// when the buffer is full.
    pub fn try_send(&self, msg: Bytes) -> Result<(), SendError> {
        self.try_push(msg, Push::Send)
    }

    /// Feeds `msg` without waiting (see [`ClientHandle::feed`]); `Full`
    /// when the buffer is full. For threads outside the runtime: a burst
    /// fed, then one [`ClientHandle::flush`], is one write from the calling
    /// thread and wakes no other.
    pub fn try_feed(&self, msg: Bytes) -> Result<(), SendError> {
        self.try_push(msg, Push::Feed)
    }

    fn try_push(&self, msg: Bytes, push: Push) -> Result<(), SendError> {
        self.check_size(&msg)?;
        match self.outbox.poll_send(None, &mut Some(msg), push) {
            Poll::Ready(result) => result.map_err(SendError::from),
            Poll::Pending => Err(SendError::Full),
        }
    }

    /// Sends `msg` from a thread outside the runtime, waiting while full.
    pub fn blocking_send(&self, msg: Bytes) -> Result<(), SendError> {
        self.check_size(&msg)?;
        block_on(self.send(msg))
    }

    /// Closes the client: the connection is closed in an orderly way and the
    /// event stream ends with `Closed`. Idempotent.
    pub fn close(&self) {
        self.closer.close();
    }

    /// The last round trip measured (a ping and its pong), on this or an
    /// earlier connection; `None` before the first.
    pub fn rtt(&self) -> Option<Duration> {
        let micros = self.rtt.load(Ordering::Relaxed);
        micros.checked_sub(1).map(Duration::from_micros)
    }

    /// True once the client's task has ended.
    pub fn is_closed(&self) -> bool {
        // The task closes the outbox however it ends.
        self.outbox.is_closed()
    }
}

impl std::fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandle")
            .field("max_message", &self.max_message)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl From<NotTaken> for SendError {
    fn from(not: NotTaken) -> Self {
        match not {
            NotTaken::Full => SendError::Full,
            NotTaken::Closed => SendError::Closed,
        }
    }
}

/// Runs `fut` on this thread (outside any runtime), parking between polls.
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
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
pub struct Client {
    handle: ClientHandle,
    notes: Arc<Mailbox<Note>>,
    /// A note taken but not yet reported (messages of `current` first).
    note: Option<Note>,
    /// The connection whose messages are reported now (the last one
    /// reported `Connected`), until its `Disconnected`.
    current: Option<Live>,
    /// For `next_event`, one event at a time.
    one: Vec<ClientEvent>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl Drop for Client {
    /// Nobody receives any more: connections drop what arrives, so that
    /// an unread queue never holds the peer back. Sending goes on.
    fn drop(&mut self) {
        self.handle.outbox.stop_receiving();
    }
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
        let outbox = Arc::new(Outbox::new(config.max_pending));
        let (poster, closer) = Mailbox::open();
        let notes = poster.mailbox();
        let max_message = connector.max_message().unwrap_or(usize::MAX);
        // The opening, pings, pongs and the liveness verdict of each
        // connection are the connection machine's; data goes through the
        // outbox and the connection's shared state.
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
            outbox: outbox.clone(),
            max_pending: config.max_pending,
            max_received: config.max_received,
            events: poster.clone(),
            live: live.clone(),
            rtt: rtt.clone(),
        };
        spawn_guarded(driver.run(), move |text| {
            let cause = Cause::new(DisconnectReason::Internal, text);
            let generation = live.load(Ordering::Acquire);
            if generation != 0 {
                poster.post(Note::Step(Lifecycle::Disconnected {
                    generation,
                    reason: cause.reason,
                    detail: cause.detail.clone(),
                }));
            }
            poster.post(Note::Failed(cause));
        });
        Ok(Self {
            handle: ClientHandle {
                outbox,
                closer,
                max_message,
                rtt,
            },
            notes,
            note: None,
            current: None,
            one: Vec::with_capacity(1),
        })
    }

    /// A handle for sending and closing from other tasks.
    pub fn handle(&self) -> ClientHandle {
        self.handle.clone()
    }

    /// The next event; `None` after the terminal event has been returned.
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        std::future::poll_fn(|cx| self.poll_next_event(Some(cx))).await
    }

    /// Waits for at least one event, then moves every ready event, up to
    /// `limit`, to the end of `out`, in order. Returns how many were moved;
    /// 0 only after the terminal event has been returned (or with `limit`
    /// 0). The call for throughput: while it waits, the connection's
    /// messages are read from the socket by the calling task itself.
    pub async fn next_events(&mut self, out: &mut Vec<ClientEvent>, limit: usize) -> usize {
        let start = out.len();
        let limit = start.saturating_add(limit);
        std::future::poll_fn(|cx| self.poll_events(Some(cx), out, limit)).await;
        out.len() - start
    }

    /// The next event if one is ready.
    pub fn try_next_event(&mut self) -> Option<ClientEvent> {
        match self.poll_next_event(None) {
            Poll::Ready(event) => event,
            Poll::Pending => None,
        }
    }

    fn poll_next_event(&mut self, cx: Option<&mut Context<'_>>) -> Poll<Option<ClientEvent>> {
        let mut one = std::mem::take(&mut self.one);
        let polled = self.poll_events(cx, &mut one, 1);
        let event = one.pop();
        self.one = one;
        polled.map(|()| event)
    }

    /// Moves ready events to `out` until it holds `limit`; `Ready` once it
    /// moved any, or the events have ended. Lifecycle steps come from the
    /// client's task in order; messages from the connection reported
    /// `Connected`, all of them before its `Disconnected`. Without `cx`,
    /// only what is ready is taken and nothing is registered.
    fn poll_events(
        &mut self,
        mut cx: Option<&mut Context<'_>>,
        out: &mut Vec<ClientEvent>,
        limit: usize,
    ) -> Poll<()> {
        let start = out.len();
        if start >= limit {
            return Poll::Ready(());
        }
        while out.len() < limit {
            let note = match self.note.take() {
                Some(note) => Some(note),
                None => match self.notes.poll_note(None) {
                    Poll::Ready(note) => note,
                    Poll::Pending => None,
                },
            };
            match note {
                Some(Note::Attach(live)) => self.current = Some(live),
                Some(Note::Step(step @ Lifecycle::Connected { .. })) => {
                    out.push(ClientEvent::Lifecycle(step));
                }
                Some(note) => {
                    // Whatever follows a connection's messages: they first.
                    if let Some(live) = &self.current {
                        let taken = live.poll_receive(None, out, limit, ClientEvent::Message);
                        if matches!(taken, Poll::Ready(n) if n > 0) {
                            self.note = Some(note);
                            continue;
                        }
                        self.current = None;
                    }
                    out.push(match note {
                        Note::Step(step) => ClientEvent::Lifecycle(step),
                        Note::Failed(cause) => ClientEvent::Failed(cause),
                        Note::Attach(_) => unreachable!("handled above"),
                    });
                }
                None => {
                    if out.len() > start {
                        break;
                    }
                    if let Some(live) = &self.current {
                        match live.poll_receive(cx.as_deref_mut(), out, limit, ClientEvent::Message)
                        {
                            Poll::Ready(0) => {}
                            Poll::Ready(_) => break,
                            Poll::Pending => {}
                        }
                    }
                    let Some(cx) = cx.as_deref_mut() else {
                        break;
                    };
                    match self.notes.poll_note(Some(cx)) {
                        Poll::Ready(Some(note)) => self.note = Some(note),
                        Poll::Ready(None) => return Poll::Ready(()),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
        if out.len() > start || cx.is_none() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Closes the client (see [`ClientHandle::close`]).
    pub fn close(&self) {
        self.handle.close();
    }
}

/// One connection attempt. Its result is boxed, and so is every close, so
/// that the client's task (one per client, alive as long as the client)
/// holds no link or machine of its own: its state stays small.
type DialFuture = BoxFuture<'static, Result<Box<Wired<BoxLink>>, ConnectError>>;

struct Driver<R: Reconnect> {
    connector: Arc<R>,
    supervisor: Supervisor<ExponentialBackoff>,
    connection: ConnectionConfig,
    /// The live connection of generation `.0`.
    link: Option<(u64, Live)>,
    dial: Option<(u64, DialFuture)>,
    outbox: Arc<Outbox>,
    /// Frames a connection queues for writing (as many as the outbox
    /// keeps while disconnected).
    max_pending: usize,
    /// Messages a connection keeps received for the application.
    max_received: usize,
    /// Notes for the application; close requests from it.
    events: Poster<Note>,
    /// The generation that is up (0: none), for the report of a panic.
    live: Arc<AtomicU64>,
    /// The last round trip in microseconds plus one (0: none yet).
    rtt: Arc<AtomicU64>,
}

impl<R: Reconnect> Drop for Driver<R> {
    /// However the task ends (terminal step, panic), sends fail from then on.
    fn drop(&mut self) {
        self.outbox.close();
    }
}

impl<R> Driver<R>
where
    R: Reconnect,
    R::Conn: Link,
{
    async fn run(mut self) {
        self.supervisor.start(now());
        let mut timer = Timer::new();
        // The live connection's one timer (liveness, pings, write stall).
        let mut link_timer = Timer::new();
        // A close was asked for and handed to the supervisor (once).
        let mut closing = false;
        loop {
            self.drain_supervisor().await;
            if self.supervisor.is_terminal() {
                return;
            }
            timer.arm(self.supervisor.poll_timeout());
            tokio::select! {
                biased;
                () = std::future::poll_fn(|cx| self.events.poll_close(cx)), if !closing => {
                    closing = true;
                    self.supervisor.handle_close(now());
                }
                result = dial(&mut self.dial), if self.dial.is_some() => self.on_dialed(result).await,
                cause = serve(&self.link, &mut link_timer, &self.rtt), if self.link.is_some() => {
                    self.lose_link(cause);
                }
                () = timer.fired() => self.supervisor.handle_timeout(now()),
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
                        let link: BoxLink = Box::new(link);
                        Wired::open(link, Side::Client, connection)
                            .await
                            .map(Box::new)
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
                    if let Some((g, live)) = self.link.take() {
                        if g == generation {
                            // Bound first: a temporary of an `if let` would
                            // stay in the task's state across the await.
                            let closing = self.outbox.detach(&live).map(close);
                            if let Some(closing) = closing {
                                closing.await;
                            }
                        } else {
                            self.link = Some((g, live));
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
            self.events.post(Note::Step(step));
        }
    }

    async fn on_dialed(&mut self, result: (u64, Result<Box<Wired<BoxLink>>, ConnectError>)) {
        let (generation, result) = result;
        self.dial = None;
        let at = now();
        match result {
            Ok(wired) => {
                if self.supervisor.handle_connected(generation, at) {
                    // Messages that came with the welcome are reported on
                    // the first turn of `serve`, before any later ones;
                    // what waited for this connection is written first.
                    let live: Live =
                        Arc::new(Shared::new(*wired, self.max_pending, Delivery::Queued));
                    live.lock().set_receive_limit(self.max_received);
                    self.outbox.attach(live.clone());
                    self.events.post(Note::Attach(live.clone()));
                    self.link = Some((generation, live));
                } else {
                    close(*wired).await;
                }
            }
            Err(e) => {
                self.supervisor
                    .handle_connect_failed(generation, e.cause(), at);
            }
        }
    }

    fn lose_link(&mut self, cause: Option<Cause>) {
        if let Some((generation, live)) = self.link.take() {
            drop(self.outbox.detach(&live));
            let cause = cause.unwrap_or_else(|| DisconnectReason::Io.into());
            self.supervisor
                .handle_disconnected(generation, cause, now());
        }
    }
}

/// Closes a link in an orderly way, in a future of its own on the heap.
fn close(mut wired: Wired<BoxLink>) -> BoxFuture<'static, ()> {
    Box::pin(async move { wired.link.close().await })
}

async fn dial(
    dial: &mut Option<(u64, DialFuture)>,
) -> (u64, Result<Box<Wired<BoxLink>>, ConnectError>) {
    match dial {
        Some((generation, fut)) => (*generation, fut.await),
        None => std::future::pending().await,
    }
}

/// Serves the live connection until it ends (see `Shared::poll_serve`):
/// its messages wait in it for the application's `Client`.
async fn serve(link: &Option<(u64, Live)>, timer: &mut Timer, rtt: &AtomicU64) -> Option<Cause> {
    let Some((_, live)) = link else {
        return std::future::pending().await;
    };
    std::future::poll_fn(|cx| live.poll_serve(cx, timer, rtt, |_| {})).await
}

impl Stream for Client {
    type Item = ClientEvent;

    /// The events one by one (see [`Client::next_event`]); `None` after
    /// the terminal event.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.get_mut().poll_next_event(Some(cx))
    }
}
