//! `tether probe` against servers on loopback (ports from the kernel).

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;
use tether_transports::driver::{Server, ServerConfig, ServerEvent};
use tether_transports::tcp::{TcpAcceptor, TcpOptions};
use tether_transports::udp::{UdpAcceptor, UdpOptions};

/// Serves `server`, closing its first connection half a second after it
/// was accepted; later ones stay open.
fn close_first_connection(mut server: Server) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut closed_one = false;
        while let Some(event) = server.next_event().await {
            if let ServerEvent::Accepted { id, .. } = event {
                if !closed_one {
                    closed_one = true;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    server.close(id).unwrap();
                }
            }
        }
    })
}

/// Asserts a zero exit status and every needle in the probe's output.
fn assert_ok_with(out: &Output, needles: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in needles {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    stdout
}

/// Runs `tether probe` in a blocking thread while the test's runtime serves.
async fn probe(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tether"))
            .arg("probe")
            .args(args)
            .output()
            .expect("run tether probe")
    })
    .await
    .unwrap()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reports_connects_and_a_server_side_close() {
    let acceptor = TcpAcceptor::bind(loopback(), TcpOptions::default())
        .await
        .unwrap();
    let server = Server::spawn(acceptor, ServerConfig::default()).unwrap();
    let url = format!("tcp://{}", server.local_addr());
    // The server closes the first connection after a moment; the probe
    // must report it as peer_closed and reconnect.
    let serve = close_first_connection(server);
    let out = probe(vec![url, "--for".into(), "2.5".into()]).await;
    serve.abort();
    let stdout = assert_ok_with(
        &out,
        &[
            "probing tcp://127.0.0.1:",
            "connecting",
            "connected",
            "disconnected",
            "gen 1: peer_closed",
            "gen 2, dial took",
            "stopped on request",
            "summary: 2 connections",
        ],
    );
    // Every event line carries a UTC timestamp.
    let events: Vec<&str> = stdout.lines().filter(|l| l.contains("  +")).collect();
    assert!(events.len() >= 6, "{stdout}");
    assert!(
        events.iter().all(|l| l.contains('T') && l.contains("Z  ")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_without_heartbeat_watches_a_plain_tcp_server() {
    // Not a tether server: accepts, stays silent, then closes.
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    let serve = tokio::spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        drop(conn);
        // Keep accepting (and holding) later connections.
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let out = probe(vec![
        "--no-heartbeat".into(),
        "--json".into(),
        "--for".into(),
        "1500ms".into(),
        url,
    ])
    .await;
    serve.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.iter().all(|l| l.starts_with('{') && l.ends_with('}')),
        "JSON lines only:\n{stdout}"
    );
    assert!(lines[0].starts_with("{\"time\":\""), "{stdout}");
    assert!(
        stdout.contains("\"event\":\"disconnected\",\"at_ms\":")
            && stdout.contains("\"reason\":\"peer_closed\""),
        "{stdout}"
    );
    assert!(
        lines.last().unwrap().starts_with("{\"summary\":"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_of_a_closed_port_reports_refusals_and_exits_1() {
    // A port the kernel just handed out and nobody listens on any more.
    let port = std::net::TcpListener::bind(loopback())
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = probe(vec![
        format!("tcp://127.0.0.1:{port}"),
        "--for".into(),
        "1".into(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("connect_refused"), "{stdout}");
    assert!(stdout.contains("summary: 0 connections"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_over_udp_reports_connects_and_a_server_side_close() {
    let psk = b"tether cli probe udp test key 32";
    let acceptor = UdpAcceptor::bind(loopback(), UdpOptions::with_psk(psk.to_vec()))
        .await
        .unwrap();
    let server = Server::spawn(acceptor, ServerConfig::default()).unwrap();
    let url = format!("udp://{}", server.local_addr());
    // As over TCP: the first session is closed by the server after a
    // moment; the probe must say peer_closed and start a new session.
    let serve = close_first_connection(server);
    let hex: String = psk.iter().map(|b| format!("{b:02x}")).collect();
    let out = probe(vec![
        "--psk-hex".into(),
        hex,
        "--interval".into(),
        "200ms".into(),
        "--for".into(),
        "2.5".into(),
        url,
    ])
    .await;
    serve.abort();
    assert_ok_with(
        &out,
        &[
            "probing udp://127.0.0.1:",
            "pre-shared key of 32 bytes",
            "gen 1: peer_closed",
            "gen 2, dial took",
            "stopped on request",
            "summary: 2 connections",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_over_udp_with_the_wrong_key_never_connects() {
    let acceptor = UdpAcceptor::bind(loopback(), UdpOptions::with_psk(vec![7; 32]))
        .await
        .unwrap();
    let server = Server::spawn(acceptor, ServerConfig::default()).unwrap();
    let url = format!("udp://{}", server.local_addr());
    let out = probe(vec![
        "--psk-hex".into(),
        "08".repeat(32),
        "--for".into(),
        "1".into(),
        url,
    ])
    .await;
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("summary: 0 connections"), "{stdout}");
    // The one attempt was still waiting for an answer when `--for` ended
    // the probe: cut short, not failed.
    assert!(stdout.contains("failed attempts 0"), "{stdout}");
    assert!(!stdout.contains("closed_locally x"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_ca_file_is_a_clear_error() {
    let missing = std::env::temp_dir().join("tether-cli-test-no-such-ca.pem");
    for scheme in ["tls", "quic"] {
        let out = probe(vec![
            "--ca".into(),
            missing.display().to_string(),
            format!("{scheme}://127.0.0.1:9"),
        ])
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{scheme}: {stderr}");
        assert!(
            stderr.contains("error") && stderr.contains("tether-cli-test-no-such-ca.pem"),
            "{scheme}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(out.stdout.is_empty(), "{scheme}: nothing on stdout");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_over_quic_verifies_the_server_against_the_given_ca() {
    use tether_transports::quic::{QuicAcceptor, QuicServerOptions};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "tether-cli-probe-quic-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let acceptor = QuicAcceptor::bind(loopback(), &QuicServerOptions::new(&cert, &key))
        .await
        .unwrap();
    let server = Server::spawn(acceptor, ServerConfig::default()).unwrap();
    let url = format!("quic://{}", server.local_addr());
    let ca = cert.display().to_string();

    let out = probe(vec![
        "--ca".into(),
        ca.clone(),
        "--server-name".into(),
        "localhost".into(),
        "--for".into(),
        "1".into(),
        url.clone(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for needle in [
        "probing quic://127.0.0.1:",
        "certificate for localhost checked against",
        "gen 1, dial took",
        "summary: 1 connections",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }

    // The certificate is for localhost, not for another name: refused.
    let out = probe(vec![
        "--ca".into(),
        ca,
        "--server-name".into(),
        "elsewhere.test".into(),
        "--for".into(),
        "1".into(),
        url,
    ])
    .await;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("tls_name_mismatch"), "{stdout}");
    // The detail says which name the certificate lacked.
    assert!(stdout.contains("elsewhere.test"), "{stdout}");
}
