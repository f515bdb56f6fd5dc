//! Counters of the fault proxies.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a [`FaultProxy`](super::FaultProxy)'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FaultStats {
    /// Connections accepted from clients since the proxy started.
    pub accepted: u64,
    /// Connections open now (parked, being dialed, or proxied).
    pub active: u64,
    /// Connections whose upstream could not be dialed (the client was reset).
    pub upstream_failures: u64,
    /// Connections ended by [`reset_all`](super::FaultProxy::reset_all).
    pub reset: u64,
    /// Connections ended by [`close_all`](super::FaultProxy::close_all).
    pub closed: u64,
    /// Bytes delivered from clients to the upstream.
    pub bytes_upstream: u64,
    /// Bytes delivered from the upstream to clients.
    pub bytes_downstream: u64,
    /// Bytes dropped by a black hole or a cut.
    pub bytes_dropped: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub active: AtomicU64,
    pub upstream_failures: AtomicU64,
    pub reset: AtomicU64,
    pub closed: AtomicU64,
    pub bytes_upstream: AtomicU64,
    pub bytes_downstream: AtomicU64,
    pub bytes_dropped: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> FaultStats {
        FaultStats {
            accepted: self.accepted.load(Relaxed),
            active: self.active.load(Relaxed),
            upstream_failures: self.upstream_failures.load(Relaxed),
            reset: self.reset.load(Relaxed),
            closed: self.closed.load(Relaxed),
            bytes_upstream: self.bytes_upstream.load(Relaxed),
            bytes_downstream: self.bytes_downstream.load(Relaxed),
            bytes_dropped: self.bytes_dropped.load(Relaxed),
        }
    }
}

/// A snapshot of a [`UdpFaultProxy`](super::UdpFaultProxy)'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct UdpFaultStats {
    /// Client mappings created since the proxy started (one per client
    /// address, again after [`forget_clients`](super::UdpFaultProxy::forget_clients)).
    pub clients: u64,
    /// Client mappings in force now.
    pub active: u64,
    /// Mappings ended by [`forget_clients`](super::UdpFaultProxy::forget_clients).
    pub forgotten: u64,
    /// Datagrams delivered from clients to the upstream.
    pub datagrams_upstream: u64,
    /// Datagrams delivered from the upstream to clients.
    pub datagrams_downstream: u64,
    /// Datagrams dropped: black hole, cut, loss, a full pause buffer, a
    /// send the kernel refused, or a reply to a forgotten mapping.
    pub datagrams_dropped: u64,
    /// Clients whose upstream socket could not be opened.
    pub upstream_failures: u64,
}

#[derive(Debug, Default)]
pub(crate) struct UdpCounters {
    pub clients: AtomicU64,
    pub forgotten: AtomicU64,
    pub datagrams_upstream: AtomicU64,
    pub datagrams_downstream: AtomicU64,
    pub datagrams_dropped: AtomicU64,
    pub upstream_failures: AtomicU64,
}

impl UdpCounters {
    pub fn snapshot(&self, active: usize) -> UdpFaultStats {
        UdpFaultStats {
            clients: self.clients.load(Relaxed),
            active: active as u64,
            forgotten: self.forgotten.load(Relaxed),
            datagrams_upstream: self.datagrams_upstream.load(Relaxed),
            datagrams_downstream: self.datagrams_downstream.load(Relaxed),
            datagrams_dropped: self.datagrams_dropped.load(Relaxed),
            upstream_failures: self.upstream_failures.load(Relaxed),
        }
    }
}
