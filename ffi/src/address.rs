//! Addresses of the managed API: `tcp://host:port`, parsed by the one
//! address syntax every tether API shares ([`Endpoint`]), with C error codes.

use crate::panic::fail;
use crate::result::tether_result;
use std::net::SocketAddr;
use tether_transports::{Endpoint, EndpointError, Scheme};

/// Parses `input` and checks that the C API can serve its scheme.
pub(crate) fn parse(input: &str) -> Result<Endpoint, tether_result> {
    let endpoint: Endpoint = input.parse().map_err(|e| endpoint_error(&e))?;
    match endpoint.scheme {
        Scheme::Tcp => Ok(endpoint),
        other => Err(fail(
            tether_result::NotSupported,
            format!(
                "the {} transport is not available through the C API yet (use tcp://)",
                other.as_str()
            ),
        )),
    }
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
pub(crate) fn listen(input: &str) -> Result<SocketAddr, tether_result> {
    parse(input)?.listen_addr().map_err(|e| {
        fail(
            tether_result::InvalidAddress,
            format!("{e} (a server listens on an IP address, e.g. tcp://127.0.0.1:0)"),
        )
    })
}

fn endpoint_error(e: &EndpointError) -> tether_result {
    let code = match e {
        EndpointError::NotEnabled(_) => tether_result::NotSupported,
        _ => tether_result::InvalidAddress,
    };
    fail(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_and_listen_addresses() {
        let e = dial("tcp://localhost:7000").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("localhost", 7000));
        assert_eq!(listen("tcp://[::1]:0").unwrap().port(), 0);
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
        ] {
            assert_eq!(dial(s), Err(tether_result::InvalidAddress), "{s}");
        }
        assert_eq!(dial("udp://127.0.0.1:1"), Err(tether_result::NotSupported));
    }
}
