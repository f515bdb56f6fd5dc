//! The drill's world for one transport: a supervised server, the fault
//! proxy in front of it, the supervised clients, and the record of
//! everything they reported.

use super::check::LifecycleCheck;
use super::options::DrillOptions;
use super::proxy::Proxy;
use super::transport::{is_datagram, Secrets};
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tether_core::liveness::Policy;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{
    Client, ClientConfig, ClientEvent, ClientHandle, Server, ServerConfig, ServerEvent,
};
use tether_transports::endpoint::{self, BoxAcceptor, TransportOptions};
use tether_transports::fault::Fault;
use tether_transports::{Endpoint, Scheme};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Time for the UDP proxy's mapping tasks to act on a new fault, and on
/// datagrams already in their sockets (generous for a loaded machine).
const FAULT_SETTLE: Duration = Duration::from_millis(100);

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

/// A loopback endpoint of `scheme`.
fn loopback(scheme: Scheme, port: u16) -> Endpoint {
    Endpoint {
        scheme,
        host: Ipv4Addr::LOCALHOST.to_string(),
        port,
    }
}

/// A server running in its own task, which drains its events and closes
/// connections on request.
pub struct RunningServer {
    pub addr: SocketAddr,
    close_all: mpsc::UnboundedSender<oneshot::Sender<usize>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// A listener on loopback `port` (0: picked by the kernel).
    async fn bind(
        scheme: Scheme,
        port: u16,
        options: &TransportOptions,
    ) -> std::io::Result<BoxAcceptor> {
        endpoint::acceptor(&loopback(scheme, port), options).await
    }

    fn spawn(
        acceptor: BoxAcceptor,
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
        let (close_all, mut close_requests) = mpsc::unbounded_channel::<oneshot::Sender<usize>>();
        let task = tokio::spawn(async move {
            let note = |reason| {
                let at = Instant::now();
                let _ = notes.send(Note::ServerClosed { at, reason });
            };
            let mut open = HashSet::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    Some(reply) = close_requests.recv() => {
                        let closed = open.iter().filter(|&&id| server.close(id).is_ok()).count();
                        let _ = reply.send(closed);
                    }
                    event = server.next_event() => match event {
                        Some(ServerEvent::Accepted { id, .. }) => {
                            open.insert(id);
                        }
                        Some(ServerEvent::Closed { id, reason, .. }) => {
                            open.remove(&id);
                            note(reason);
                        }
                        Some(_) => {}
                        None => break,
                    },
                }
            }
            // Every connection closes at once (the crash half of a
            // restart); their ends are still recorded, for a bounded time.
            server.shutdown();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            while let Ok(Some(event)) = tokio::time::timeout_at(deadline, server.next_event()).await
            {
                if let ServerEvent::Closed { reason, .. } = event {
                    note(reason);
                }
            }
        });
        Ok(Self {
            addr,
            close_all,
            stop,
            task,
        })
    }

    /// Closes every open connection in an orderly way (`Server::close`);
    /// returns how many.
    pub async fn close_all(&self) -> usize {
        let (reply, closed) = oneshot::channel();
        if self.close_all.send(reply).is_err() {
            return 0;
        }
        closed.await.unwrap_or(0)
    }

    /// Drops the server: its connections are closed, its socket released.
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

/// How a restart went.
pub struct Restarted {
    pub old: SocketAddr,
    pub new: SocketAddr,
    /// Datagram transports: how long the proxy black-holed everything
    /// while the old server went and the new one came up.
    pub blackout: Option<Duration>,
}

pub struct World {
    pub scheme: Scheme,
    notes: mpsc::UnboundedReceiver<Note>,
    notes_tx: mpsc::UnboundedSender<Note>,
    policy: Policy,
    server_options: TransportOptions,
    pub clients: Vec<ClientLog>,
    handles: Vec<ClientHandle>,
    pub server_closed: Vec<(Instant, DisconnectReason)>,
    pub server: Option<RunningServer>,
    pub proxy: Proxy,
}

impl World {
    /// Starts the server, the proxy in front of it and the clients.
    pub async fn start(
        scheme: Scheme,
        opts: &DrillOptions,
        secrets: &Secrets,
    ) -> Result<Self, String> {
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let policy = Policy::Heartbeat(opts.heartbeat);
        let server_options = secrets.server_options(&policy);
        let acceptor = RunningServer::bind(scheme, 0, &server_options)
            .await
            .map_err(|e| format!("cannot start the {} server: {e}", scheme.as_str()))?;
        let server = RunningServer::spawn(acceptor, policy, notes_tx.clone())?;
        let proxy = Proxy::start(scheme, server.addr)
            .await
            .map_err(|e| format!("cannot start the fault proxy: {e}"))?;
        if let Some(seed) = opts.seed {
            proxy.set_seed(seed);
        }
        let mut world = Self {
            scheme,
            notes,
            notes_tx,
            policy,
            server_options,
            clients: Vec::new(),
            handles: Vec::new(),
            server_closed: Vec::new(),
            server: Some(server),
            proxy,
        };
        let client_options = secrets.client_options(&opts.heartbeat);
        for index in 0..opts.clients {
            world.spawn_client(index, opts, &client_options)?;
        }
        Ok(world)
    }

    fn spawn_client(
        &mut self,
        index: usize,
        opts: &DrillOptions,
        options: &TransportOptions,
    ) -> Result<(), String> {
        let target = loopback(self.scheme, self.proxy.local_addr().port());
        let connector = endpoint::connector(&target, options).map_err(|e| e.to_string())?;
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

    /// Closes every connection from the server side; returns how many.
    pub async fn close_all_on_server(&self) -> usize {
        match &self.server {
            Some(server) => server.close_all().await,
            None => 0,
        }
    }

    /// Drops the server and starts a new one.
    ///
    /// Stream transports: the new server gets a new port and the proxy is
    /// redirected to it before the old one goes, so that a client that
    /// reconnects at once never meets the dead port (through a proxy that
    /// would look like a connection reset right after it was accepted).
    ///
    /// Datagram transports: the new server must come back on the *same*
    /// port with the same reset key, as a restarted process would. The
    /// proxy black-holes everything meanwhile, so that the old server's
    /// goodbye packets are lost as in a crash, and clients learn of the
    /// restart only from the new server's answer to their next packet.
    pub async fn restart_server(&mut self) -> Result<Restarted, String> {
        let old = self.server.take().ok_or("no server is running")?;
        let old_addr = old.addr;
        if !is_datagram(self.scheme) {
            let acceptor = RunningServer::bind(self.scheme, 0, &self.server_options)
                .await
                .map_err(|e| format!("cannot listen on a new port: {e}"))?;
            let new = RunningServer::spawn(acceptor, self.policy, self.notes_tx.clone())?;
            if let Proxy::Stream(proxy) = &self.proxy {
                proxy.set_upstream(new.addr);
            }
            let new_addr = new.addr;
            self.server = Some(new);
            old.stop().await;
            return Ok(Restarted {
                old: old_addr,
                new: new_addr,
                blackout: None,
            });
        }
        self.proxy.set_fault(Fault::BlackHole);
        let blackout = Instant::now();
        // Each proxy mapping applies a new fault when its task next runs;
        // a datagram it receives in that same wakeup still passes under the
        // old mode. Give every mapping time to see the black hole before
        // the server says goodbye.
        tokio::time::sleep(FAULT_SETTLE).await;
        old.stop().await;
        // The old socket is released once the server's tasks have wound
        // down; until then the port is still taken.
        let deadline = Instant::now() + Duration::from_secs(5);
        let acceptor = loop {
            match RunningServer::bind(self.scheme, old_addr.port(), &self.server_options).await {
                Ok(acceptor) => break Ok(acceptor),
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => break Err(format!("cannot listen on {old_addr} again: {e}")),
            }
        };
        let started =
            acceptor.and_then(|a| RunningServer::spawn(a, self.policy, self.notes_tx.clone()));
        // The goodbyes were sent before `stop` returned, but a mapping task
        // may not have read them yet: lifted now, they would still pass.
        tokio::time::sleep(FAULT_SETTLE).await;
        self.proxy.set_fault(Fault::Pass);
        let new = started?;
        let new_addr = new.addr;
        self.server = Some(new);
        Ok(Restarted {
            old: old_addr,
            new: new_addr,
            blackout: Some(blackout.elapsed()),
        })
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
