//! A tether echo server in a separate OS process, so tests can SIGKILL it
//! and start it again (scenario S0). The test binary re-executes itself:
//! `ServerProcess::start` runs the current test executable with
//! `--exact serve_child --ignored` and `TETHER_TEST_SERVE=<url>`; the test
//! named `serve_child` in the calling test file must call
//! [`serve_child_main`].

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tether_transports::driver::{Server, ServerConfig, ServerEvent};
use tether_transports::endpoint::{self, Endpoint, TransportOptions};

/// A running server process.
pub struct ServerProcess {
    child: Child,
    /// The bound port.
    pub port: u16,
}

impl ServerProcess {
    /// Starts a server for `url` (port 0 picks one) with extra environment.
    pub fn start(url: &str, env: &[(&str, String)]) -> Self {
        let exe = std::env::current_exe().expect("test executable");
        let mut cmd = Command::new(exe);
        cmd.args([
            "--exact",
            "serve_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TETHER_TEST_SERVE", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn server process");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("server process exited before READY")
                .expect("read server stdout");
            // libtest may print "test serve_child ... " on the same line.
            if let Some((_, port)) = line.split_once("READY ") {
                break port.trim().parse().expect("port number");
            }
        };
        // Keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, port }
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

/// The body of the child process: serve `TETHER_TEST_SERVE` and echo every
/// message until killed. Does nothing when the variable is not set (so the
/// `serve_child` test is a no-op when run by hand with `--ignored`).
pub fn serve_child_main(options: TransportOptions) {
    let Ok(url) = std::env::var("TETHER_TEST_SERVE") else {
        return;
    };
    let endpoint: Endpoint = url.parse().expect("valid url");
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
