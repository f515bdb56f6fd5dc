//! Scenario S3: kernel keepalive and TCP_USER_TIMEOUT are really set on the
//! socket (read back with getsockopt), on dialed, accepted and foreign
//! (caller-owned) sockets.

use socket2::SockRef;
use std::time::Duration;
use tether_transports::tcp::{Keepalive, TcpConnector, TcpOptions};
use tokio::net::{TcpListener, TcpStream};

fn custom() -> TcpOptions {
    TcpOptions {
        keepalive: Some(Keepalive {
            idle: Duration::from_secs(7),
            interval: Duration::from_secs(3),
            count: 4,
        }),
        user_timeout: Some(Duration::from_millis(12_500)),
        nodelay: true,
    }
}

#[tokio::test]
async fn dialed_socket_carries_the_options() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connector = TcpConnector::new("127.0.0.1", port, custom());
    let stream = connector.connect_stream().await.unwrap();
    let read = TcpOptions::read(SockRef::from(&stream)).unwrap();
    assert_eq!(read, custom());
    assert_eq!(
        custom().kernel_detection_bound(),
        Some(Duration::from_secs(19))
    );
}

#[tokio::test]
async fn default_options_fix_the_two_hour_default() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plain = TcpStream::connect(addr).await.unwrap();
    // The kernel's own default: keepalive off.
    let before = TcpOptions::read(SockRef::from(&plain)).unwrap();
    assert_eq!(before.keepalive, None);
    let connector = TcpConnector::new("127.0.0.1", addr.port(), TcpOptions::default());
    let tuned = connector.connect_stream().await.unwrap();
    let after = TcpOptions::read(SockRef::from(&tuned)).unwrap();
    let ka = after.keepalive.expect("keepalive on");
    assert!(ka.detection_bound() <= Duration::from_secs(60), "{ka:?}");
    assert!(after.user_timeout.is_some());
}

#[cfg(unix)]
#[tokio::test]
async fn a_foreign_socket_is_tuned_by_descriptor() {
    use std::os::fd::AsRawFd;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).await.unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    tether_transports::tcp::tune_fd(accepted.as_raw_fd(), &custom()).unwrap();
    assert_eq!(
        tether_transports::tcp::read_fd(accepted.as_raw_fd()).unwrap(),
        custom()
    );
    assert!(tether_transports::tcp::tune_fd(-1, &custom()).is_err());
    drop(client);
}

#[test]
fn bad_options_are_rejected_with_the_field_name() {
    let mut bad = custom();
    bad.keepalive = Some(Keepalive {
        idle: Duration::from_millis(10),
        interval: Duration::from_secs(1),
        count: 3,
    });
    let err = bad.validate().unwrap_err();
    assert_eq!(err.field, "tcp.keepalive.idle");
    let mut bad = custom();
    bad.user_timeout = Some(Duration::ZERO);
    assert_eq!(bad.validate().unwrap_err().field, "tcp.user_timeout");
}
