//! The simulated client/server pair.

use crate::backoff::{BackoffConfig, ExponentialBackoff};
use crate::liveness::{HeartbeatConfig, Liveness, LivenessAction, Monitor, Policy};
use crate::registry::{ConnId, Registry, RegistryEvent};
use crate::supervisor::{Action, Lifecycle, Supervisor};
use crate::DisconnectReason;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// A network fault, applied from the moment it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Everything gets through.
    None,
    /// Nothing gets through, in either direction; no one is told (a pulled
    /// cable, a NAT mapping that expired, a crashed host).
    BlackHole,
    /// Client-to-server packets are lost.
    DropToServer,
    /// Server-to-client packets are lost.
    DropToClient,
    /// The server is down: connection attempts are refused.
    ServerDown,
}

/// Timings of a simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The client's heartbeat.
    pub heartbeat: HeartbeatConfig,
    /// The client's reconnect policy (seed it for replayable jitter).
    pub backoff: BackoffConfig,
    /// The server's liveness rule.
    pub server_policy: Policy,
    /// One-way latency of the simulated link.
    pub latency: Duration,
    /// Interval at which the client sends application data while connected
    /// (`None`: the client sends nothing but heartbeats).
    pub client_data_every: Option<Duration>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            heartbeat: HeartbeatConfig::default(),
            backoff: BackoffConfig::default().with_seed(1),
            server_policy: Policy::Heartbeat(HeartbeatConfig::default()),
            latency: Duration::from_millis(20),
            client_data_every: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packet {
    Data,
    Ping(u64),
    Pong(u64),
    Fin,
    Rst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dest {
    Server,
    Client,
}

#[derive(Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    dest: Dest,
    /// The client's connection generation the packet belongs to.
    generation: u64,
    /// The server incarnation the packet belongs to.
    incarnation: u32,
    packet: Packet,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A supervised client and a registry server over a simulated link.
pub struct SimPair {
    config: SimConfig,
    start: Instant,
    now: Instant,
    fault: Fault,
    supervisor: Supervisor<ExponentialBackoff>,
    monitor: Monitor,
    registry: Registry,
    /// Server incarnation: bumped by a restart, which forgets connections.
    incarnation: u32,
    /// The client's live connection: generation and the server's id for it.
    link: Option<(u64, Option<ConnId>)>,
    dialing: Option<(u64, Instant, bool)>,
    next_data: Option<Instant>,
    wire: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    client_events: Vec<(Duration, Lifecycle)>,
    server_events: Vec<(Duration, RegistryEvent)>,
    /// Server-side connection for each client generation.
    server_conns: Vec<(u64, ConnId)>,
}

impl SimPair {
    /// Builds the pair and starts the client's first connection attempt.
    ///
    /// # Panics
    /// If `config` holds an invalid heartbeat, backoff or policy (this is a
    /// test utility).
    pub fn new(config: SimConfig) -> Self {
        let start = Instant::now();
        let backoff = ExponentialBackoff::new(config.backoff.clone()).expect("valid backoff");
        let monitor = Monitor::heartbeat(config.heartbeat, start).expect("valid heartbeat");
        let registry = Registry::new(config.server_policy, start).expect("valid server policy");
        let mut sim = Self {
            config,
            start,
            now: start,
            fault: Fault::None,
            supervisor: Supervisor::new(backoff),
            monitor,
            registry,
            incarnation: 1,
            link: None,
            dialing: None,
            next_data: None,
            wire: BinaryHeap::new(),
            seq: 0,
            client_events: Vec::new(),
            server_events: Vec::new(),
            server_conns: Vec::new(),
        };
        sim.supervisor.start(start);
        sim.drain_client();
        sim
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Sets the network fault.
    pub fn set_fault(&mut self, fault: Fault) {
        self.fault = fault;
    }

    /// Restarts the server: it forgets every connection (packets of old
    /// connections are answered with a reset) and comes back at once.
    pub fn restart_server(&mut self) {
        self.incarnation += 1;
        self.registry = Registry::new(self.config.server_policy, self.now).expect("valid policy");
        self.server_conns.clear();
    }

    /// Whether the client has a live connection.
    pub fn is_connected(&self) -> bool {
        self.link.is_some()
    }

    /// Connections the server currently tracks.
    pub fn server_connections(&self) -> usize {
        self.registry.len()
    }

    /// Every lifecycle event of the client, with the time it happened.
    pub fn client_events(&self) -> &[(Duration, Lifecycle)] {
        &self.client_events
    }

    /// Every registry event of the server, with the time it happened.
    pub fn server_events(&self) -> &[(Duration, RegistryEvent)] {
        &self.server_events
    }

    /// Closes the client on request.
    pub fn close_client(&mut self) {
        self.supervisor.handle_close(self.now);
        self.drain_client();
    }

    /// Runs the simulation for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(next) = self.next_wakeup() {
            if next > end {
                break;
            }
            self.step(next);
        }
        self.now = end.max(self.now);
    }

    /// Runs until `done` holds or `limit` of simulated time has passed;
    /// returns whether `done` held.
    pub fn run_until(&mut self, done: impl Fn(&Self) -> bool, limit: Duration) -> bool {
        let end = self.now + limit;
        while !done(self) {
            match self.next_wakeup() {
                Some(next) if next <= end => self.step(next),
                _ => {
                    self.now = end;
                    return done(self);
                }
            }
        }
        true
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.supervisor.poll_timeout());
        if self.link.is_some() {
            consider(self.monitor.poll_timeout());
            consider(self.next_data);
        }
        consider(self.dialing.map(|(_, at, _)| at));
        consider(self.registry.poll_timeout());
        consider(self.wire.peek().map(|p| p.0.at));
        next.map(|t| t.max(self.now))
    }

    fn step(&mut self, at: Instant) {
        self.now = at;
        while self.wire.peek().is_some_and(|p| p.0.at <= at) {
            let Reverse(p) = self.wire.pop().expect("peeked");
            self.deliver(p);
        }
        if let Some((generation, done, ok)) = self.dialing {
            if done <= at {
                self.dialing = None;
                self.finish_dial(generation, ok);
            }
        }
        self.supervisor.handle_timeout(at);
        self.client_timers();
        self.server_timers();
        self.drain_client();
    }

    fn send(&mut self, dest: Dest, generation: u64, packet: Packet) {
        let lost = matches!(
            (self.fault, dest),
            (Fault::BlackHole, _)
                | (Fault::DropToServer, Dest::Server)
                | (Fault::DropToClient, Dest::Client)
        );
        if lost {
            return;
        }
        self.seq += 1;
        self.wire.push(Reverse(InFlight {
            at: self.now + self.config.latency,
            seq: self.seq,
            dest,
            generation,
            incarnation: self.incarnation,
            packet,
        }));
    }

    fn finish_dial(&mut self, generation: u64, ok: bool) {
        if !ok {
            self.supervisor.handle_connect_failed(
                generation,
                DisconnectReason::ConnectRefused,
                self.now,
            );
            return;
        }
        if self.supervisor.handle_connected(generation, self.now) {
            self.monitor.reset(self.now);
            let id = self.registry.insert(self.now, generation).ok();
            if let Some(id) = id {
                self.server_conns.push((generation, id));
            }
            self.link = Some((generation, id));
            self.next_data = self.config.client_data_every.map(|d| self.now + d);
        }
    }

    fn deliver(&mut self, p: InFlight) {
        match p.dest {
            Dest::Server => self.server_receive(p),
            Dest::Client => self.client_receive(p),
        }
    }

    fn server_receive(&mut self, p: InFlight) {
        let known = self
            .server_conns
            .iter()
            .find(|(g, _)| *g == p.generation)
            .map(|(_, id)| *id);
        let Some(id) = known.filter(|_| p.incarnation == self.incarnation) else {
            // A packet for a connection this server does not know: reset.
            if p.packet != Packet::Rst {
                self.send(Dest::Client, p.generation, Packet::Rst);
            }
            return;
        };
        let _ = self.registry.touch(id, self.now);
        match p.packet {
            Packet::Ping(v) => self.send(Dest::Client, p.generation, Packet::Pong(v)),
            Packet::Fin | Packet::Rst => {
                let _ = self.registry.remove(id);
                self.server_conns.retain(|(g, _)| *g != p.generation);
            }
            Packet::Data | Packet::Pong(_) => {}
        }
    }

    fn client_receive(&mut self, p: InFlight) {
        let Some((generation, _)) = self.link else {
            return;
        };
        if generation != p.generation {
            return;
        }
        match p.packet {
            Packet::Data => self.monitor.handle_received(self.now),
            Packet::Ping(v) => {
                self.monitor.handle_received(self.now);
                self.send(Dest::Server, generation, Packet::Pong(v));
            }
            Packet::Pong(v) => {
                self.monitor.handle_pong(self.now, v);
            }
            Packet::Fin => self.lose_link(DisconnectReason::PeerClosed),
            Packet::Rst => self.lose_link(DisconnectReason::Reset),
        }
    }

    fn lose_link(&mut self, reason: DisconnectReason) {
        if let Some((generation, _)) = self.link.take() {
            self.next_data = None;
            self.supervisor
                .handle_disconnected(generation, reason, self.now);
        }
    }

    fn client_timers(&mut self) {
        let Some((generation, _)) = self.link else {
            return;
        };
        if self.next_data.is_some_and(|t| t <= self.now) {
            self.send(Dest::Server, generation, Packet::Data);
            self.next_data = self.config.client_data_every.map(|d| self.now + d);
        }
        self.monitor.handle_timeout(self.now);
        while let Some(action) = self.monitor.poll_action() {
            match action {
                LivenessAction::SendPing { payload } => {
                    self.send(Dest::Server, generation, Packet::Ping(payload))
                }
                LivenessAction::Dead { reason, .. } => self.lose_link(reason),
            }
        }
    }

    fn server_timers(&mut self) {
        self.registry.handle_timeout(self.now);
        while let Some(event) = self.registry.poll_event() {
            self.server_events.push((self.elapsed(), event));
            let generation = event.tag();
            match event {
                RegistryEvent::PingDue { .. } => {
                    self.send(Dest::Client, generation, Packet::Ping(0))
                }
                RegistryEvent::Expired { .. } => {
                    self.server_conns.retain(|(g, _)| *g != generation);
                    self.send(Dest::Client, generation, Packet::Fin);
                }
            }
        }
    }

    fn drain_client(&mut self) {
        while let Some(action) = self.supervisor.poll_action() {
            match action {
                Action::Dial { generation, .. } => {
                    let ok = self.fault == Fault::None
                        || matches!(self.fault, Fault::DropToClient | Fault::DropToServer);
                    let refused = self.fault == Fault::ServerDown;
                    // A black hole swallows the handshake: the attempt only
                    // ends by the supervisor's connect timeout.
                    if ok || refused {
                        let rtt = self.config.latency * 2;
                        self.dialing = Some((generation, self.now + rtt, ok));
                    }
                }
                Action::AbortDial { generation } => {
                    if self.dialing.is_some_and(|(g, _, _)| g == generation) {
                        self.dialing = None;
                    }
                }
                Action::CloseLink { generation } => {
                    if self.link.is_some_and(|(g, _)| g == generation) {
                        self.link = None;
                        self.send(Dest::Server, generation, Packet::Fin);
                    }
                }
            }
        }
        while let Some(ev) = self.supervisor.poll_event() {
            self.client_events.push((self.elapsed(), ev));
        }
    }
}
