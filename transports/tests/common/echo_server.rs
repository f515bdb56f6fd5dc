//! A supervised server that echoes every message, in a task of its own,
//! forwarding its events for the test to inspect.
//!
//! Also included by path from `quic_support` (next to `events.rs`), so it
//! uses nothing else of `common`.

use super::events::{wait_for, Events};
use std::net::SocketAddr;
use std::time::Duration;
use tether_core::registry::ConnId;
use tether_transports::driver::{Server, ServerEvent};
use tokio::sync::mpsc;

/// An echo server; its task is aborted on drop.
pub struct EchoServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Every event of the server, forwarded after the echo was sent.
    pub events: mpsc::UnboundedReceiver<ServerEvent>,
    close: mpsc::UnboundedSender<ConnId>,
    task: tokio::task::JoinHandle<()>,
}

impl EchoServer {
    /// Runs `server` as an echo server.
    pub fn spawn(mut server: Server) -> Self {
        let addr = server.local_addr();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (close, mut close_rx) = mpsc::unbounded_channel::<ConnId>();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    ev = server.next_event() => {
                        let Some(ev) = ev else { return };
                        if let ServerEvent::Message { id, data } = &ev {
                            let _ = server.send(*id, data.clone()).await;
                        }
                        let _ = events_tx.send(ev);
                    }
                    Some(id) = close_rx.recv() => {
                        let _ = server.close(id);
                    }
                }
            }
        });
        Self {
            addr,
            events,
            close,
            task,
        }
    }

    /// Closes connection `id` from the server side.
    pub fn close(&self, id: ConnId) {
        let _ = self.close.send(id);
    }

    /// Every event available now.
    pub fn drain(&mut self) -> Vec<ServerEvent> {
        let mut out = vec![];
        while let Ok(ev) = self.events.try_recv() {
            out.push(ev);
        }
        out
    }

    /// Waits for an event matching `pred`, collecting every event seen
    /// (see [`wait_for`]).
    pub async fn wait(
        &mut self,
        seen: &mut Vec<ServerEvent>,
        limit: Duration,
        pred: impl Fn(&ServerEvent) -> bool,
    ) -> ServerEvent {
        wait_for(&mut self.events, seen, limit, pred).await
    }
}

impl Events for EchoServer {
    type Event = ServerEvent;
    async fn next(&mut self) -> Option<ServerEvent> {
        self.events.recv().await
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
