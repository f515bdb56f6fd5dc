//! Addresses of the managed API: `tcp://`, `tls://`, `quic://` and
//! `udp://host:port`, parsed by the one address syntax every tether API
//! shares ([`Endpoint`]), with C error codes.

use crate::panic::fail;
use crate::result::tether_result;
use tether_transports::{Endpoint, EndpointError};

/// Parses `input`.
fn parse(input: &str) -> Result<Endpoint, tether_result> {
    input.parse().map_err(|e| endpoint_error(&e))
}

/// The address to dial: any host name or IP, port 1..=65535.
pub(crate) fn dial(input: &str) -> Result<Endpoint, tether_result> {
    let endpoint = parse(input)?;
    if endpoint.port == 0 {
        return Err(fail(
            tether_result::InvalidAddress,
            format!("address {input:?}: a client cannot connect to port 0"),
        ));
    }
    Ok(endpoint)
}

/// The address to listen on: an IP literal; port 0 lets the kernel choose.
pub(crate) fn listen(input: &str) -> Result<Endpoint, tether_result> {
    let endpoint = parse(input)?;
    endpoint.listen_addr().map_err(|e| {
        fail(
            tether_result::InvalidAddress,
            format!(
                "{e} (a server listens on an IP address, e.g. {}://127.0.0.1:0)",
                endpoint.scheme.as_str()
            ),
        )
    })?;
    Ok(endpoint)
}

/// The C code for an address or transport-options error: a transport that
/// is not compiled in is `NOT_SUPPORTED`, rejected options are
/// `INVALID_CONFIG`, the rest `INVALID_ADDRESS`; the detail is the message.
pub(crate) fn endpoint_error(e: &EndpointError) -> tether_result {
    match e {
        EndpointError::NotEnabled(_) => fail(tether_result::NotSupported, e.to_string()),
        EndpointError::BadOptions(scheme, problem) => options_error(scheme, "", problem),
        _ => fail(tether_result::InvalidAddress, e.to_string()),
    }
}

/// `INVALID_CONFIG` for rejected transport options, with the detail
/// `"invalid configuration: <scheme> <side>options: <problem>"` (the
/// problem names the field or file).
pub(crate) fn options_error(scheme: &str, side: &str, problem: &str) -> tether_result {
    // Core's `ConfigError` already says "invalid configuration: ".
    let problem = problem
        .strip_prefix("invalid configuration: ")
        .unwrap_or(problem);
    fail(
        tether_result::InvalidConfig,
        format!("invalid configuration: {scheme} {side}options: {problem}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_and_listen_addresses() {
        let e = dial("tcp://localhost:7000").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("localhost", 7000));
        assert_eq!(listen("tcp://[::1]:0").unwrap().port, 0);
        assert_eq!(
            dial("tcp://127.0.0.1:0"),
            Err(tether_result::InvalidAddress)
        );
        assert_eq!(
            listen("tcp://localhost:0"),
            Err(tether_result::InvalidAddress)
        );
        for s in [
            "127.0.0.1:7000",
            "tcp://127.0.0.1",
            "tcp://127.0.0.1:99999",
            "tcp://:1",
            "http://127.0.0.1:1",
        ] {
            assert_eq!(dial(s), Err(tether_result::InvalidAddress), "{s}");
        }
        for s in ["tls://a:1", "quic://a:1", "udp://a:1"] {
            assert!(dial(s).is_ok(), "{s}");
        }
        assert!(listen("quic://127.0.0.1:0").is_ok());
    }
}
