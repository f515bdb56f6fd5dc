//! The supervisor: the state machine that keeps one logical connection
//! alive through failures, with injected time.
//!
//! ```
//! use std::time::Instant;
//! use tether_core::backoff::{BackoffConfig, ExponentialBackoff};
//! use tether_core::supervisor::{Action, Lifecycle, Supervisor};
//! use tether_core::DisconnectReason;
//!
//! let now = Instant::now();
//! let backoff = ExponentialBackoff::new(BackoffConfig::default().with_seed(1)).unwrap();
//! let mut sup = Supervisor::new(backoff);
//! sup.start(now);
//! let Some(Action::Dial { generation, .. }) = sup.poll_action() else { unreachable!() };
//! sup.handle_connected(generation, now);
//! sup.handle_disconnected(generation, DisconnectReason::Reset, now);
//! let events: Vec<_> = std::iter::from_fn(|| sup.poll_event()).collect();
//! assert_eq!(events[0], Lifecycle::Connecting { generation: 1, attempt: 1 });
//! assert_eq!(events[1], Lifecycle::Connected { generation: 1, attempt: 1 });
//! assert!(matches!(events[2], Lifecycle::Disconnected { generation: 1, reason: DisconnectReason::Reset, .. }));
//! assert!(matches!(events[3], Lifecycle::Waiting { attempt: 2, .. }));
//! ```

mod event;
mod machine;

pub use event::{Action, Lifecycle};
pub use machine::{State, Supervisor};
