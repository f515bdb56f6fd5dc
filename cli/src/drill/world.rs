//! The drill's world: a supervised server, the fault proxy in front of it,
//! the supervised clients, and the record of everything they reported.

use super::check::LifecycleCheck;
use super::options::DrillOptions;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tether_core::liveness::Policy;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{
    Client, ClientConfig, ClientEvent, ClientHandle, Server, ServerConfig, ServerEvent,
};
use tether_transports::fault::FaultProxy;
use tether_transports::tcp::{TcpAcceptor, TcpConnector, TcpOptions};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Something one of the parties reported, stamped when it arrived.
enum Note {
    Client {
        index: usize,
        at: Instant,
        event: Lifecycle,
    },
    ServerClosed {
        at: Instant,
        reason: DisconnectReason,
    },
}

/// A server running in its own task, which drains its events.
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningServer {
    async fn start(policy: Policy, notes: mpsc::UnboundedSender<Note>) -> Result<Self, String> {
        Self::spawn(Self::bind().await?, policy, notes)
    }

    /// A listener on a loopback port picked by the kernel.
    async fn bind() -> Result<TcpAcceptor, String> {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        TcpAcceptor::bind(listen, TcpOptions::default())
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))
    }

    fn spawn(
        acceptor: TcpAcceptor,
        policy: Policy,
        notes: mpsc::UnboundedSender<Note>,
    ) -> Result<Self, String> {
        let config = ServerConfig {
            policy,
            ..ServerConfig::default()
        };
        let mut server = Server::spawn(acceptor, config).map_err(|e| e.to_string())?;
        let addr = server.local_addr();
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    event = server.next_event() => match event {
                        Some(ServerEvent::Closed { reason, .. }) => {
                            let at = Instant::now();
                            let _ = notes.send(Note::ServerClosed { at, reason });
                        }
                        Some(_) => {}
                        None => break,
                    },
                }
            }
            // Dropping the server is the crash half of a restart.
            drop(server);
        });
        Ok(Self { addr, stop, task })
    }

    /// Drops the server (its listener closes; its connections are closed).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// One client's reported events and the running check of their order.
#[derive(Default)]
pub struct ClientLog {
    pub events: Vec<(Instant, Lifecycle)>,
    pub check: LifecycleCheck,
}

pub struct World {
    notes: mpsc::UnboundedReceiver<Note>,
    notes_tx: mpsc::UnboundedSender<Note>,
    policy: Policy,
    pub clients: Vec<ClientLog>,
    handles: Vec<ClientHandle>,
    pub server_closed: Vec<(Instant, DisconnectReason)>,
    pub server: Option<RunningServer>,
    pub proxy: FaultProxy,
}

impl World {
    /// Starts the server, the proxy in front of it and the clients.
    pub async fn start(opts: &DrillOptions) -> Result<Self, String> {
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let policy = Policy::Heartbeat(opts.heartbeat);
        let server = RunningServer::start(policy, notes_tx.clone()).await?;
        let proxy = FaultProxy::start(server.addr)
            .await
            .map_err(|e| format!("cannot start the fault proxy: {e}"))?;
        if let Some(seed) = opts.seed {
            proxy.set_seed(seed);
        }
        let mut world = Self {
            notes,
            notes_tx,
            policy,
            clients: Vec::new(),
            handles: Vec::new(),
            server_closed: Vec::new(),
            server: Some(server),
            proxy,
        };
        for index in 0..opts.clients {
            world.spawn_client(index, opts)?;
        }
        Ok(world)
    }

    fn spawn_client(&mut self, index: usize, opts: &DrillOptions) -> Result<(), String> {
        let target = self.proxy.local_addr();
        let connector = TcpConnector::new(
            target.ip().to_string(),
            target.port(),
            TcpOptions::default(),
        );
        let mut backoff = opts.backoff.clone();
        if let Some(seed) = opts.seed {
            backoff = backoff.with_seed(seed.wrapping_add(index as u64));
        }
        let config = ClientConfig {
            heartbeat: opts.heartbeat,
            backoff,
            ..ClientConfig::default()
        };
        let mut client = Client::spawn(connector, config).map_err(|e| e.to_string())?;
        self.handles.push(client.handle());
        self.clients.push(ClientLog::default());
        let notes = self.notes_tx.clone();
        tokio::spawn(async move {
            while let Some(event) = client.next_event().await {
                if let ClientEvent::Lifecycle(event) = event {
                    let at = Instant::now();
                    let _ = notes.send(Note::Client { index, at, event });
                }
            }
        });
        Ok(())
    }

    fn record(&mut self, note: Note) {
        match note {
            Note::Client { index, at, event } => {
                let log = &mut self.clients[index];
                log.check.feed(&event);
                log.events.push((at, event));
            }
            Note::ServerClosed { at, reason } => self.server_closed.push((at, reason)),
        }
    }

    /// Records reports until `done` holds or `deadline` passes; returns
    /// whether `done` holds.
    pub async fn pump_until(&mut self, deadline: Instant, done: impl Fn(&World) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let deadline = tokio::time::Instant::from_std(deadline);
            match tokio::time::timeout_at(deadline, self.notes.recv()).await {
                Ok(Some(note)) => self.record(note),
                Ok(None) | Err(_) => return done(self),
            }
        }
    }

    /// Records reports for `d`.
    pub async fn pump_for(&mut self, d: Duration) {
        self.pump_until(Instant::now() + d, |_| false).await;
    }

    /// True when every client has a connection up.
    pub fn all_connected(&self) -> bool {
        self.clients.iter().all(|c| c.check.connected().is_some())
    }

    /// Drops the server and starts a new one on a new port; the proxy then
    /// forwards new connections to it. Returns (old, new) addresses.
    ///
    /// The new port is bound before the old server goes, so that no await
    /// separates the drop from the redirect: a client that reconnects at
    /// once would otherwise meet the dead port, which through a proxy looks
    /// like a connection that is reset right after it was accepted.
    pub async fn restart_server(&mut self) -> Result<(SocketAddr, SocketAddr), String> {
        let old = self.server.take().ok_or("no server is running")?;
        let acceptor = RunningServer::bind().await?;
        let old_addr = old.addr;
        old.stop().await;
        let new = RunningServer::spawn(acceptor, self.policy, self.notes_tx.clone())?;
        self.proxy.set_upstream(new.addr);
        let new_addr = new.addr;
        self.server = Some(new);
        Ok((old_addr, new_addr))
    }

    /// Closes every client and waits (bounded) until each reported its end.
    pub async fn close_clients(&mut self, within: Duration) -> bool {
        for handle in &self.handles {
            handle.close();
        }
        let deadline = Instant::now() + within;
        self.pump_until(deadline, |w| {
            w.clients.iter().all(|c| c.check.is_terminal())
        })
        .await
    }

    /// Stops the server; the proxy stops when the world is dropped.
    pub async fn stop_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}
