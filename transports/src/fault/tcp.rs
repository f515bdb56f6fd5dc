//! [`FaultProxy`]: the TCP fault proxy's handle and accept loop; each
//! connection runs in [`super::conn`].

use super::conn::{self, Registration, Shared};
use super::mode::{Fault, Kill};
use super::stats::{Counters, FaultStats};
use super::switch::Switch;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
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
            switch: Switch::new(upstream),
            conns: Mutex::new(HashMap::new()),
            counters: Counters::default(),
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
        self.shared.switch.upstream()
    }

    /// Forwards connections accepted from now on to `addr`; open connections
    /// keep their upstream.
    pub fn set_upstream(&self, addr: SocketAddr) {
        self.shared.switch.set_upstream(addr);
    }

    /// Puts `fault` in force for every open and future connection. A delay
    /// applies to bytes read from now on.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.switch.set_fault(fault);
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        self.shared.switch.mode().fault
    }

    /// Holds all traffic: nothing is read, written or dialed, and new
    /// connections wait, until [`FaultProxy::resume`]. Bytes wait in the
    /// kernels' buffers, so nothing is lost; writers block once those fill.
    /// Independent of the fault in force.
    pub fn pause(&self) {
        self.shared.switch.set_paused(true);
    }

    /// Ends a [`FaultProxy::pause`]: held bytes flow under the fault in force.
    pub fn resume(&self) {
        self.shared.switch.set_paused(false);
    }

    /// True between [`FaultProxy::pause`] and [`FaultProxy::resume`].
    pub fn is_paused(&self) -> bool {
        self.shared.switch.mode().paused
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
        self.shared.switch.set_seed(seed);
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
