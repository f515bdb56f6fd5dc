//! `tether_policy`: the liveness rule shared by monitors, registries and
//! servers.

use crate::backoff::config_error;
use crate::panic::{fail, guard};
use crate::ptr::{arg, out};
use crate::result::tether_result;
use crate::time::{duration_ms, ms};
use tether_core::liveness::{HeartbeatConfig, IdleTimeoutConfig, Policy};

/// The kinds of liveness policy (values of `tether_policy.kind`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tether_policy_kind {
    /// Ping after `interval_ms` of silence; any traffic within `timeout_ms`
    /// answers it; `max_missed` unanswered pings in a row mean dead.
    Heartbeat = 1,
    /// Never ping; dead after `idle_factor x keepalive_ms` of silence
    /// (MQTT brokers use 1.5).
    IdleTimeout = 2,
}

/// A liveness policy. Only received traffic proves life: a side busy writing
/// into a half-open connection still pings and still notices.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct tether_policy {
    /// One of `tether_policy_kind`.
    pub kind: u32,
    /// Heartbeat: silence before a ping, in ms (1 ..= `TETHER_MAX_DURATION_MS`).
    pub interval_ms: u64,
    /// Heartbeat: how long a ping waits for any traffic, in ms (1 ..=
    /// `TETHER_MAX_DURATION_MS`).
    pub timeout_ms: u64,
    /// Heartbeat: unanswered pings in a row that mean dead (1..=255).
    pub max_missed: u32,
    /// Idle timeout: the keepalive period the peer promised, in ms (1 ..=
    /// `TETHER_MAX_DURATION_MS`).
    pub keepalive_ms: u64,
    /// Idle timeout: grace factor (1.0 ..= `TETHER_MAX_FACTOR`; the product
    /// must stay under 49 days).
    pub idle_factor: f64,
}

impl tether_policy {
    /// The validated core policy.
    pub(crate) fn to_core(self) -> Result<Policy, tether_result> {
        let policy = match self.kind {
            1 => Policy::Heartbeat(HeartbeatConfig::new(
                ms(self.interval_ms),
                ms(self.timeout_ms),
                self.max_missed,
            )),
            2 => Policy::IdleTimeout(IdleTimeoutConfig {
                keepalive: ms(self.keepalive_ms),
                factor: self.idle_factor,
            }),
            other => {
                return Err(fail(
                    tether_result::InvalidConfig,
                    format!("invalid configuration: policy.kind: unknown kind {other}"),
                ))
            }
        };
        policy.validate().map_err(config_error)?;
        Ok(policy)
    }

    /// The C form of a heartbeat configuration.
    pub(crate) fn heartbeat(h: &HeartbeatConfig) -> Self {
        Self {
            kind: tether_policy_kind::Heartbeat as u32,
            interval_ms: duration_ms(h.interval),
            timeout_ms: duration_ms(h.timeout),
            max_missed: h.max_missed,
            keepalive_ms: 0,
            idle_factor: 0.0,
        }
    }

    /// The C form of any core policy.
    pub(crate) fn from_core(p: &Policy) -> Self {
        match p {
            Policy::Heartbeat(h) => Self::heartbeat(h),
            Policy::IdleTimeout(i) => Self {
                kind: tether_policy_kind::IdleTimeout as u32,
                interval_ms: 0,
                timeout_ms: 0,
                max_missed: 0,
                keepalive_ms: duration_ms(i.keepalive),
                idle_factor: i.factor,
            },
        }
    }
}

/// Fills `*out_policy` with the default heartbeat: ping after 15 s of
/// silence, 10 s reply timeout, dead after 2 misses (within 35 s).
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn tether_policy_default(out_policy: *mut tether_policy) -> tether_result {
    guard(|| {
        out(out_policy, "out_policy")?.write(tether_policy::heartbeat(&HeartbeatConfig::default()));
        Ok(())
    })
}

/// Writes to `*out_bound_ms` the worst-case time from the peer's last sign of
/// life to the dead verdict under `*policy` (heartbeat:
/// `interval + max_missed x timeout`; idle: `factor x keepalive`).
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_INVALID_CONFIG`.
#[no_mangle]
pub extern "C" fn tether_policy_detection_bound_ms(
    policy: *const tether_policy,
    out_bound_ms: *mut u64,
) -> tether_result {
    guard(|| {
        let policy = arg(policy, "policy")?.to_core()?;
        out(out_bound_ms, "out_bound_ms")?.write(duration_ms(policy.detection_bound()));
        Ok(())
    })
}
