//! Scenario S0 for any transport: the server process is SIGKILLed and
//! started again on the same port; the client notices, backs off with
//! jitter, reconnects, reports each step exactly once, and its messages get
//! through, a message queued while the server was down included.
//!
//! A test runs it in three steps and checks what is particular to its
//! transport in between (the reason of the loss, how fast it was found,
//! handshake counters):
//!
//! ```ignore
//! let child = ChildConfig::default();
//! let server = ServerProcess::start("tcp://127.0.0.1:0", &child);
//! let connector = TcpConnector::new("127.0.0.1", server.port, TcpOptions::default());
//! let mut s0 = S0::connect(server, Proof::Echo, connector, fast_client()).await;
//! let lost = s0
//!     .kill_and_restart(Restart::AfterRefusal, Duration::from_secs(5), |port| {
//!         ServerProcess::start(&format!("tcp://127.0.0.1:{port}"), &child)
//!     })
//!     .await;
//! assert_eq!(lost.reason, DisconnectReason::PeerClosed);
//! s0.recover().await;
//! ```

use super::events::{drain, echo, expect_message, wait_for};
use super::process::ServerProcess;
use super::{assert_exactly_once, count, wait_connected, wait_disconnected};
use bytes::Bytes;
use std::time::{Duration, Instant};
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{Client, ClientConfig};
use tether_transports::Link;
use tether_transports::Reconnect;

const BEFORE: &[u8] = b"s0: before the kill";
const WHILE_DOWN: &[u8] = b"s0: queued while down";
const AFTER: &[u8] = b"s0: after the restart";

/// How the test sees that a message reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// A tether echo server: the message comes back to the client.
    Echo,
    /// A foreign server that prints what it decrypts (`openssl s_server`):
    /// the message shows up in its output.
    Printed,
}

/// When the killed server comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// After the client reported the loss and had an attempt refused, with
    /// a message queued in between (stream transports: a closed port
    /// refuses at once).
    AfterRefusal,
    /// Right after the kill, before the client noticed (datagram
    /// transports: only the new process can tell the client that its
    /// session is gone).
    AtOnce,
}

/// How the client reported the end of generation 1.
#[derive(Debug, Clone, Copy)]
pub struct Lost {
    /// The reason of the `Disconnected`.
    pub reason: DisconnectReason,
    /// From the kill to the `Disconnected`.
    pub took: Duration,
}

/// One run of the scenario: a client of a server process.
pub struct S0 {
    /// The supervised client.
    pub client: Client,
    /// Every lifecycle step of the client so far.
    pub seen: Vec<Lifecycle>,
    server: Option<ServerProcess>,
    proof: Proof,
    queued: Option<&'static [u8]>,
    restart: Option<Restart>,
    max_delay: Duration,
}

impl S0 {
    /// Spawns the client of `server`, waits until it is connected
    /// (generation 1) and proves a first message. The client's backoff
    /// must use a jitter that stays within `max_delay` (the default).
    pub async fn connect<R>(
        server: ServerProcess,
        proof: Proof,
        connector: R,
        config: ClientConfig,
    ) -> Self
    where
        R: Reconnect,
        R::Conn: Link,
    {
        let max_delay = config.backoff.max_delay;
        let client = Client::spawn(connector, config).expect("client config");
        let mut s0 = Self {
            client,
            seen: vec![],
            server: Some(server),
            proof,
            queued: None,
            restart: None,
            max_delay,
        };
        let generation = wait_connected(&mut s0.client, &mut s0.seen).await;
        assert_eq!(generation, 1, "{:?}", s0.seen);
        s0.prove(BEFORE).await;
        s0
    }

    /// Sends `msg` and waits until the server has it.
    pub async fn prove(&mut self, msg: &[u8]) {
        match self.proof {
            Proof::Echo => echo(&mut self.client, &mut self.seen, msg).await,
            Proof::Printed => {
                self.client
                    .handle()
                    .send(Bytes::copy_from_slice(msg))
                    .await
                    .expect("client closed");
                self.server().wait_received(msg).await;
            }
        }
    }

    fn server(&self) -> &ServerProcess {
        self.server.as_ref().expect("the server is down")
    }

    /// SIGKILLs the server and starts it again on the same port with
    /// `start` (at the moment `restart` says). The client must report the
    /// end of generation 1 within `detect_within`.
    pub async fn kill_and_restart(
        &mut self,
        restart: Restart,
        detect_within: Duration,
        start: impl FnOnce(u16) -> ServerProcess,
    ) -> Lost {
        let server = self.server.take().expect("the server is down");
        self.restart = Some(restart);
        let port = server.port;
        let killed = Instant::now();
        server.kill();
        let mut start = Some(start);
        let mut start_again = |s0: &mut Self| {
            let server = (start.take().expect("started once"))(port);
            assert_eq!(server.port, port, "restarted on another port");
            s0.server = Some(server);
        };
        if restart == Restart::AtOnce {
            start_again(self);
        }
        let (generation, reason) =
            wait_disconnected(&mut self.client, &mut self.seen, detect_within).await;
        let took = killed.elapsed();
        assert_eq!(generation, 1, "{:?}", self.seen);
        if restart == Restart::AfterRefusal {
            // While it is down, attempts are refused and spaced by backoff.
            wait_for(
                &mut self.client,
                &mut self.seen,
                Duration::from_secs(5),
                |e| {
                    matches!(
                        e,
                        Lifecycle::ConnectFailed {
                            reason: DisconnectReason::ConnectRefused,
                            ..
                        }
                    )
                },
            )
            .await;
            self.client
                .handle()
                .send(Bytes::from_static(WHILE_DOWN))
                .await
                .expect("client closed");
            self.queued = Some(WHILE_DOWN);
            start_again(self);
        }
        Lost { reason, took }
    }

    /// Waits for the reconnect, proves the queued message
    /// (delivered exactly once) and a new one, then checks the whole run:
    /// one `Connected` per generation, a single `Disconnected`, nothing
    /// after the reconnect, and backoff waits (within `max_delay`) between
    /// the attempts. Closes the client; returns every step seen.
    pub async fn recover(mut self) -> Vec<Lifecycle> {
        let back = wait_for(
            &mut self.client,
            &mut self.seen,
            Duration::from_secs(15),
            |e| matches!(e, Lifecycle::Connected { .. }),
        )
        .await;
        // Every attempt opens a generation: the reconnect is the latest,
        // and with the server back at once, the first after the loss.
        let Lifecycle::Connected { generation, .. } = back else {
            unreachable!()
        };
        assert_eq!(generation, count(&self.seen, "connecting") as u64);
        if self.restart == Some(Restart::AtOnce) {
            assert_eq!(generation, 2, "{:?}", self.seen);
        }
        if let Some(queued) = self.queued {
            match self.proof {
                Proof::Echo => expect_message(&mut self.client, &mut self.seen, queued).await,
                Proof::Printed => self.server().wait_received(queued).await,
            }
        }
        self.prove(AFTER).await;
        drain(&mut self.client, &mut self.seen, Duration::from_millis(300)).await;
        let seen = std::mem::take(&mut self.seen);
        assert_exactly_once(&seen);
        assert_eq!(count(&seen, "disconnected"), 1, "{seen:?}");
        assert_eq!(count(&seen, "connected"), 2, "{seen:?}");
        assert_eq!(seen.last().map(|e| e.name()), Some("connected"), "{seen:?}");
        let waits: Vec<Duration> = seen
            .iter()
            .filter_map(|e| match e {
                Lifecycle::Waiting { delay, .. } => Some(*delay),
                _ => None,
            })
            .collect();
        assert!(!waits.is_empty(), "no backoff: {seen:?}");
        assert!(
            waits.iter().all(|d| *d <= self.max_delay),
            "{waits:?} (max {:?})",
            self.max_delay
        );
        self.client.close();
        seen
    }
}
