//! Reconnect backoff: how long to wait before the next connection attempt.
//!
//! One trait, [`Backoff`], with one configurable implementation,
//! [`ExponentialBackoff`], covering the shapes the field uses (fixed,
//! exponential, gRPC's), every jitter kind, give-up limits, a minimum
//! connect timeout and a "healthy connection" window that must pass before
//! the attempt counter resets.

mod config;
mod exponential;
mod jitter;

pub use config::BackoffConfig;
pub use exponential::ExponentialBackoff;
pub use jitter::Jitter;

use std::time::{Duration, Instant};

/// A reconnect policy, driven by the supervisor with injected time.
///
/// Calling order: after every failed connection attempt or lost connection
/// the supervisor calls [`Backoff::next_delay`]; `None` means give up. When a
/// connection is established it calls [`Backoff::on_connected`], and when
/// that connection ends, [`Backoff::on_disconnected`]; the attempt counter
/// resets only if the connection stayed up for the healthy window.
pub trait Backoff: Send {
    /// The delay before the next attempt, or `None` to give up (attempt or
    /// elapsed-time limit reached). Advances the attempt counter.
    fn next_delay(&mut self, now: Instant) -> Option<Duration>;
    /// How long the next connection attempt may take before it counts as
    /// failed with a connect timeout.
    fn connect_timeout(&self) -> Duration;
    /// A connection was established at `now`.
    fn on_connected(&mut self, now: Instant);
    /// The connection established last ended at `now`.
    fn on_disconnected(&mut self, now: Instant);
    /// Failed attempts since the last reset.
    fn attempt(&self) -> u32;
    /// Forgets all failures, as after a long healthy connection.
    fn reset(&mut self);
}
