//! The faults a [`FaultProxy`](super::FaultProxy) can hold in force, and the
//! one-shot ends it can inflict.

use std::time::Duration;

/// A direction of traffic through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Bytes from the client (the side that dialed the proxy) to the
    /// upstream server.
    Upstream,
    /// Bytes from the upstream server back to the client.
    Downstream,
}

/// A fault that stays in force, for current and new connections alike,
/// until the next [`FaultProxy::set_fault`](super::FaultProxy::set_fault).
///
/// Abrupt ends are not modes but events, applied once to the connections
/// open at that moment: see [`FaultProxy::reset_all`](super::FaultProxy::reset_all)
/// and [`FaultProxy::close_all`](super::FaultProxy::close_all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fault {
    /// Forward everything as it comes (the default).
    #[default]
    Pass,
    /// Drop every byte in both directions (including bytes still held by a
    /// delay) and keep every socket open: each side sees silence, never a
    /// close. A FIN or RST from either side is
    /// swallowed too, and passed on only once the black hole lifts.
    ///
    /// Connections accepted while the black hole is in force are parked:
    /// the upstream is not dialed and nothing is read until it lifts (as if
    /// the handshake could not get through), so they lose nothing.
    ///
    /// Bytes dropped from a live connection are gone: a framed protocol that
    /// goes on after the hole lifts may find its stream misaligned. The
    /// usual test asserts that the peer declared the connection dead.
    BlackHole,
    /// A black hole in one direction only (a half-broken path): bytes
    /// flowing that way are dropped, together with a FIN or RST going that
    /// way; the other direction passes.
    Cut(Direction),
    /// Deliver every chunk `base` plus a uniformly random `[0, jitter]`
    /// after it was read, in order (a chunk never overtakes an earlier one).
    Delay {
        /// Delay applied to every chunk.
        base: Duration,
        /// Largest extra random delay per chunk.
        jitter: Duration,
    },
}

impl Fault {
    /// True when bytes going `dir` are dropped.
    pub(crate) fn drops(self, dir: Direction) -> bool {
        match self {
            Self::BlackHole => true,
            Self::Cut(d) => d == dir,
            Self::Pass | Self::Delay { .. } => false,
        }
    }
}

/// The proxy-wide state that connections watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Mode {
    pub fault: Fault,
    pub paused: bool,
}

impl Mode {
    /// New connections wait (no upstream dial, nothing read) while this holds.
    pub fn parks_new(self) -> bool {
        self.paused || self.fault == Fault::BlackHole
    }

    /// Traffic going `dir`, and its end, is held back or dropped.
    pub fn holds(self, dir: Direction) -> bool {
        self.paused || self.fault.drops(dir)
    }
}

/// A one-shot end inflicted on every open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kill {
    /// RST on both sides (SO_LINGER 0, then close).
    Reset,
    /// FIN on both sides, then drain until both peers closed.
    Close,
}
