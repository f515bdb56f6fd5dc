//! Waiting on what a supervised client or server reports: one mechanism for
//! the client's lifecycle steps, the server's events and an echo server's
//! forwarded events, keeping every event seen for the failure message.
//!
//! Also included by path from `quic_support` (for its `EchoServer`), so it
//! uses only the crates and nothing else of `common`.

use bytes::Bytes;
use std::fmt::Debug;
use std::time::Duration;
use tether_core::supervisor::Lifecycle;
use tether_transports::driver::{Client, ClientEvent, Server, ServerEvent};
use tokio::sync::mpsc;

/// Something that reports events one at a time.
pub trait Events {
    /// What it reports.
    type Event: Clone + Debug;
    /// The next event; `None` once the source has ended.
    async fn next(&mut self) -> Option<Self::Event>;
}

/// A client's lifecycle steps; its messages are skipped (see
/// [`expect_message`] for those).
impl Events for Client {
    type Event = Lifecycle;
    async fn next(&mut self) -> Option<Lifecycle> {
        loop {
            match self.next_event().await? {
                ClientEvent::Lifecycle(step) => return Some(step),
                ClientEvent::Message(_) => {}
                ClientEvent::Failed(cause) => panic!("the client failed: {cause}"),
            }
        }
    }
}

impl Events for Server {
    type Event = ServerEvent;
    async fn next(&mut self) -> Option<ServerEvent> {
        self.next_event().await
    }
}

/// Events forwarded by a task (the echo servers).
impl<T: Clone + Debug> Events for mpsc::UnboundedReceiver<T> {
    type Event = T;
    async fn next(&mut self) -> Option<T> {
        self.recv().await
    }
}

/// Waits for the first event matching `pred`, pushing every event seen on
/// the way (the match included) onto `seen`. Panics after `limit` or when
/// the source ends.
pub async fn wait_for<S: Events>(
    source: &mut S,
    seen: &mut Vec<S::Event>,
    limit: Duration,
    pred: impl Fn(&S::Event) -> bool,
) -> S::Event {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let event = tokio::time::timeout_at(deadline, source.next())
            .await
            .unwrap_or_else(|_| panic!("timed out after {limit:?}; events so far: {seen:?}"))
            .unwrap_or_else(|| panic!("event stream ended; events so far: {seen:?}"));
        seen.push(event.clone());
        if pred(&event) {
            return event;
        }
    }
}

/// Pushes onto `seen` every event that arrives within `window`.
pub async fn drain<S: Events>(source: &mut S, seen: &mut Vec<S::Event>, window: Duration) {
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, source.next()).await {
        seen.push(event);
    }
}

/// Waits (up to 10 s) for the client's next message and checks it is `msg`:
/// any other message first is a failure (a loss, a duplicate or a reorder).
/// Lifecycle steps on the way go to `seen`.
pub async fn expect_message(client: &mut Client, seen: &mut Vec<Lifecycle>, msg: &[u8]) {
    let want = Bytes::copy_from_slice(msg);
    let limit = Duration::from_secs(10);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, client.next_event()).await {
            Ok(Some(ClientEvent::Message(m))) if m == want => return,
            Ok(Some(ClientEvent::Message(m))) => {
                panic!("expected {want:?}, got {m:?}; events {seen:?}")
            }
            Ok(Some(ClientEvent::Lifecycle(step))) => seen.push(step),
            Ok(Some(ClientEvent::Failed(cause))) => panic!("the client failed: {cause}"),
            Ok(None) => panic!("client ended before {want:?}; events {seen:?}"),
            Err(_) => panic!("no {want:?} within {limit:?}; events {seen:?}"),
        }
    }
}

/// Sends `msg` to an echo server and waits for it to come back (see
/// [`expect_message`]).
pub async fn echo(client: &mut Client, seen: &mut Vec<Lifecycle>, msg: &[u8]) {
    client
        .handle()
        .send(Bytes::copy_from_slice(msg))
        .await
        .expect("client closed");
    expect_message(client, seen, msg).await;
}

/// The names of lifecycle steps, in order.
pub fn names(seen: &[Lifecycle]) -> Vec<&'static str> {
    seen.iter().map(|e| e.name()).collect()
}
