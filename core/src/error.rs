//! Errors shared by the core's configuration and handle APIs.

use thiserror::Error;

/// A configuration value was rejected. Carries the field name and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid configuration: {field}: {problem}")]
pub struct ConfigError {
    /// The setting that was rejected, e.g. `"backoff.multiplier"`.
    pub field: &'static str,
    /// What is wrong with it, in words.
    pub problem: String,
}

impl ConfigError {
    /// Builds an error for `field`.
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

/// A handle (connection id, object id) did not name a live object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HandleError {
    /// The handle was valid once but its object is gone (closed, removed,
    /// expired, or freed): a double close or a use after close.
    #[error("stale handle: the object was already closed or removed")]
    Stale,
    /// The handle was never issued (zero, or out of range).
    #[error("invalid handle")]
    Invalid,
}
