//! Settings of one [`super::Connection`].

use crate::codec::DEFAULT_MAX_FRAME;
use crate::limits;
use crate::liveness::{HeartbeatConfig, Policy};
use crate::ConfigError;
use std::time::Duration;

/// Which end of the connection this machine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Dialed out: sends the hello, is connected on the welcome.
    Client,
    /// Accepted: waits for the hello, answers it with the welcome.
    Server,
}

/// How a connection starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// The hello / welcome exchange (default): a client is connected only
    /// once the server answered, and both learn what the other supports.
    Hello,
    /// No exchange: connected as soon as the transport is, for peers that
    /// do not speak tether's opening (a plain server watched by `probe`,
    /// a C program of an older version).
    Raw,
}

/// Settings of one connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionConfig {
    /// What to do about silence (the client's heartbeat; a server's
    /// heartbeat or idle timeout).
    pub policy: Policy,
    /// How the connection starts.
    pub opening: Opening,
    /// Longest wait for the peer's hello (server) or welcome (client); the
    /// connection fails with `ConnectTimeout` after it. Default 10 s.
    pub opening_timeout: Duration,
    /// Largest data payload sent or accepted, in bytes.
    pub max_frame: usize,
    /// Application messages waiting to be written, at most (1 ..=
    /// [`limits::MAX_QUEUE`]); `send` fails with `Full` beyond it.
    pub send_queue: usize,
    /// Received messages waiting for the application, at most (1 ..=
    /// [`limits::MAX_QUEUE`]). When full the machine stops taking bytes
    /// ([`super::Connection::wants_read`] is false): backpressure to the
    /// sender instead of growth.
    pub recv_queue: usize,
    /// A write that makes no progress for this long means the peer stopped
    /// reading: the connection fails with `Timeout`. `None`: the liveness
    /// policy's detection bound.
    pub write_stall: Option<Duration>,
    /// Capability bits announced in the hello.
    pub capabilities: u64,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            policy: Policy::Heartbeat(HeartbeatConfig::default()),
            opening: Opening::Hello,
            opening_timeout: Duration::from_secs(10),
            max_frame: DEFAULT_MAX_FRAME,
            send_queue: 1024,
            recv_queue: 1024,
            write_stall: None,
            capabilities: 0,
        }
    }
}

impl ConnectionConfig {
    /// Checks every value; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.policy.validate()?;
        limits::positive_duration("connection.opening_timeout", self.opening_timeout)?;
        if self.max_frame == 0 || self.max_frame > u32::MAX as usize {
            return Err(ConfigError::new(
                "connection.max_frame",
                format!("must be 1 ..= {} bytes", u32::MAX),
            ));
        }
        limits::queue_len("connection.send_queue", self.send_queue)?;
        limits::queue_len("connection.recv_queue", self.recv_queue)?;
        if let Some(stall) = self.write_stall {
            limits::positive_duration("connection.write_stall", stall)?;
        }
        Ok(())
    }

    /// The write-stall bound in force.
    pub fn stall_bound(&self) -> Duration {
        self.write_stall
            .unwrap_or_else(|| self.policy.detection_bound())
    }
}
