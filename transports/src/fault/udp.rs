//! [`UdpFaultProxy`]: one front socket, one upstream socket per client
//! address (a mapping, as in a NAT), datagrams shaped both ways by the same
//! lanes and modes as the TCP proxy.

use super::lane::{next_wake, sleep_until, Admit, Lane};
use super::mode::{Direction, Fault, Mode};
use super::stats::{Counters, UdpCounters, UdpFaultStats};
use super::switch::Switch;
use bytes::Bytes;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use tether_core::ConfigError;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// Datagrams from one client waiting for its mapping's task.
const CLIENT_QUEUE: usize = 1024;

/// A UDP proxy that injects faults on command.
///
/// Clients send to [`UdpFaultProxy::local_addr`]. The first datagram from a
/// client address creates a *mapping*: a fresh upstream socket (its own
/// source port) connected to the upstream; replies on it go back to that
/// client from the front socket. Faults apply per datagram:
///
/// * [`Fault::BlackHole`], [`Fault::Cut`] and [`Fault::Delay`] as for TCP;
///   a delay with jitter keeps datagrams in order;
/// * [`UdpFaultProxy::set_loss`]: each datagram, either way, is lost with
///   the given probability (seeded with [`UdpFaultProxy::set_seed`]);
///   combines with any fault;
/// * [`UdpFaultProxy::pause`] *buffers*: datagrams are held, up to 256 KiB
///   per direction per mapping (beyond that they are dropped, like a full
///   router queue), and [`UdpFaultProxy::resume`] delivers the held ones in
///   order;
/// * [`UdpFaultProxy::forget_clients`]: every mapping is forgotten at once,
///   as when a NAT box restarts or its mappings expire. A client's next
///   datagram creates a new mapping, so the upstream sees it arrive from a
///   new address; replies to an old mapping are silently dropped, as a real
///   NAT would (no ICMP error reaches the upstream).
///
/// Create it inside a tokio runtime (with I/O and time enabled). Dropping
/// it closes the front socket and every mapping.
///
/// ```
/// use std::time::Duration;
/// use tether_transports::fault::{Fault, UdpFaultProxy};
/// use tokio::net::UdpSocket;
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     // An echo server stands in for the real upstream.
///     let server = UdpSocket::bind("127.0.0.1:0").await?;
///     let upstream = server.local_addr()?;
///     tokio::spawn(async move {
///         let mut buf = [0u8; 1500];
///         while let Ok((n, from)) = server.recv_from(&mut buf).await {
///             let _ = server.send_to(&buf[..n], from).await;
///         }
///     });
///
///     let proxy = UdpFaultProxy::start(upstream).await?;
///     let client = UdpSocket::bind("127.0.0.1:0").await?;
///     client.connect(proxy.local_addr()).await?;
///     let mut buf = [0u8; 16];
///     client.send(b"ping").await?;
///     let n = client.recv(&mut buf).await?;
///     assert_eq!(&buf[..n], b"ping");
///
///     // Black hole: the datagram vanishes, no error anywhere.
///     proxy.set_fault(Fault::BlackHole);
///     client.send(b"lost").await?;
///     let reply = tokio::time::timeout(Duration::from_millis(200), client.recv(&mut buf)).await;
///     assert!(reply.is_err(), "silence");
///
///     // Every second datagram lost, reproducibly.
///     proxy.set_fault(Fault::Pass);
///     proxy.set_seed(1);
///     proxy.set_loss(50.0)?;
///     assert!(proxy.set_loss(120.0).is_err());
///     assert_eq!(proxy.stats().datagrams_dropped, 1);
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct UdpFaultProxy {
    shared: Arc<UdpShared>,
    local_addr: SocketAddr,
    front_task: JoinHandle<()>,
}

#[derive(Debug)]
struct UdpShared {
    switch: Switch,
    /// Client address -> the queue into its mapping's task. Dropping the
    /// sender forgets the mapping.
    clients: Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>,
    counters: UdpCounters,
}

impl UdpShared {
    fn clients(&self) -> MutexGuard<'_, HashMap<SocketAddr, mpsc::Sender<Bytes>>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl UdpFaultProxy {
    /// Starts a proxy on `127.0.0.1` with a port picked by the kernel,
    /// forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        Self::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), upstream).await
    }

    /// Starts a proxy whose front socket is bound to `listen`, forwarding
    /// to `upstream`.
    pub async fn bind(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Self> {
        let front = Arc::new(UdpSocket::bind(listen).await?);
        let local_addr = front.local_addr()?;
        let shared = Arc::new(UdpShared {
            switch: Switch::new(upstream),
            clients: Mutex::new(HashMap::new()),
            counters: UdpCounters::default(),
        });
        let front_task = tokio::spawn(front_loop(front, shared.clone()));
        Ok(Self {
            shared,
            local_addr,
            front_task,
        })
    }

    /// The address clients should send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where new mappings send.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.switch.upstream()
    }

    /// Sends through mappings created from now on to `addr`; existing
    /// mappings keep their upstream (call [`UdpFaultProxy::forget_clients`]
    /// to move everyone).
    pub fn set_upstream(&self, addr: SocketAddr) {
        self.shared.switch.set_upstream(addr);
    }

    /// Puts `fault` in force for every mapping, existing and new. A delay
    /// applies to datagrams received from now on.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.switch.set_fault(fault);
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        self.shared.switch.mode().fault
    }

    /// Loses each datagram, in either direction, with probability
    /// `percent` / 100 (`0.0` turns loss off). Combines with the fault in
    /// force. Fails, changing nothing, unless `0.0 <= percent <= 100.0`.
    pub fn set_loss(&self, percent: f64) -> Result<(), ConfigError> {
        self.shared.switch.set_loss(percent)
    }

    /// The loss in force, in percent.
    pub fn loss(&self) -> f64 {
        self.shared.switch.loss_percent()
    }

    /// Holds every datagram, both ways, until [`UdpFaultProxy::resume`]:
    /// up to 256 KiB per direction per mapping are buffered, the rest
    /// dropped. Independent of the fault in force.
    pub fn pause(&self) {
        self.shared.switch.set_paused(true);
    }

    /// Ends a [`UdpFaultProxy::pause`]: held datagrams are delivered in
    /// order (at once if their delay has passed).
    pub fn resume(&self) {
        self.shared.switch.set_paused(false);
    }

    /// True between [`UdpFaultProxy::pause`] and [`UdpFaultProxy::resume`].
    pub fn is_paused(&self) -> bool {
        self.shared.switch.mode().paused
    }

    /// Forgets every client mapping, as a restarted NAT would: datagrams
    /// still held for them are dropped, replies to them are dropped from
    /// now on, and each client's next datagram opens a new mapping with a
    /// new source port. A forgotten mapping's upstream socket stays open,
    /// swallowing what the upstream still sends to it, until the proxy is
    /// dropped. Returns how many mappings were forgotten.
    pub fn forget_clients(&self) -> usize {
        let n = {
            let mut clients = self.shared.clients();
            let n = clients.len();
            clients.clear();
            n
        };
        Counters::add(&self.shared.counters.forgotten, n as u64);
        n
    }

    /// Makes the loss and jitter draws of mappings created from now on
    /// reproducible.
    pub fn set_seed(&self, seed: u64) {
        self.shared.switch.set_seed(seed);
    }

    /// Client mappings in force now.
    pub fn client_count(&self) -> usize {
        self.shared.clients().len()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> UdpFaultStats {
        let active = self.client_count();
        self.shared.counters.snapshot(active)
    }
}

impl Drop for UdpFaultProxy {
    fn drop(&mut self) {
        // The front task owns every mapping's task (a JoinSet): aborting it
        // ends them all and closes their sockets.
        self.front_task.abort();
        self.shared.clients().clear();
    }
}

async fn front_loop(front: Arc<UdpSocket>, shared: Arc<UdpShared>) {
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    let mut buf = vec![0u8; MAX_DATAGRAM].into_boxed_slice();
    loop {
        tokio::select! {
            received = front.recv_from(&mut buf) => match received {
                Ok((n, client)) => {
                    let datagram = Bytes::copy_from_slice(&buf[..n]);
                    let queue = shared.clients().get(&client).cloned();
                    let queue = match queue {
                        Some(queue) => queue,
                        None => {
                            next_id += 1;
                            match open_mapping(&shared, &front, client, next_id, &mut tasks) {
                                Some(queue) => queue,
                                None => continue,
                            }
                        }
                    };
                    if queue.try_send(datagram).is_err() {
                        Counters::add(&shared.counters.datagrams_dropped, 1);
                    }
                }
                // An ICMP error for an earlier send, or a datagram too big
                // for the buffer: nothing to forward, keep serving.
                Err(e) => tracing::debug!(error = %e, "udp fault proxy: front recv failed"),
            },
            Some(_) = tasks.join_next() => {}
        }
    }
}

/// Opens the upstream socket of a new client and starts its task.
fn open_mapping(
    shared: &Arc<UdpShared>,
    front: &Arc<UdpSocket>,
    client: SocketAddr,
    id: u64,
    tasks: &mut JoinSet<()>,
) -> Option<mpsc::Sender<Bytes>> {
    let upstream = shared.switch.upstream();
    let up = match connect_upstream(upstream) {
        Ok(up) => up,
        Err(e) => {
            tracing::debug!(%upstream, error = %e, "udp fault proxy: no upstream socket");
            Counters::add(&shared.counters.upstream_failures, 1);
            Counters::add(&shared.counters.datagrams_dropped, 1);
            return None;
        }
    };
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    shared.clients().insert(client, tx.clone());
    Counters::add(&shared.counters.clients, 1);
    let mapping = Mapping {
        shared: shared.clone(),
        front: front.clone(),
        client,
        up,
        rng: shared.switch.rng(id),
    };
    tasks.spawn(mapping.run(rx));
    Some(tx)
}

fn connect_upstream(upstream: SocketAddr) -> io::Result<UdpSocket> {
    let any = match upstream {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let sock = std::net::UdpSocket::bind(any)?;
    sock.connect(upstream)?;
    sock.set_nonblocking(true)?;
    UdpSocket::from_std(sock)
}

/// One client's mapping: its upstream socket and the two lanes.
struct Mapping {
    shared: Arc<UdpShared>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    up: UdpSocket,
    rng: fastrand::Rng,
}

impl Mapping {
    /// Runs until the proxy drops; once forgotten (`rx` closed) the mapping
    /// only swallows what the upstream still sends to it.
    async fn run(mut self, mut rx: mpsc::Receiver<Bytes>) {
        let shared = self.shared.clone();
        let counters = &shared.counters;
        let mut mode_rx = self.shared.switch.mode.subscribe();
        let mut c2s = Lane::new(Direction::Upstream);
        let mut s2c = Lane::new(Direction::Downstream);
        let mut mapped = true;
        let mut buf = vec![0u8; MAX_DATAGRAM].into_boxed_slice();
        loop {
            let mode = *mode_rx.borrow_and_update();
            for lane in [&mut c2s, &mut s2c] {
                let (n, _) = lane.purge(mode);
                Counters::add(&counters.datagrams_dropped, n as u64);
            }
            let now = Instant::now();
            self.deliver(&mut c2s, mode, now, &counters.datagrams_upstream);
            self.deliver(&mut s2c, mode, now, &counters.datagrams_downstream);
            // Still due after delivering: the socket was not writable yet.
            let due_c2s = c2s.next_due(mode);
            let due_s2c = s2c.next_due(mode);
            let wake = next_wake(now, [due_c2s, due_s2c]);
            tokio::select! {
                _ = self.up.writable(), if due_c2s.is_some_and(|d| d <= now) => {}
                _ = self.front.writable(), if due_s2c.is_some_and(|d| d <= now) => {}
                changed = mode_rx.changed() => if changed.is_err() { return },
                datagram = rx.recv(), if mapped => match datagram {
                    // The mode in force now: a fault set while this
                    // datagram waited applies to it.
                    Some(d) => self.admit(&mut c2s, shared.switch.mode(), d),
                    None => {
                        mapped = false;
                        let lost = c2s.clear() + s2c.clear();
                        Counters::add(&counters.datagrams_dropped, lost as u64);
                    }
                },
                received = self.up.recv(&mut buf) => match received {
                    Ok(n) if mapped => {
                        let d = Bytes::copy_from_slice(&buf[..n]);
                        self.admit(&mut s2c, shared.switch.mode(), d);
                    }
                    Ok(_) => Counters::add(&counters.datagrams_dropped, 1),
                    // ECONNREFUSED and the like, from an ICMP error: the
                    // upstream's port is closed; the client learns nothing,
                    // as behind a real middlebox.
                    Err(_) => {}
                },
                () = sleep_until(wake), if wake.is_some() => {}
            }
        }
    }

    fn admit(&mut self, lane: &mut Lane, mode: Mode, datagram: Bytes) {
        if lane.admit(mode, &mut self.rng, Instant::now(), datagram) == Admit::Dropped {
            Counters::add(&self.shared.counters.datagrams_dropped, 1);
        }
    }

    /// Sends every due datagram of `lane` the socket takes now; one the
    /// kernel refuses (other than "not writable yet") is lost, as UDP would
    /// lose it.
    fn deliver(&self, lane: &mut Lane, mode: Mode, now: Instant, delivered: &AtomicU64) {
        if lane.next_due(mode).is_none() {
            return;
        }
        while let Some(datagram) = lane.due_front(now) {
            let sent = match lane.dir {
                Direction::Upstream => self.up.try_send(datagram),
                Direction::Downstream => self.front.try_send_to(datagram, self.client),
            };
            match sent {
                Ok(_) => Counters::add(delivered, 1),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => Counters::add(&self.shared.counters.datagrams_dropped, 1),
            }
            lane.pop();
        }
    }
}
