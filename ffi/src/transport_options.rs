//! `tether_transport_options`: the settings of the `tls://`, `quic://` and
//! `udp://` transports (certificate and key files, trust roots, server name,
//! ALPN, 0-RTT, the QUIC reset key, the UDP pre-shared key), filled with
//! setters and handed to `tether_client_new` / `tether_server_new` through
//! the `transport` field of their configs.
//!
//! One object holds both sides, as the Rust `TransportOptions` does: a
//! client reads the client settings of its address's scheme, a server the
//! server settings. The values are copied when the client or server is
//! created, so the object may be changed, reused for other clients or freed
//! right after.
//!
//! ```c
//! tether_transport_options opts = {0};
//! tether_transport_options_new(&opts);
//! tether_transport_options_set_tls_ca_file(opts, "/etc/myapp/ca.pem");
//! tether_client_config cfg;
//! tether_client_config_default(&cfg);
//! cfg.transport = opts;
//! tether_client client = {0};
//! tether_result rc = tether_client_new("tls://db.example:7000", &cfg, NULL, NULL, &client);
//! tether_transport_options_free(opts);
//! ```
//!
//! Setters check what they can at once (empty or non-UTF-8 strings, a PSK
//! that is too short, a payload limit out of range) and fail with
//! `TETHER_RESULT_INVALID_CONFIG`, the detail naming the field. Files are
//! read when the client or server is created; a missing or malformed file
//! fails there, also with `TETHER_RESULT_INVALID_CONFIG` and the path.

use crate::handle::{HandleTable, Kind};
use crate::panic::{fail, guard};
use crate::ptr::{bytes, out, slice};
use crate::result::tether_result;
use std::ffi::{c_char, CStr};
use std::path::PathBuf;
use std::sync::Mutex;
use tether_core::liveness::{HeartbeatConfig, Policy};
use tether_transports::endpoint::TransportOptions;
use tether_transports::quic::{QuicClientOptions, QuicServerOptions, ResetKey};
use tether_transports::tcp::TcpOptions;
use tether_transports::tls::{TlsClientOptions, TlsServerOptions};
use tether_transports::udp::{StaticKey, UdpOptions, MAX_PAYLOAD_LIMIT, MIN_PSK_LEN};

/// Transport settings for `tls://`, `quic://` and `udp://` (opaque
/// handle). `{0}` is "none": every transport's defaults (which for `udp://`
/// means no PSK, so `udp://` needs one).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tether_transport_options {
    /// The handle value; 0 means none.
    pub id: u64,
}

/// What an options object holds: the per-transport option structs of
/// `tether-transports`.
#[derive(Debug, Clone, Default)]
pub(crate) struct TransportSettings {
    pub(crate) tls_client: TlsClientOptions,
    pub(crate) tls_server: TlsServerOptions,
    pub(crate) quic_client: QuicClientOptions,
    pub(crate) quic_server: QuicServerOptions,
    pub(crate) udp: UdpOptions,
}

impl TransportSettings {
    /// The client's transport options, their own liveness timers tied to
    /// the heartbeat (`TransportOptions::follow_heartbeat`).
    pub(crate) fn for_client(
        self,
        tcp: TcpOptions,
        heartbeat: &HeartbeatConfig,
    ) -> TransportOptions {
        TransportOptions {
            tcp,
            tls_client: self.tls_client,
            quic_client: self.quic_client,
            udp: self.udp,
            ..TransportOptions::default()
        }
        .follow_heartbeat(heartbeat)
    }

    /// The server's transport options, QUIC's liveness following `policy`
    /// (`TransportOptions::follow_policy`).
    pub(crate) fn for_server(self, tcp: TcpOptions, policy: &Policy) -> TransportOptions {
        TransportOptions {
            tcp,
            tls_server: self.tls_server,
            quic_server: self.quic_server,
            udp: self.udp,
            ..TransportOptions::default()
        }
        .follow_policy(policy)
    }
}

static OPTIONS: HandleTable<Mutex<TransportSettings>> = HandleTable::new(Kind::TransportOptions);

/// A copy of the settings named by `handle`; `{0}` gives the defaults.
pub(crate) fn settings(
    handle: tether_transport_options,
) -> Result<TransportSettings, tether_result> {
    if handle.id == 0 {
        return Ok(TransportSettings::default());
    }
    OPTIONS.with(handle.id, |s| s.clone())
}

fn update(
    options: tether_transport_options,
    f: impl FnOnce(&mut TransportSettings),
) -> Result<(), tether_result> {
    OPTIONS.with(options.id, f)
}

fn invalid(field: &str, problem: impl std::fmt::Display) -> tether_result {
    fail(
        tether_result::InvalidConfig,
        format!("invalid configuration: {field}: {problem}"),
    )
}

/// A required, non-empty UTF-8 string argument for `field`.
fn config_text(field: &str, p: *const c_char) -> Result<String, tether_result> {
    if p.is_null() {
        return Err(fail(
            tether_result::NullArgument,
            format!("{field}: the string is NULL"),
        ));
    }
    // SAFETY: non-NULL; the caller promises a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| invalid(field, "not valid UTF-8"))?;
    if s.is_empty() {
        return Err(invalid(field, "empty"));
    }
    Ok(s.to_string())
}

fn config_path(field: &str, p: *const c_char) -> Result<PathBuf, tether_result> {
    config_text(field, p).map(PathBuf::from)
}

/// An ALPN list: `count` non-empty strings of at most 255 bytes each.
fn alpn_list(
    field: &str,
    protocols: *const *const c_char,
    count: usize,
) -> Result<Vec<String>, tether_result> {
    if count > 0 && protocols.is_null() {
        return Err(fail(
            tether_result::NullArgument,
            format!("{field}: the protocol array is NULL"),
        ));
    }
    let items = slice(protocols, count, "protocols")?;
    items
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let name = format!("{field}[{i}]");
            let s = config_text(&name, *p)?;
            if s.len() > 255 {
                return Err(invalid(&name, "longer than 255 bytes"));
            }
            Ok(s)
        })
        .collect()
}

/// Creates an options object holding every transport's defaults and writes
/// its handle to `*out_options`. Release it with
/// `tether_transport_options_free` (any time after the clients and servers
/// that use it were created: they keep a copy).
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_FULL`.
#[no_mangle]
pub extern "C" fn tether_transport_options_new(
    out_options: *mut tether_transport_options,
) -> tether_result {
    guard(|| {
        let out_options = out(out_options, "out_options")?;
        let id = OPTIONS.insert(Mutex::new(TransportSettings::default()))?;
        out_options.write(tether_transport_options { id });
        Ok(())
    })
}

/// Frees the options object. Clients and servers created with it are
/// unaffected. `{0}` is a no-op (`TETHER_RESULT_OK`); a second free returns
/// `TETHER_RESULT_STALE_HANDLE`; another object's handle
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_free(
    options: tether_transport_options,
) -> tether_result {
    guard(|| {
        OPTIONS.remove(options.id)?;
        Ok(())
    })
}

/// TLS client: trust the CA certificates in the PEM file `path` instead of
/// the platform's roots (e.g. a private CA, or a self-signed server
/// certificate). The server's certificate is always verified.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`; `TETHER_RESULT_INVALID_CONFIG`
/// (`tls_client.ca_file` empty or not UTF-8); `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_tls_ca_file(
    options: tether_transport_options,
    path: *const c_char,
) -> tether_result {
    guard(|| {
        let path = config_path("tls_client.ca_file", path)?;
        update(options, |s| s.tls_client.ca_file = Some(path))
    })
}

/// TLS client: send `name` as SNI and verify the server's certificate
/// against it, instead of the address's host (an IP literal host is
/// checked against the certificate's IP addresses and sends no SNI). A name
/// that is neither a DNS name nor an IP address fails at
/// `tether_client_new`. Errors: `TETHER_RESULT_NULL_ARGUMENT`;
/// `TETHER_RESULT_INVALID_CONFIG` (`tls_client.server_name` empty or not
/// UTF-8); `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_tls_server_name(
    options: tether_transport_options,
    name: *const c_char,
) -> tether_result {
    guard(|| {
        let name = config_text("tls_client.server_name", name)?;
        update(options, |s| s.tls_client.server_name = Some(name))
    })
}

/// TLS client: present the PEM certificate chain `cert_file` with the PEM
/// private key `key_file` (PKCS#8, PKCS#1 or SEC1) when the server asks for
/// a client certificate. Errors: `TETHER_RESULT_NULL_ARGUMENT`;
/// `TETHER_RESULT_INVALID_CONFIG` (`tls_client.client_cert_file` or
/// `tls_client.client_key_file` empty or not UTF-8);
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_tls_client_cert(
    options: tether_transport_options,
    cert_file: *const c_char,
    key_file: *const c_char,
) -> tether_result {
    guard(|| {
        let cert = config_path("tls_client.client_cert_file", cert_file)?;
        let key = config_path("tls_client.client_key_file", key_file)?;
        update(options, |s| {
            s.tls_client.client_cert_file = Some(cert);
            s.tls_client.client_key_file = Some(key);
        })
    })
}

/// TLS server: serve the PEM certificate chain `cert_file` (leaf first)
/// with the PEM private key `key_file`. Required for a `tls://` server.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`; `TETHER_RESULT_INVALID_CONFIG`
/// (`tls_server.cert_file` or `tls_server.key_file` empty or not UTF-8);
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_tls_cert(
    options: tether_transport_options,
    cert_file: *const c_char,
    key_file: *const c_char,
) -> tether_result {
    guard(|| {
        let cert = config_path("tls_server.cert_file", cert_file)?;
        let key = config_path("tls_server.key_file", key_file)?;
        update(options, |s| {
            s.tls_server.cert_file = Some(cert);
            s.tls_server.key_file = Some(key);
        })
    })
}

/// TLS server: require every client to present a certificate that chains
/// to a CA in the PEM file `path`; clients without one fail the handshake.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`; `TETHER_RESULT_INVALID_CONFIG`
/// (`tls_server.client_ca_file` empty or not UTF-8);
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_tls_client_ca_file(
    options: tether_transport_options,
    path: *const c_char,
) -> tether_result {
    guard(|| {
        let path = config_path("tls_server.client_ca_file", path)?;
        update(options, |s| s.tls_server.client_ca_file = Some(path))
    })
}

/// TLS, both sides: the ALPN protocols, most preferred first:
/// `protocols[0..count]`, each a NUL-terminated string of 1..=255 bytes,
/// copied. A client offers them; a server accepts only them (a client
/// offering none of them fails the handshake). `count` 0 means none (the
/// default); `protocols` may then be NULL. Errors:
/// `TETHER_RESULT_NULL_ARGUMENT`; `TETHER_RESULT_INVALID_CONFIG`
/// (`tls.alpn[i]` empty, too long or not UTF-8; nothing changed);
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_tls_alpn(
    options: tether_transport_options,
    protocols: *const *const c_char,
    count: usize,
) -> tether_result {
    guard(|| {
        let alpn = alpn_list("tls.alpn", protocols, count)?;
        update(options, |s| {
            s.tls_client.alpn = alpn.clone();
            s.tls_server.alpn = alpn;
        })
    })
}

/// QUIC client: trust the certificates (CA or self-signed server
/// certificates) in the PEM file `path` instead of the platform's roots.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`; `TETHER_RESULT_INVALID_CONFIG`
/// (`quic_client.ca_file` empty or not UTF-8);
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_quic_ca_file(
    options: tether_transport_options,
    path: *const c_char,
) -> tether_result {
    guard(|| {
        let path = config_path("quic_client.ca_file", path)?;
        update(options, |s| s.quic_client.ca_file = Some(path))
    })
}

/// QUIC client: send `name` as SNI and verify the certificate against it
/// instead of the address's host. Errors: `TETHER_RESULT_NULL_ARGUMENT`;
/// `TETHER_RESULT_INVALID_CONFIG` (`quic_client.server_name` empty or not
/// UTF-8); `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_quic_server_name(
    options: tether_transport_options,
    name: *const c_char,
) -> tether_result {
    guard(|| {
        let name = config_text("quic_client.server_name", name)?;
        update(options, |s| s.quic_client.server_name = Some(name))
    })
}

/// QUIC server: serve the PEM certificate chain `cert_file` (leaf first)
/// with the PEM private key `key_file`. Required for a `quic://` server.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`; `TETHER_RESULT_INVALID_CONFIG`
/// (`quic_server.cert_file` or `quic_server.key_file` empty or not UTF-8);
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_quic_cert(
    options: tether_transport_options,
    cert_file: *const c_char,
    key_file: *const c_char,
) -> tether_result {
    guard(|| {
        let cert = config_path("quic_server.cert_file", cert_file)?;
        let key = config_path("quic_server.key_file", key_file)?;
        update(options, |s| {
            s.quic_server.cert_file = Some(cert);
            s.quic_server.key_file = Some(key);
        })
    })
}

/// QUIC, both sides: the ALPN protocols, most preferred first (default
/// `"tether"`), as for `tether_transport_options_set_tls_alpn`; both sides
/// must share one. Errors: `TETHER_RESULT_NULL_ARGUMENT`;
/// `TETHER_RESULT_INVALID_CONFIG` (`quic.alpn[i]` empty, too long or not
/// UTF-8; nothing changed); `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_quic_alpn(
    options: tether_transport_options,
    protocols: *const *const c_char,
    count: usize,
) -> tether_result {
    guard(|| {
        let alpn = alpn_list("quic.alpn", protocols, count)?;
        update(options, |s| {
            s.quic_client.alpn = alpn.clone();
            s.quic_server.alpn = alpn;
        })
    })
}

/// QUIC, both sides: allow 0-RTT resumption (default on). A client sends
/// no application data before the handshake is confirmed and a server hands
/// a connection over only after its handshake completed, so 0-RTT never
/// exposes replayed data. Errors: `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_quic_zero_rtt(
    options: tether_transport_options,
    enabled: bool,
) -> tether_result {
    guard(|| {
        update(options, |s| {
            s.quic_client.zero_rtt = enabled;
            s.quic_server.zero_rtt = enabled;
        })
    })
}

/// QUIC server: keep the stateless-reset key in the file `path` (64 random
/// bytes, created with mode 0600 on first start). A server restarted with
/// the same key file tells its predecessor's clients at once that their
/// connections are gone; without it (the default, a random key per start)
/// they notice only through their idle timeout. Keep the file secret.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`; `TETHER_RESULT_INVALID_CONFIG`
/// (`quic_server.reset_key_file` empty or not UTF-8);
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_quic_reset_key_file(
    options: tether_transport_options,
    path: *const c_char,
) -> tether_result {
    guard(|| {
        let path = config_path("quic_server.reset_key_file", path)?;
        update(options, |s| s.quic_server.reset_key = ResetKey::File(path))
    })
}

/// UDP, both sides: the pre-shared key `psk[0..len]` (copied), the same on
/// client and server: at least 16 bytes, 32 random bytes recommended.
/// Required for `udp://`. Errors: `TETHER_RESULT_NULL_ARGUMENT`;
/// `TETHER_RESULT_INVALID_CONFIG` (`udp.psk` shorter than 16 bytes);
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_udp_psk(
    options: tether_transport_options,
    psk: *const u8,
    len: usize,
) -> tether_result {
    guard(|| {
        let psk = bytes(psk, len, "psk")?;
        if psk.len() < MIN_PSK_LEN {
            return Err(invalid(
                "udp.psk",
                format_args!(
                    "too short: {} bytes, need at least {MIN_PSK_LEN} (32 random bytes recommended)",
                    psk.len()
                ),
            ));
        }
        let psk = psk.to_vec();
        update(options, |s| s.udp.psk = psk)
    })
}

/// UDP server: read the static key that signs "unknown session" replies
/// from the file `path` (exactly 32 bytes; created with random bytes and
/// mode 0600 on first start) instead of deriving it from the PSK. Keep the
/// file across restarts: only a server with the same key can tell old
/// clients at once that it restarted. Errors: `TETHER_RESULT_NULL_ARGUMENT`;
/// `TETHER_RESULT_INVALID_CONFIG` (`udp.static_key_file` empty or not
/// UTF-8); `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_udp_static_key_file(
    options: tether_transport_options,
    path: *const c_char,
) -> tether_result {
    guard(|| {
        let path = config_path("udp.static_key_file", path)?;
        update(options, |s| s.udp.static_key = StaticKey::File(path))
    })
}

/// UDP, both sides: the largest application payload per message, in bytes,
/// 1..=65000 (default 1193, which crosses any IPv6 path unfragmented;
/// larger values suit loopback and jumbo-frame networks). Larger messages
/// are refused with `TETHER_RESULT_MESSAGE_TOO_LARGE`. Errors:
/// `TETHER_RESULT_INVALID_CONFIG` (`udp.max_payload` out of range);
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_udp_max_payload(
    options: tether_transport_options,
    max_payload: usize,
) -> tether_result {
    guard(|| {
        if max_payload == 0 || max_payload > MAX_PAYLOAD_LIMIT {
            return Err(invalid(
                "udp.max_payload",
                format_args!("must be 1..={MAX_PAYLOAD_LIMIT} bytes, got {max_payload}"),
            ));
        }
        update(options, |s| s.udp.max_payload = max_payload)
    })
}

/// UDP client: give up a handshake that heard no authenticated answer
/// after `timeout_ms` (1 ms to 7 days). 0, the default, means no limit of
/// its own: the attempt lasts the client's connect timeout, as on every
/// other transport. A server stays silent to packets it cannot
/// authenticate, so a wrong key and no server both end as
/// `CONNECT_TIMEOUT` with the detail "no authenticated answer ... (wrong
/// key or no server)". Errors: `TETHER_RESULT_INVALID_CONFIG`
/// (`udp.handshake_timeout` over 7 days); `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_transport_options_set_udp_handshake_timeout(
    options: tether_transport_options,
    timeout_ms: u64,
) -> tether_result {
    guard(|| {
        let timeout = (timeout_ms > 0).then(|| crate::time::ms(timeout_ms));
        if let Some(t) = timeout {
            tether_core::limits::positive_duration("udp.handshake_timeout", t)
                .map_err(crate::backoff::config_error)?;
        }
        update(options, |s| s.udp.handshake_timeout = timeout)
    })
}

pub(crate) fn free_all() {
    drop(OPTIONS.drain());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_fill_the_options_and_check_values() {
        let mut o = tether_transport_options { id: 0 };
        assert_eq!(tether_transport_options_new(&mut o), tether_result::Ok);
        assert_eq!(
            tether_transport_options_set_tls_ca_file(o, c"ca.pem".as_ptr()),
            tether_result::Ok
        );
        let protos = [c"h2".as_ptr(), c"tether".as_ptr()];
        assert_eq!(
            tether_transport_options_set_tls_alpn(o, protos.as_ptr(), 2),
            tether_result::Ok
        );
        assert_eq!(
            tether_transport_options_set_udp_psk(o, [7u8; 32].as_ptr(), 32),
            tether_result::Ok
        );
        let s = settings(o).unwrap();
        assert_eq!(s.tls_client.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(s.tls_server.alpn, ["h2", "tether"]);
        assert_eq!(s.udp.psk, [7u8; 32]);

        assert_eq!(
            tether_transport_options_set_tls_ca_file(o, c"".as_ptr()),
            tether_result::InvalidConfig
        );
        assert_eq!(
            tether_transport_options_set_udp_psk(o, [7u8; 8].as_ptr(), 8),
            tether_result::InvalidConfig
        );
        assert_eq!(
            tether_transport_options_set_udp_max_payload(o, 0),
            tether_result::InvalidConfig
        );
        let bad = [c"h2".as_ptr(), c"".as_ptr()];
        assert_eq!(
            tether_transport_options_set_quic_alpn(o, bad.as_ptr(), 2),
            tether_result::InvalidConfig
        );
        assert_eq!(settings(o).unwrap().quic_client.alpn, ["tether"]);
        assert_eq!(tether_transport_options_free(o), tether_result::Ok);
        assert_eq!(tether_transport_options_free(o), tether_result::StaleHandle);
        assert_eq!(settings(o).unwrap_err(), tether_result::StaleHandle);
    }
}
