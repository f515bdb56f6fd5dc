//! Liveness: deciding, from received traffic and the passage of time, whether
//! the peer is still there.
//!
//! Two policies share one rule ([`Policy`]), used both by the per-connection
//! monitors here and by the server-side [`crate::registry::Registry`]:
//!
//! * [`HeartbeatConfig`]: when nothing has been received for `interval`, send
//!   a ping; a ping unanswered (no traffic at all) within `timeout` is a miss;
//!   `max_missed` misses in a row mean the peer is dead. Pings are scheduled
//!   from the last *received* traffic only, so a side that is busy writing
//!   into a half-open connection still pings and still notices.
//! * [`IdleTimeoutConfig`]: no pings of our own; a peer silent for
//!   `factor x keepalive` is dead (MQTT servers use 1.5).
//!
//! Any received traffic counts as proof of life, not just pongs.

mod monitor;
mod policy;
mod ticks;

pub use monitor::Monitor;
pub use policy::{HeartbeatConfig, IdleTimeoutConfig, Policy, Verdict, Watch};
pub use ticks::Ticks;

use crate::DisconnectReason;
use std::time::{Duration, Instant};

/// What a liveness monitor asks its driver to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LivenessAction {
    /// Send a ping carrying `payload`; the peer echoes it in its pong so the
    /// round-trip time can be measured.
    SendPing {
        /// Opaque value to put in the ping frame.
        payload: u64,
    },
    /// The peer is considered dead. Close the connection with `reason`.
    Dead {
        /// Always [`DisconnectReason::Timeout`] for the built-in policies.
        reason: DisconnectReason,
        /// How long nothing had been received when the verdict fell.
        silent_for: Duration,
    },
}

/// A per-connection liveness detector with injected time.
///
/// Call order: `handle_received` / `handle_pong` for traffic,
/// `handle_timeout` when [`Liveness::poll_timeout`] passes, then drain
/// [`Liveness::poll_action`]. After `Dead` the monitor stays dead until
/// [`Liveness::reset`].
pub trait Liveness: Send {
    /// Any bytes arrived from the peer at `now`.
    fn handle_received(&mut self, now: Instant);
    /// A pong echoing `payload` arrived at `now`. Counts as received traffic
    /// and, when the payload matches a ping we sent, yields a round-trip time.
    fn handle_pong(&mut self, now: Instant, payload: u64) -> Option<Duration>;
    /// Time advanced to `now`. Spurious calls are harmless.
    fn handle_timeout(&mut self, now: Instant);
    /// The next action to perform, if any.
    fn poll_action(&mut self) -> Option<LivenessAction>;
    /// When `handle_timeout` must next be called; `None` once dead.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The worst-case time from the peer's last sign of life to a `Dead`
    /// verdict.
    fn detection_bound(&self) -> Duration;
    /// Starts over for a fresh connection established at `now`.
    fn reset(&mut self, now: Instant);
}
