//! Counters of what the UDP transport dropped or signalled, shared by all
//! links of one connector or acceptor.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one [`super::UdpConnector`] or [`super::UdpAcceptor`] and
/// all its links. Every dropped packet is counted in exactly one of them.
#[derive(Debug, Default)]
pub struct UdpStats {
    forged: AtomicU64,
    replayed: AtomicU64,
    malformed: AtomicU64,
    resets_ignored: AtomicU64,
    resets_accepted: AtomicU64,
    resets_sent: AtomicU64,
    resets_limited: AtomicU64,
    oversized: AtomicU64,
    queue_full: AtomicU64,
    icmp_errors: AtomicU64,
    sessions: AtomicU64,
}

macro_rules! counters {
    ($($name:ident, $bump:ident: $doc:literal;)*) => {
        impl UdpStats {
            $(
                #[doc = $doc]
                pub fn $name(&self) -> u64 {
                    self.$name.load(Ordering::Relaxed)
                }
                pub(super) fn $bump(&self) {
                    self.$name.fetch_add(1, Ordering::Relaxed);
                }
            )*
        }
    };
}

counters! {
    forged, add_forged: "Packets dropped because their MAC did not verify (forged, corrupted, or sent with another key).";
    replayed, add_replayed: "Authentic packets dropped as duplicates or as older than the replay window.";
    malformed, add_malformed: "Datagrams that are not tether UDP packets, or belong to another session.";
    resets_ignored, add_resets_ignored: "\"Unknown session\" signals ignored because their token did not verify.";
    resets_accepted, add_resets_accepted: "\"Unknown session\" signals that verified and ended a link with `Reset`.";
    resets_sent, add_resets_sent: "\"Unknown session\" signals sent by a server.";
    resets_limited, add_resets_limited: "\"Unknown session\" signals a server withheld because of the rate limit.";
    oversized, add_oversized: "Messages refused because they exceed `max_payload`.";
    queue_full, add_queue_full: "Datagrams a server dropped because a session's queue was full.";
    icmp_errors, add_icmp_error: "ICMP errors (e.g. port unreachable) seen on established links; they are unauthenticated, so only counted.";
}

impl UdpStats {
    /// Sessions a server currently holds (accepted and not yet closed).
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    pub(super) fn session_opened(&self) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn session_closed(&self) {
        self.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}
