//! Helpers for the QUIC tests: certificates generated at test time (rcgen,
//! ring), written to a scratch directory, and matching options.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tether_transports::quic::{QuicClientOptions, QuicLiveness, QuicServerOptions};

/// A self-signed certificate for `localhost` and 127.0.0.1, as PEM files in
/// a scratch directory that is removed on drop.
pub struct TestCerts {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCerts {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("tether-quic-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ck = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        Self { dir, cert, key }
    }

    /// A path inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Client options trusting this certificate, bound to loopback.
    pub fn client(&self, liveness: QuicLiveness) -> QuicClientOptions {
        QuicClientOptions::default()
            .with_ca_file(&self.cert)
            .with_server_name("localhost")
            .with_bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .with_liveness(liveness)
    }

    /// Server options serving this certificate.
    pub fn server(&self) -> QuicServerOptions {
        QuicServerOptions::new(&self.cert, &self.key)
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn liveness(keep_alive: Duration, idle_timeout: Duration) -> QuicLiveness {
    QuicLiveness {
        keep_alive: Some(keep_alive),
        idle_timeout,
    }
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

use bytes::Bytes;
use tether_core::registry::ConnId;
use tether_core::supervisor::Lifecycle;
use tether_transports::driver::{Client, ClientEvent, Server, ServerEvent};
use tokio::sync::mpsc;

/// An in-process server that echoes every message; its events are
/// forwarded for the test to inspect.
pub struct EchoServer {
    pub addr: SocketAddr,
    pub events: mpsc::UnboundedReceiver<ServerEvent>,
    close: mpsc::UnboundedSender<ConnId>,
    task: tokio::task::JoinHandle<()>,
}

impl EchoServer {
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

    /// Waits for an event matching `pred`, collecting every event seen.
    pub async fn wait(
        &mut self,
        seen: &mut Vec<ServerEvent>,
        limit: Duration,
        pred: impl Fn(&ServerEvent) -> bool,
    ) -> ServerEvent {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out; server events so far: {seen:?}"))
                .expect("server stopped");
            seen.push(ev.clone());
            if pred(&ev) {
                return ev;
            }
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends `msg` and waits for it to come back, collecting lifecycle events.
pub async fn echo(client: &mut Client, seen: &mut Vec<Lifecycle>, msg: &[u8]) {
    let msg = Bytes::copy_from_slice(msg);
    client.handle().send(msg.clone()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, client.next_event()).await {
            Ok(Some(ClientEvent::Message(m))) if m == msg => return,
            Ok(Some(ClientEvent::Lifecycle(step))) => seen.push(step),
            Ok(Some(_)) => {}
            other => panic!("no echo of {msg:?}: {other:?}; events {seen:?}"),
        }
    }
}

/// The names of lifecycle events, in order.
pub fn names(seen: &[Lifecycle]) -> Vec<&'static str> {
    seen.iter().map(|e| e.name()).collect()
}
