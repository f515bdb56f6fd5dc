//! Test certificates generated with rcgen (ring) at test time, for TLS and
//! QUIC alike: a CA, a server certificate for localhost / 127.0.0.1 and a
//! client certificate signed by it, and a second CA that signed nothing we
//! use. PEM files in a scratch directory, removed on drop.
//!
//! Included by path from `tls_support` and `quic_support` (each adds the
//! options of its transport), next to `scratch.rs`, so that those modules
//! stay usable from crates that do not include `common`.

use super::scratch::ScratchDir;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::PathBuf;

/// The PEM files of one test PKI.
pub struct Pki {
    /// Where the files are; removed with the `Pki`.
    pub dir: ScratchDir,
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// Server certificate for `localhost` and 127.0.0.1.
    pub server_cert: PathBuf,
    /// The server certificate's private key.
    pub server_key: PathBuf,
    /// Client certificate (client authentication only).
    pub client_cert: PathBuf,
    /// The client certificate's private key.
    pub client_key: PathBuf,
    /// A CA that signed nothing we use: trusting only it must fail.
    pub other_ca: PathBuf,
}

fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(
    names: &[&str],
    cn: &str,
    purpose: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'static, KeyPair>,
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![purpose];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    /// Generates every certificate and key into a fresh scratch directory.
    pub fn generate() -> Self {
        let dir = ScratchDir::new("pki");
        let (ca_pem, ca) = new_ca("tether test CA");
        let (other_pem, _) = new_ca("untrusted CA");
        let (server_pem, server_key) = leaf(
            &["localhost", "127.0.0.1"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
        );
        let (client_pem, client_key) = leaf(
            &["client.tether.test"],
            "client",
            ExtendedKeyUsagePurpose::ClientAuth,
            &ca,
        );
        Self {
            ca: dir.write("ca.pem", &ca_pem),
            server_cert: dir.write("server.pem", &server_pem),
            server_key: dir.write("server.key", &server_key),
            client_cert: dir.write("client.pem", &client_pem),
            client_key: dir.write("client.key", &client_key),
            other_ca: dir.write("other-ca.pem", &other_pem),
            dir,
        }
    }

    /// A path inside the scratch directory (the file need not exist).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
