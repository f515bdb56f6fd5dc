//! One classification of failed TLS handshakes, for `tls://` (rustls over
//! TCP) and `quic://` (rustls inside QUIC): a refused certificate is
//! `TlsCertificate`, a certificate for another name `TlsNameMismatch`,
//! anything else `ProtocolError`.

use rustls::{AlertDescription, CertificateError};
use tether_core::DisconnectReason;

/// The reason for a rustls error raised on this side.
pub(crate) fn from_rustls(err: &rustls::Error) -> DisconnectReason {
    match err {
        rustls::Error::InvalidCertificate(e) => from_certificate(e),
        rustls::Error::AlertReceived(alert) => from_alert(*alert),
        _ => DisconnectReason::ProtocolError,
    }
}

fn from_certificate(err: &CertificateError) -> DisconnectReason {
    match err {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            DisconnectReason::TlsNameMismatch
        }
        _ => DisconnectReason::TlsCertificate,
    }
}

/// The reason for a TLS alert: the certificate alerts mean one side
/// refused the other's certificate.
pub(crate) fn from_alert(alert: AlertDescription) -> DisconnectReason {
    use AlertDescription as A;
    match alert {
        A::BadCertificate
        | A::UnsupportedCertificate
        | A::CertificateRevoked
        | A::CertificateExpired
        | A::CertificateUnknown
        | A::UnknownCA
        | A::CertificateRequired => DisconnectReason::TlsCertificate,
        _ => DisconnectReason::ProtocolError,
    }
}

/// The reason for a TLS alert number as QUIC carries it (a CRYPTO_ERROR
/// transport code is 0x100 + the alert), refined by the error's text: a
/// certificate for another name is reported as `bad_certificate`, and only
/// the text of the side that refused it tells the two apart.
#[cfg(feature = "quic")]
pub(crate) fn from_quic_crypto(alert: u8, text: &str) -> DisconnectReason {
    let alert = AlertDescription::from(alert);
    match from_alert(alert) {
        DisconnectReason::TlsCertificate if text.contains("not valid for name") => {
            DisconnectReason::TlsNameMismatch
        }
        // A certificate whose signature does not verify is sent as
        // decrypt_error, which also covers other handshake failures: the
        // refusing side's text tells them apart.
        DisconnectReason::ProtocolError
            if alert == AlertDescription::DecryptError
                && text.contains("invalid peer certificate") =>
        {
            DisconnectReason::TlsCertificate
        }
        other => other,
    }
}

/// The reason for an I/O error out of tokio-rustls (which wraps the rustls
/// error), if it is a TLS failure.
#[cfg(feature = "tls")]
pub(crate) fn from_io(err: &std::io::Error) -> Option<DisconnectReason> {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(from_rustls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_problems_are_told_apart() {
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert_eq!(from_rustls(&name), DisconnectReason::TlsNameMismatch);
        let ca = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(from_rustls(&ca), DisconnectReason::TlsCertificate);
        let refused = rustls::Error::AlertReceived(AlertDescription::UnknownCA);
        assert_eq!(from_rustls(&refused), DisconnectReason::TlsCertificate);
        let alpn = rustls::Error::AlertReceived(AlertDescription::NoApplicationProtocol);
        assert_eq!(from_rustls(&alpn), DisconnectReason::ProtocolError);
    }

    #[cfg(feature = "quic")]
    #[test]
    fn quic_alerts_are_refined_by_the_refusing_side_s_text() {
        let decrypt = u8::from(AlertDescription::DecryptError);
        assert_eq!(
            from_quic_crypto(decrypt, "invalid peer certificate: BadSignature"),
            DisconnectReason::TlsCertificate
        );
        assert_eq!(
            from_quic_crypto(decrypt, "decrypt error"),
            DisconnectReason::ProtocolError
        );
        let bad = u8::from(AlertDescription::BadCertificate);
        assert_eq!(
            from_quic_crypto(
                bad,
                "invalid peer certificate: certificate not valid for name \"x\""
            ),
            DisconnectReason::TlsNameMismatch
        );
    }
}
