//! Scenario S0 on TCP: the server process is SIGKILLed and started again on
//! the same port; the client notices, backs off with jitter, reconnects,
//! reports each step exactly once, and its queued messages get through.

mod common;

use common::process::{serve_child_main, ChildConfig, ServerProcess};
use common::s0::{Proof, Restart, S0};
use common::*;
use std::time::Duration;
use tether_core::DisconnectReason;
use tether_transports::tcp::{TcpConnector, TcpOptions};

#[test]
#[ignore = "child-process entry point, started by the tests in this file"]
fn serve_child() {
    serve_child_main();
}

fn start(port: u16) -> ServerProcess {
    ServerProcess::start(&format!("tcp://127.0.0.1:{port}"), &ChildConfig::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_recovers_after_server_is_killed_and_restarted() {
    let server = start(0);
    let connector = TcpConnector::new("127.0.0.1", server.port, TcpOptions::default());
    let mut s0 = S0::connect(server, Proof::Echo, connector, fast_client()).await;
    let lost = s0
        .kill_and_restart(Restart::AfterRefusal, Duration::from_secs(5), start)
        .await;
    // The kernel of a killed process closes its sockets: FIN (or RST if
    // data was pending), never a silent hang.
    assert!(
        matches!(
            lost.reason,
            DisconnectReason::PeerClosed | DisconnectReason::Reset
        ),
        "{lost:?}"
    );
    s0.recover().await;
}
