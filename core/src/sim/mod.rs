//! Deterministic simulation: a fake clock and a fault-injecting network
//! between a supervised client and a registry-backed server, for tests that
//! must not sleep and must replay exactly.
//!
//! [`SimPair`] wires a [`Supervisor`](crate::supervisor::Supervisor) and a
//! heartbeat [`Monitor`](crate::liveness::Monitor) on the client side to a
//! [`Registry`](crate::registry::Registry) on the server side, over a
//! simulated link with fixed one-way latency. Faults ([`Fault`]) drop
//! traffic in one or both directions, refuse connections, or make the server
//! forget every connection (a restart). The clock jumps straight from one
//! deadline to the next, so an hour of simulated time takes milliseconds.
//!
//! ```
//! use std::time::Duration;
//! use tether_core::sim::{Fault, SimPair, SimConfig};
//! use tether_core::supervisor::Lifecycle;
//! use tether_core::DisconnectReason;
//!
//! let mut sim = SimPair::new(SimConfig::default());
//! sim.run_for(Duration::from_secs(5));
//! assert!(sim.is_connected());
//!
//! // Pull the cable: nothing gets through in either direction.
//! sim.set_fault(Fault::BlackHole);
//! let cut = sim.elapsed();
//! sim.run_until(|s| !s.is_connected(), Duration::from_secs(120));
//! let (at, ev) = sim.client_events().last().unwrap().clone();
//! assert!(matches!(ev, Lifecycle::Disconnected { reason: DisconnectReason::Timeout, .. })
//!     || matches!(ev, Lifecycle::Waiting { .. }));
//! // Detected within the heartbeat's bound of the last packet received.
//! assert!(at - cut <= sim.config().heartbeat.detection_bound());
//! ```

mod pair;

pub use pair::{Fault, SimConfig, SimPair};
