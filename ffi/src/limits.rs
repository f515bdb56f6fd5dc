//! The upper bounds of the C API's settings, as constants in the header.
//! A value above its bound is refused with `TETHER_RESULT_INVALID_CONFIG`,
//! and `tether_last_error_message` names the field.

/// The longest duration any `*_ms` setting accepts: 7 days
/// (heartbeat interval and timeout, idle keepalive, every backoff delay and
/// limit, connect and handshake timeouts).
pub const TETHER_MAX_DURATION_MS: u64 = 604_800_000;

/// The largest queue length (`tether_client_config.max_pending`,
/// `tether_server_config.send_queue`): 16,777,216 messages.
pub const TETHER_MAX_QUEUE: usize = 16_777_216;

/// The largest growth factor (`tether_backoff_config.multiplier`, the idle
/// timeout factor).
pub const TETHER_MAX_FACTOR: f64 = 1000.0;

const _: () = {
    assert!(TETHER_MAX_DURATION_MS as u128 == tether_core::limits::MAX_DURATION.as_millis());
    assert!(TETHER_MAX_QUEUE == tether_transports::driver::MAX_QUEUE);
};

#[cfg(test)]
mod tests {
    #[test]
    fn the_factor_bound_is_the_core_bound() {
        assert_eq!(super::TETHER_MAX_FACTOR, tether_core::limits::MAX_FACTOR);
    }
}
