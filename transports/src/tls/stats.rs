//! Handshake counters, shared by a connector's clones or an acceptor and
//! whoever holds a [`TlsCounters`].

use rustls::HandshakeKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A snapshot of handshake counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsStats {
    /// Handshakes that established a new session (including those that
    /// needed a HelloRetryRequest).
    pub full_handshakes: u64,
    /// Handshakes that resumed an earlier session (abbreviated handshake).
    pub resumed_handshakes: u64,
    /// Handshakes that failed or timed out.
    pub failed_handshakes: u64,
}

/// Live handshake counters; clones share the same numbers.
#[derive(Debug, Clone, Default)]
pub struct TlsCounters(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    full: AtomicU64,
    resumed: AtomicU64,
    failed: AtomicU64,
}

impl TlsCounters {
    /// The current counts.
    pub fn snapshot(&self) -> TlsStats {
        TlsStats {
            full_handshakes: self.0.full.load(Ordering::Relaxed),
            resumed_handshakes: self.0.resumed.load(Ordering::Relaxed),
            failed_handshakes: self.0.failed.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn record(&self, kind: Option<HandshakeKind>) {
        let counter = match kind {
            Some(HandshakeKind::Resumed) => &self.0.resumed,
            // `None` cannot happen after a completed handshake; count it
            // as full rather than lose it.
            _ => &self.0.full,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_failure(&self) {
        self.0.failed.fetch_add(1, Ordering::Relaxed);
    }
}
