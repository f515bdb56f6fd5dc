//! Test certificates for the TLS tests, generated with rcgen at test time:
//! a CA, a server certificate for localhost / 127.0.0.1, a client
//! certificate, and a second CA that nobody trusts.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use tether_transports::tcp::TcpOptions;
use tether_transports::tls::{TlsAcceptor, TlsClientOptions, TlsConnector, TlsServerOptions};

/// PEM files in a private temporary directory, removed on drop.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
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
    pub fn generate() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tether-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
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
            ca: write("ca.pem", &ca_pem),
            server_cert: write("server.pem", &server_pem),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_pem),
            client_key: write("client.key", &client_key),
            other_ca: write("other-ca.pem", &other_pem),
            dir,
        }
    }

    pub fn server_options(&self) -> TlsServerOptions {
        TlsServerOptions::new(&self.server_cert, &self.server_key)
    }

    /// Trusts our CA; the server name defaults to the dialed host.
    pub fn client_options(&self) -> TlsClientOptions {
        TlsClientOptions::default().with_ca_file(&self.ca)
    }

    pub async fn acceptor(&self, options: &TlsServerOptions) -> TlsAcceptor {
        TlsAcceptor::bind(
            "127.0.0.1:0".parse().unwrap(),
            TcpOptions::default(),
            options,
        )
        .await
        .unwrap()
    }

    pub fn connector(&self, port: u16, options: &TlsClientOptions) -> TlsConnector {
        TlsConnector::new("127.0.0.1", port, TcpOptions::default(), options).unwrap()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
