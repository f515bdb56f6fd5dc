//! The faults a proxy can hold in force, and the one-shot ends it can
//! inflict. One set of modes serves the TCP and the UDP proxy alike.

use std::time::Duration;

/// A direction of traffic through a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (the side that sends to the proxy) to the upstream
    /// server.
    Upstream,
    /// From the upstream server back to the client.
    Downstream,
}

/// A fault that stays in force, for current and new connections (TCP) or
/// client mappings (UDP) alike, until the next `set_fault`.
///
/// Abrupt ends are not modes but events, applied once to what is open at
/// that moment: see [`FaultProxy::reset_all`](super::FaultProxy::reset_all),
/// [`FaultProxy::close_all`](super::FaultProxy::close_all) and
/// [`UdpFaultProxy::forget_clients`](super::UdpFaultProxy::forget_clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fault {
    /// Forward everything as it comes (the default).
    #[default]
    Pass,
    /// Drop everything in both directions (including what a delay still
    /// holds) and keep every socket open: each side sees silence, never a
    /// close.
    ///
    /// TCP: a FIN or RST from either side is swallowed too, and passed on
    /// only once the black hole lifts. Connections accepted while the black
    /// hole is in force are parked: the upstream is not dialed and nothing
    /// is read until it lifts (as if the handshake could not get through),
    /// so they lose nothing. Bytes dropped from a live connection are gone:
    /// a framed protocol that goes on after the hole lifts may find its
    /// stream misaligned; the usual test asserts that the peer declared the
    /// connection dead.
    ///
    /// UDP: every datagram is dropped, from known and new clients alike.
    BlackHole,
    /// A black hole in one direction only (a half-broken path): what flows
    /// that way is dropped (for TCP together with a FIN or RST going that
    /// way); the other direction passes.
    Cut(Direction),
    /// Deliver every chunk (TCP) or datagram (UDP) `base` plus a uniformly
    /// random `[0, jitter]` after it was read, in order: nothing overtakes
    /// what was read before it, so jitter never reorders.
    Delay {
        /// Delay applied to everything.
        base: Duration,
        /// Largest extra random delay per chunk or datagram.
        jitter: Duration,
    },
}

impl Fault {
    /// True when what goes `dir` is dropped.
    pub(crate) fn drops(self, dir: Direction) -> bool {
        match self {
            Self::BlackHole => true,
            Self::Cut(d) => d == dir,
            Self::Pass | Self::Delay { .. } => false,
        }
    }

    /// The latency this fault adds to one chunk or datagram.
    pub(crate) fn latency(self, rng: &mut fastrand::Rng) -> Duration {
        match self {
            Self::Delay { base, jitter } => base.saturating_add(jitter.mul_f64(rng.f64())),
            _ => Duration::ZERO,
        }
    }
}

/// Loss is kept in parts per million so that [`Mode`] stays `Eq`.
pub(crate) const LOSS_SCALE: u32 = 1_000_000;

/// The proxy-wide state that every connection or mapping watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Mode {
    pub fault: Fault,
    pub paused: bool,
    /// Chance, in parts per million, that a datagram is lost (UDP only).
    pub loss_ppm: u32,
}

impl Mode {
    /// New TCP connections wait (no upstream dial, nothing read) while this
    /// holds.
    pub fn parks_new(self) -> bool {
        self.paused || self.fault == Fault::BlackHole
    }

    /// Traffic going `dir`, and its end, is held back or dropped.
    pub fn holds(self, dir: Direction) -> bool {
        self.paused || self.fault.drops(dir)
    }

    /// Draws whether one datagram is lost; draws nothing when loss is off,
    /// so that a seeded delay replays the same with and without this knob.
    pub fn loses(self, rng: &mut fastrand::Rng) -> bool {
        self.loss_ppm > 0 && rng.u32(0..LOSS_SCALE) < self.loss_ppm
    }
}

/// A one-shot end inflicted on every open TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kill {
    /// RST on both sides (SO_LINGER 0, then close).
    Reset,
    /// FIN on both sides, then drain until both peers closed.
    Close,
}
