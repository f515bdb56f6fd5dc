//! A server in a separate OS process, so tests can SIGKILL it and start it
//! again on the same port (scenario S0).
//!
//! [`ServerProcess::spawn`] runs any command that says which port it bound
//! (a foreign peer: `openssl s_server`, an aioquic script).
//! [`ServerProcess::start`] runs a tether echo server: the test binary
//! re-executes itself with `--exact serve_child --ignored`, the URL in
//! `TETHER_TEST_SERVE` and the [`ChildConfig`] in the environment; the test
//! named `serve_child` in the calling test file must call
//! [`serve_child_main`].

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tether_transports::driver::{Server, ServerConfig, ServerEvent};
use tether_transports::endpoint::{self, Endpoint, TransportOptions};

const URL_ENV: &str = "TETHER_TEST_SERVE";
const CERT_ENV: &str = "TETHER_TEST_CERT";
const KEY_ENV: &str = "TETHER_TEST_KEY";
const QUIC_RESET_KEY_ENV: &str = "TETHER_TEST_QUIC_RESET_KEY";
const UDP_PSK_ENV: &str = "TETHER_TEST_UDP_PSK";
const UDP_STATIC_KEY_ENV: &str = "TETHER_TEST_UDP_STATIC_KEY";

/// How long a server process may take to say which port it bound.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running server process, SIGKILLed on drop.
pub struct ServerProcess {
    child: Child,
    /// The bound port.
    pub port: u16,
    /// Everything it printed after its ready line.
    output: Arc<Mutex<Vec<u8>>>,
}

impl ServerProcess {
    /// Runs `cmd` with its stdout piped and waits until `ready` finds the
    /// bound port in a line of it; what it prints afterwards is kept for
    /// [`ServerProcess::wait_received`].
    pub fn spawn(mut cmd: Command, ready: impl Fn(&str) -> Option<u16> + Send + 'static) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        let (port_tx, port_rx) = mpsc::channel();
        // Reads on a thread so that the wait for the ready line is bounded,
        // and keeps reading so that the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut line = String::new();
            loop {
                line.clear();
                match stdout.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if let Some(port) = ready(line.trim_end()) {
                    let _ = port_tx.send(port);
                    break;
                }
            }
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let port = match port_rx.recv_timeout(READY_WITHIN) {
            Ok(port) => port,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} never said it was ready ({e})");
            }
        };
        assert_ne!(port, 0, "{cmd:?} did not say which port it bound");
        Self {
            child,
            port,
            output,
        }
    }

    /// Starts a tether echo server for `url` (port 0 picks one) in a child
    /// process configured by `config`.
    pub fn start(url: &str, config: &ChildConfig) -> Self {
        let exe = std::env::current_exe().expect("test executable");
        let mut cmd = Command::new(exe);
        cmd.args([
            "--exact",
            "serve_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(URL_ENV, url)
        .envs(config.env())
        .stderr(Stdio::inherit());
        // libtest may print "test serve_child ... " on the same line.
        Self::spawn(cmd, |line| {
            let (_, port) = line.split_once("READY ")?;
            Some(port.trim().parse().expect("port number"))
        })
    }

    /// True once the process has printed `needle` after its ready line.
    pub fn received(&self, needle: &[u8]) -> bool {
        let out = self.output.lock().unwrap();
        out.windows(needle.len()).any(|w| w == needle)
    }

    /// Waits (up to 5 s) until the process has printed `needle`.
    pub async fn wait_received(&self, needle: &[u8]) {
        for _ in 0..100 {
            if self.received(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the server process never printed {:?}",
            String::from_utf8_lossy(needle)
        );
    }

    /// SIGKILL: the process dies with all its connection state, no FIN
    /// from the application (the kernel still closes its sockets).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the child's server needs besides its URL, handed over in the
/// environment. The defaults serve tcp:// as is.
#[derive(Debug, Clone, Default)]
pub struct ChildConfig {
    /// Certificate and private key (PEM files) for tls:// and quic://.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// quic:// only: keep the stateless-reset key in this file.
    pub quic_reset_key: Option<PathBuf>,
    /// udp:// only: the pre-shared key and the file of the static key.
    pub udp: Option<(Vec<u8>, PathBuf)>,
}

impl ChildConfig {
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![];
        if let Some((cert, key)) = &self.cert {
            env.push((CERT_ENV, cert.display().to_string()));
            env.push((KEY_ENV, key.display().to_string()));
        }
        if let Some(path) = &self.quic_reset_key {
            env.push((QUIC_RESET_KEY_ENV, path.display().to_string()));
        }
        if let Some((psk, key)) = &self.udp {
            let hex: String = psk.iter().map(|b| format!("{b:02x}")).collect();
            env.push((UDP_PSK_ENV, hex));
            env.push((UDP_STATIC_KEY_ENV, key.display().to_string()));
        }
        env
    }

    /// The inverse of `env`, in the child.
    fn options_from_env() -> TransportOptions {
        #[allow(unused_variables)]
        let var = |name: &str| std::env::var(name).ok();
        #[allow(unused_mut)]
        let mut options = TransportOptions::default();
        #[cfg(feature = "tls")]
        if let (Some(cert), Some(key)) = (var(CERT_ENV), var(KEY_ENV)) {
            options.tls_server = tether_transports::tls::TlsServerOptions::new(cert, key);
        }
        #[cfg(feature = "quic")]
        if let (Some(cert), Some(key)) = (var(CERT_ENV), var(KEY_ENV)) {
            let mut server = tether_transports::quic::QuicServerOptions::new(cert, key);
            if let Some(path) = var(QUIC_RESET_KEY_ENV) {
                server = server.with_reset_key_file(path);
            }
            options.quic_server = server;
        }
        #[cfg(feature = "udp")]
        if let (Some(psk), Some(key)) = (var(UDP_PSK_ENV), var(UDP_STATIC_KEY_ENV)) {
            let psk: Vec<u8> = (0..psk.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&psk[i..i + 2], 16).expect("hex"))
                .collect();
            options.udp = tether_transports::udp::UdpOptions {
                static_key: tether_transports::udp::StaticKey::File(key.into()),
                ..tether_transports::udp::UdpOptions::with_psk(psk)
            };
        }
        options
    }
}

/// The body of the child process: serve `TETHER_TEST_SERVE` with the
/// options in the environment and echo every message until killed. Does
/// nothing when the variable is not set (so the `serve_child` test is a
/// no-op when run by hand with `--ignored`).
pub fn serve_child_main() {
    let Ok(url) = std::env::var(URL_ENV) else {
        return;
    };
    let endpoint: Endpoint = url.parse().expect("valid url");
    let options = ChildConfig::options_from_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let acceptor = endpoint::acceptor(&endpoint, &options).await.expect("bind");
        let mut server = Server::spawn(acceptor, ServerConfig::default()).expect("server");
        println!("READY {}", server.local_addr().port());
        while let Some(event) = server.next_event().await {
            if let ServerEvent::Message { id, data } = event {
                let _ = server.send(id, data).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
}
