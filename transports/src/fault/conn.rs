//! One proxied connection: park while new connections must wait, dial the
//! upstream, then move bytes both ways under the proxy's current mode.
//!
//! A single task owns both sockets and uses readiness plus non-blocking
//! reads and writes, so a stalled direction never stalls the other one and
//! no implicit shutdown (as done by dropping a tokio write half) can slip a
//! FIN in front of a deliberate RST.

use super::lane::{next_wake, sleep_until, Admit, Lane};
use super::mode::{Direction, Kill, Mode};
use super::stats::Counters;
use super::switch::Switch;
use bytes::Bytes;
use socket2::SockRef;
use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// How long dialing the upstream may take before the client is reset.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// After an orderly close, how long to drain the peers before dropping.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Read buffer per connection.
const READ_BUF: usize = 16 * 1024;

/// State shared by the proxy handle, its accept loop and its connections.
#[derive(Debug)]
pub(crate) struct Shared {
    pub switch: Switch,
    pub conns: Mutex<HashMap<u64, oneshot::Sender<Kill>>>,
    pub counters: Counters,
}

impl Shared {
    pub fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Kill>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Counts a connection as active until dropped, then unregisters it;
/// created before its task is spawned so that no path skips the drop.
pub(crate) struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Registration {
    pub fn new(shared: Arc<Shared>, id: u64) -> Self {
        Counters::add(&shared.counters.active, 1);
        Self { shared, id }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.conns().remove(&self.id);
        self.shared
            .counters
            .active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Serves one accepted client connection until it ends.
pub(crate) async fn run(
    registration: Registration,
    down: TcpStream,
    mut kill: oneshot::Receiver<Kill>,
) {
    let shared = &registration.shared;
    let mut mode = shared.switch.mode.subscribe();
    let _ = down.set_nodelay(true);

    // Parked: as if the handshake had not got through yet.
    while mode.borrow_and_update().parks_new() {
        tokio::select! {
            biased;
            k = &mut kill => return end(k.ok(), &down, None).await,
            changed = mode.changed() => if changed.is_err() { return },
        }
    }

    let addr = shared.switch.upstream();
    let up = tokio::select! {
        biased;
        k = &mut kill => return end(k.ok(), &down, None).await,
        dialed = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)) => match dialed {
            Ok(Ok(up)) => up,
            Ok(Err(e)) => return upstream_failed(shared, &down, addr, &e.to_string()),
            Err(_) => return upstream_failed(shared, &down, addr, "timed out"),
        },
    };
    let _ = up.set_nodelay(true);

    let pump = Pump {
        counters: &shared.counters,
        rng: shared.switch.rng(registration.id),
        buf: vec![0; READ_BUF].into_boxed_slice(),
    };
    pump.run(&down, &up, &mut mode, &mut kill).await;
}

/// The upstream refused or did not answer: the client sees a reset, the
/// closest a proxy can come to a refused connection.
fn upstream_failed(shared: &Shared, down: &TcpStream, addr: SocketAddr, why: &str) {
    tracing::debug!(%addr, why, "fault proxy: upstream dial failed");
    Counters::add(&shared.counters.upstream_failures, 1);
    arm_reset(down);
}

/// Makes the coming close send RST instead of FIN.
fn arm_reset(sock: &TcpStream) {
    let _ = SockRef::from(sock).set_linger(Some(Duration::ZERO));
}

fn send_fin(sock: &TcpStream) {
    let _ = SockRef::from(sock).shutdown(Shutdown::Write);
}

/// Carries out a one-shot end; `None` means the proxy is gone (plain close).
async fn end(kill: Option<Kill>, down: &TcpStream, up: Option<&TcpStream>) {
    match kill {
        Some(Kill::Reset) => {
            arm_reset(down);
            up.map(arm_reset);
        }
        Some(Kill::Close) => {
            send_fin(down);
            up.map(send_fin);
            drain(down, up).await;
        }
        None => {}
    }
}

/// Reads and discards until both peers closed (or the grace runs out), so
/// that the final close does not turn into an RST over unread bytes.
async fn drain(down: &TcpStream, up: Option<&TcpStream>) {
    let deadline = Instant::now() + CLOSE_GRACE;
    let mut buf = [0u8; 4096];
    let mut down_open = true;
    let mut up_open = up.is_some();
    while down_open || up_open {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return,
            r = down.readable(), if down_open => {
                down_open = r.is_ok() && discard(down, &mut buf);
            }
            r = async { up.expect("up_open implies up").readable().await }, if up_open => {
                up_open = r.is_ok() && discard(up.expect("up_open implies up"), &mut buf);
            }
        }
    }
}

/// One non-blocking read thrown away; false once the peer is done.
fn discard(sock: &TcpStream, buf: &mut [u8]) -> bool {
    match sock.try_read(buf) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}

/// How one direction ended at its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Fin,
    Reset,
}

/// One direction: the shaped bytes read from its source, and how the
/// source ended.
struct Pipe {
    lane: Lane,
    end: Option<End>,
    end_sent: bool,
}

impl Pipe {
    fn new(dir: Direction) -> Self {
        Self {
            lane: Lane::new(dir),
            end: None,
            end_sent: false,
        }
    }

    fn can_read(&self, mode: Mode) -> bool {
        !mode.paused && self.end.is_none() && !self.lane.is_full()
    }
}

struct Pump<'a> {
    counters: &'a Counters,
    rng: fastrand::Rng,
    buf: Box<[u8]>,
}

impl Pump<'_> {
    async fn run(
        mut self,
        down: &TcpStream,
        up: &TcpStream,
        mode_rx: &mut watch::Receiver<Mode>,
        kill: &mut oneshot::Receiver<Kill>,
    ) {
        let mut c2s = Pipe::new(Direction::Upstream);
        let mut s2c = Pipe::new(Direction::Downstream);
        loop {
            let mode = *mode_rx.borrow_and_update();
            for pipe in [&mut c2s, &mut s2c] {
                let (_, bytes) = pipe.lane.purge(mode);
                Counters::add(&self.counters.bytes_dropped, bytes as u64);
            }
            for (pipe, dest) in [(&mut c2s, up), (&mut s2c, down)] {
                if pipe.end_sent || !pipe.lane.is_empty() || mode.holds(pipe.lane.dir) {
                    continue;
                }
                match pipe.end {
                    Some(End::Fin) => {
                        send_fin(dest);
                        pipe.end_sent = true;
                    }
                    Some(End::Reset) => return end(Some(Kill::Reset), down, Some(up)).await,
                    None => {}
                }
            }
            if c2s.end_sent && s2c.end_sent {
                return; // both sides closed in order: a plain close
            }

            let now = Instant::now();
            let due_c2s = c2s.lane.next_due(mode);
            let due_s2c = s2c.lane.next_due(mode);
            let wake = next_wake(now, [due_c2s, due_s2c]);
            tokio::select! {
                biased;
                k = &mut *kill => return end(k.ok(), down, Some(up)).await,
                changed = mode_rx.changed() => if changed.is_err() { return },
                r = down.readable(), if c2s.can_read(mode) => match r {
                    // The mode in force now: a fault set since the top of
                    // the loop applies to these bytes.
                    Ok(()) => self.read(&mut c2s, down, *mode_rx.borrow()),
                    Err(_) => c2s.end = Some(End::Reset),
                },
                r = up.readable(), if s2c.can_read(mode) => match r {
                    Ok(()) => self.read(&mut s2c, up, *mode_rx.borrow()),
                    Err(_) => s2c.end = Some(End::Reset),
                },
                r = up.writable(), if due_c2s.is_some_and(|d| d <= now) => {
                    if r.is_err() || !self.write(&mut c2s, up) {
                        return end(Some(Kill::Reset), down, Some(up)).await;
                    }
                }
                r = down.writable(), if due_s2c.is_some_and(|d| d <= now) => {
                    if r.is_err() || !self.write(&mut s2c, down) {
                        return end(Some(Kill::Reset), down, Some(up)).await;
                    }
                }
                () = sleep_until(wake), if wake.is_some() => {}
            }
        }
    }

    fn read(&mut self, pipe: &mut Pipe, src: &TcpStream, mode: Mode) {
        let n = match src.try_read(&mut self.buf) {
            Ok(0) => {
                pipe.end = Some(End::Fin);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => {
                pipe.end = Some(End::Reset);
                return;
            }
        };
        let chunk = Bytes::copy_from_slice(&self.buf[..n]);
        // A byte stream has no loss: the mode's loss knob is UDP's alone and
        // never set on a TCP proxy.
        if pipe.lane.admit(mode, &mut self.rng, Instant::now(), chunk) == Admit::Dropped {
            Counters::add(&self.counters.bytes_dropped, n as u64);
        }
    }

    /// Writes every due chunk the socket takes now; false if `dest` failed.
    fn write(&mut self, pipe: &mut Pipe, dest: &TcpStream) -> bool {
        let now = Instant::now();
        let counter = match pipe.lane.dir {
            Direction::Upstream => &self.counters.bytes_upstream,
            Direction::Downstream => &self.counters.bytes_downstream,
        };
        while let Some(chunk) = pipe.lane.due_front(now) {
            match dest.try_write(chunk) {
                Ok(n) => {
                    Counters::add(counter, n as u64);
                    pipe.lane.consume(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        true
    }
}
