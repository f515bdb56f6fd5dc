//! A fault-injecting TCP proxy for tests: put it between a client and a
//! server and break the path on command.
//!
//! [`FaultProxy`] listens on a loopback port and forwards every accepted
//! connection to an upstream address. While it runs you can switch, for all
//! connections at once:
//!
//! * a lasting [`Fault`] with [`FaultProxy::set_fault`]: [`Fault::Pass`],
//!   [`Fault::BlackHole`] (silence both ways, sockets stay open),
//!   [`Fault::Cut`] (silence one way) or [`Fault::Delay`] (latency with
//!   jitter, order kept);
//! * [`FaultProxy::pause`] / [`FaultProxy::resume`]: hold every byte where
//!   it is, then deliver it all (nothing is lost, unlike a black hole);
//! * one-shot ends of the connections open at that moment:
//!   [`FaultProxy::reset_all`] (RST to both sides, as after a crash or a
//!   restarted peer) and [`FaultProxy::close_all`] (FIN to both sides);
//! * [`FaultProxy::set_upstream`]: new connections go to another address,
//!   e.g. a server restarted on a new port.
//!
//! What each side sees is what a real network would show it: a reset
//! arrives as `ECONNRESET`, a close as end-of-stream, a black hole as
//! nothing at all. Being a userspace proxy it cannot fake the client's own
//! TCP handshake or acknowledgements: a client always *connects* to the
//! proxy, and an upstream that refuses shows up as a reset right after.
//!
//! ```
//! use std::time::Duration;
//! use tether_transports::fault::{Fault, FaultProxy};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio::net::{TcpListener, TcpStream};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> std::io::Result<()> {
//!     // An echo server stands in for the real upstream.
//!     let server = TcpListener::bind("127.0.0.1:0").await?;
//!     let upstream = server.local_addr()?;
//!     tokio::spawn(async move {
//!         while let Ok((mut conn, _)) = server.accept().await {
//!             tokio::spawn(async move {
//!                 let (mut rx, mut tx) = conn.split();
//!                 let _ = tokio::io::copy(&mut rx, &mut tx).await;
//!             });
//!         }
//!     });
//!
//!     let proxy = FaultProxy::start(upstream).await?;
//!     let mut client = TcpStream::connect(proxy.local_addr()).await?;
//!     let mut buf = [0u8; 4];
//!     client.write_all(b"ping").await?;
//!     client.read_exact(&mut buf).await?;
//!     assert_eq!(&buf, b"ping");
//!
//!     // Black hole: the bytes vanish and the connection stays open.
//!     proxy.set_fault(Fault::BlackHole);
//!     client.write_all(b"lost").await?;
//!     let read = tokio::time::timeout(Duration::from_millis(200), client.read(&mut buf)).await;
//!     assert!(read.is_err(), "no reply and no close: silence");
//!
//!     // Reset: every open connection gets an RST.
//!     proxy.set_fault(Fault::Pass);
//!     assert_eq!(proxy.reset_all(), 1);
//!     let err = client.read(&mut buf).await.unwrap_err();
//!     assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
//!     Ok(())
//! }
//! ```

mod conn;
mod mode;
mod stats;
#[cfg(test)]
mod tests;

pub use mode::{Direction, Fault};
pub use stats::FaultStats;

use conn::{Registration, Shared};
use mode::{Kill, Mode};
use stats::Counters;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// A TCP proxy that injects faults on command.
///
/// Create it inside a tokio runtime (with I/O and time enabled). Dropping
/// it stops accepting and closes every connection.
#[derive(Debug)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accept_task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1` with a port picked by the kernel,
    /// forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        Self::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), upstream).await
    }

    /// Starts a proxy listening on `listen`, forwarding to `upstream`.
    pub async fn bind(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            mode: watch::Sender::new(Mode::default()),
            upstream: Mutex::new(upstream),
            conns: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            seed: Mutex::new(None),
        });
        let accept_task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            shared,
            local_addr,
            accept_task,
        })
    }

    /// The address clients should dial.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where new connections are forwarded.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream()
    }

    /// Forwards connections accepted from now on to `addr`; open connections
    /// keep their upstream.
    pub fn set_upstream(&self, addr: SocketAddr) {
        *self
            .shared
            .upstream
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = addr;
    }

    /// Puts `fault` in force for every open and future connection. A delay
    /// applies to bytes read from now on.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.mode.send_modify(|m| m.fault = fault);
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        self.shared.mode.borrow().fault
    }

    /// Holds all traffic: nothing is read, written or dialed, and new
    /// connections wait, until [`FaultProxy::resume`]. Bytes wait in the
    /// kernels' buffers, so nothing is lost; writers block once those fill.
    /// Independent of the fault in force.
    pub fn pause(&self) {
        self.shared.mode.send_modify(|m| m.paused = true);
    }

    /// Ends a [`FaultProxy::pause`]: held bytes flow under the fault in force.
    pub fn resume(&self) {
        self.shared.mode.send_modify(|m| m.paused = false);
    }

    /// True between [`FaultProxy::pause`] and [`FaultProxy::resume`].
    pub fn is_paused(&self) -> bool {
        self.shared.mode.borrow().paused
    }

    /// Resets every open connection: both the client and the upstream get an
    /// RST (SO_LINGER 0, then close), as when a peer crashed or restarted.
    /// Connections accepted afterwards are served normally. Returns how many
    /// connections were reset.
    pub fn reset_all(&self) -> usize {
        let n = self.kill_all(Kill::Reset);
        Counters::add(&self.shared.counters.reset, n as u64);
        n
    }

    /// Closes every open connection in an orderly way: both sides get a FIN
    /// at once; the proxy then reads (and discards) until both have closed,
    /// for up to 2 s. Connections accepted afterwards are served normally.
    /// Returns how many connections were closed.
    pub fn close_all(&self) -> usize {
        let n = self.kill_all(Kill::Close);
        Counters::add(&self.shared.counters.closed, n as u64);
        n
    }

    fn kill_all(&self, kill: Kill) -> usize {
        let doomed: Vec<_> = self.shared.conns().drain().map(|(_, tx)| tx).collect();
        doomed
            .into_iter()
            .map(|tx| tx.send(kill).is_ok())
            .filter(|sent| *sent)
            .count()
    }

    /// Makes the delay jitter of connections accepted from now on
    /// reproducible.
    pub fn set_seed(&self, seed: u64) {
        *self.shared.seed.lock().unwrap_or_else(|p| p.into_inner()) = Some(seed);
    }

    /// Connections open now.
    pub fn connection_count(&self) -> usize {
        self.stats().active as usize
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> FaultStats {
        self.shared.counters.snapshot()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        // Dropping the kill senders tells every connection to close.
        self.shared.conns().clear();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                next_id += 1;
                let (kill_tx, kill_rx) = oneshot::channel();
                shared.conns().insert(next_id, kill_tx);
                Counters::add(&shared.counters.accepted, 1);
                let registration = Registration::new(shared.clone(), next_id);
                tokio::spawn(conn::run(registration, stream, kill_rx));
            }
            Err(e) => {
                // Out of descriptors and the like: keep serving.
                tracing::warn!(error = %e, "fault proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
