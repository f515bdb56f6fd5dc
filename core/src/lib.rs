//! # tether-core
//!
//! The sans-IO heart of tether: the connection machine, liveness
//! detection, reconnect backoff, the supervisor state machine, the
//! server-side connection registry and the frame codec. Nothing here opens
//! a socket, starts a thread, reads a clock or depends on an async
//! runtime: every input carries `now`, and every output is polled.
//!
//! The calling contract, shared by every state machine in this crate:
//!
//! 1. feed inputs with `handle_*(…, now)` (received traffic, timeouts,
//!    connection results);
//! 2. drain outputs with `poll_*`: first actions to perform (send a ping,
//!    dial), then `poll_timeout` for the next deadline, then `poll_event`
//!    for events to report;
//! 3. call `handle_timeout(now)` when the deadline passes. Extra calls are
//!    harmless.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tether_core::liveness::{HeartbeatConfig, Liveness, LivenessAction, Monitor};
//!
//! let start = Instant::now();
//! let cfg = HeartbeatConfig::new(Duration::from_secs(10), Duration::from_secs(5), 2);
//! let mut hb = Monitor::heartbeat(cfg, start).unwrap();
//!
//! // Nothing received for 10 s: the monitor asks for a ping.
//! let t = hb.poll_timeout().unwrap();
//! hb.handle_timeout(t);
//! assert!(matches!(hb.poll_action(), Some(LivenessAction::SendPing { .. })));
//!
//! // No answer at all: after two missed replies the peer is declared dead,
//! // never later than the computed detection bound.
//! while let Some(t) = hb.poll_timeout() {
//!     hb.handle_timeout(t);
//!     if let Some(LivenessAction::Dead { .. }) = hb.poll_action() {
//!         assert!(t - start <= cfg.detection_bound());
//!         break;
//!     }
//! }
//! ```
#![warn(missing_docs)]

pub mod backoff;
pub mod cause;
pub mod codec;
pub mod connect_error;
pub mod connection;
pub mod error;
pub mod limits;
pub mod liveness;
pub mod reason;
pub mod registry;
pub mod release;
#[cfg(feature = "sim")]
pub mod sim;
pub mod slab;
pub mod slots;
pub mod supervisor;

pub use cause::{Cause, Detail};
pub use connect_error::ConnectError;
pub use error::{ConfigError, HandleError};
pub use reason::DisconnectReason;
