//! Receiving in the application's task, over real loopback TCP:
//!
//! * a client application that stops reading holds the server back: the
//!   client keeps at most `max_received` messages, stops reading its
//!   socket, the kernel buffers fill and the server's queue reports
//!   `Full`; nothing is lost, and once the application reads again every
//!   message arrives in order;
//! * a server connection's own handle (`Server::take_conn`): messages in
//!   order from its task, sends through it, one handle per connection,
//!   the end of its messages after the connection closes, and `Closed`
//!   still reported once by the server.

#![cfg(feature = "tcp")]

mod common;

use bytes::Bytes;
use common::{tcp_client, tcp_server, wait_accepted, wait_closed, wait_connected};
use std::time::Duration;
use tether_core::DisconnectReason;
use tether_transports::driver::{ClientConfig, ClientEvent, ServerConfig, ServerSendError};

fn numbered(i: u64, len: usize) -> Bytes {
    let mut msg = vec![(i % 251) as u8; len];
    msg[..8].copy_from_slice(&i.to_be_bytes());
    Bytes::from(msg)
}

fn number(msg: &[u8]) -> u64 {
    u64::from_be_bytes(msg[..8].try_into().expect("8 bytes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_the_server_back_and_loses_nothing() {
    let mut server = tcp_server(ServerConfig {
        send_queue: 64,
        ..ServerConfig::default()
    })
    .await;
    let mut client = tcp_client(
        server.local_addr().port(),
        ClientConfig {
            max_received: 16,
            ..ClientConfig::default()
        },
    );
    let mut steps = Vec::new();
    wait_connected(&mut client, &mut steps).await;
    let mut seen = Vec::new();
    let id = wait_accepted(&mut server, &mut seen).await;

    // 16 KiB messages until the server's queue is full: the client's
    // application reads nothing meanwhile. Unbounded reading would take
    // them all (the loopback never fills); a bounded one stops within
    // the socket buffers (a few MiB) plus the queues.
    const LEN: usize = 16 * 1024;
    const CAP: u64 = 100_000;
    let mut sent = 0u64;
    let mut full_seen = false;
    while sent < CAP {
        match server.try_send(id, numbered(sent, LEN)) {
            Ok(()) => sent += 1,
            Err(ServerSendError::Full) => {
                // Give the client's side every chance to read more.
                tokio::time::sleep(Duration::from_millis(100)).await;
                match server.try_send(id, numbered(sent, LEN)) {
                    Ok(()) => sent += 1,
                    Err(ServerSendError::Full) => {
                        full_seen = true;
                        break;
                    }
                    Err(e) => panic!("send failed: {e}"),
                }
            }
            Err(e) => panic!("send failed: {e}"),
        }
    }
    assert!(
        full_seen,
        "the server's queue never filled after {sent} messages of {LEN} bytes: the client kept reading"
    );

    let mut next = 0u64;
    let mut events = Vec::new();
    while next < sent {
        let n = tokio::time::timeout(
            Duration::from_secs(20),
            client.next_events(&mut events, 256),
        )
        .await
        .unwrap_or_else(|_| panic!("message {next} of {sent} never came"));
        assert!(n > 0, "client events ended");
        for event in events.drain(..) {
            match event {
                ClientEvent::Message(m) => {
                    assert_eq!((m.len(), number(&m)), (LEN, next), "in order, none lost");
                    next += 1;
                }
                other => panic!("unexpected event: {other:?}"),
            }
        }
    }
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_server_connection_reads_sends_and_ends_once() {
    let mut server = tcp_server(ServerConfig::default()).await;
    let mut client = tcp_client(server.local_addr().port(), ClientConfig::default());
    let mut steps = Vec::new();
    wait_connected(&mut client, &mut steps).await;
    let mut seen = Vec::new();
    let id = wait_accepted(&mut server, &mut seen).await;
    let mut conn = server.take_conn(id).expect("the first take");
    assert_eq!(conn.id(), id);
    assert!(server.take_conn(id).is_none(), "one handle per connection");

    const COUNT: u64 = 10_000;
    let handle = client.handle();
    let sender = tokio::spawn(async move {
        for i in 0..COUNT {
            handle.send(numbered(i, 32)).await.expect("send");
        }
    });
    let mut got = 0u64;
    let mut batch = Vec::new();
    while got < COUNT {
        let n = tokio::time::timeout(Duration::from_secs(20), conn.next_messages(&mut batch, 512))
            .await
            .unwrap_or_else(|_| panic!("message {got} never came"));
        assert!(n > 0, "the connection's messages ended early");
        for msg in batch.drain(..) {
            assert_eq!(number(&msg), got, "in order, none lost");
            got += 1;
        }
    }
    sender.await.expect("sender");
    // None of them went the server's way as well.
    while let Some(event) = server.try_next_event() {
        assert!(
            !matches!(
                event,
                tether_transports::driver::ServerEvent::Message { .. }
            ),
            "a message reported twice: {event:?}"
        );
    }

    conn.send(Bytes::from_static(b"from the handle"))
        .await
        .expect("send through the handle");
    let reply = match tokio::time::timeout(Duration::from_secs(10), client.next_event())
        .await
        .expect("the reply came")
    {
        Some(ClientEvent::Message(m)) => m,
        Some(ClientEvent::Lifecycle(step)) => panic!("connection changed: {step:?}"),
        other => panic!("unexpected: {other:?}"),
    };
    assert_eq!(&reply[..], b"from the handle");

    conn.close().expect("the first close");
    assert!(conn.close().is_err(), "a second close is refused");
    let end = tokio::time::timeout(Duration::from_secs(10), conn.next_message())
        .await
        .expect("the end came");
    assert_eq!(end, None, "the messages end with the connection");
    let (closed, reason) = wait_closed(&mut server, &mut seen, Duration::from_secs(10)).await;
    assert_eq!((closed, reason), (id, DisconnectReason::ClosedLocally));
    assert!(server.send(id, Bytes::from_static(b"late")).await.is_err());
    assert!(
        server.take_conn(id).is_none(),
        "no handle for a closed connection"
    );
    client.close();
}

/// `ServerHandle` finds connections by id without a lock: sends from many
/// tasks at once reach every connection, each task's in order; an id that
/// ended is refused, also after a new connection took over its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_handles_send_by_id_from_many_tasks_and_refuse_ended_ids() {
    const TASKS: u64 = 4;
    const EACH: u64 = 500;
    let mut server = tcp_server(ServerConfig::default()).await;
    let port = server.local_addr().port();
    let mut seen = Vec::new();
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut client = tcp_client(port, ClientConfig::default());
        wait_connected(&mut client, &mut Vec::new()).await;
        ids.push(wait_accepted(&mut server, &mut seen).await);
        clients.push(client);
    }
    let senders: Vec<_> = (0..TASKS)
        .map(|task| {
            let (handle, ids) = (server.handle(), ids.clone());
            tokio::spawn(async move {
                for seq in 0..EACH {
                    for id in &ids {
                        let mut msg = numbered(seq, 16);
                        msg = Bytes::from([&msg[..8], &task.to_be_bytes()[..]].concat());
                        handle.send(*id, msg).await.expect("send by id");
                    }
                }
            })
        })
        .collect();
    for client in &mut clients {
        let mut next = [0u64; TASKS as usize];
        let mut got = 0;
        while got < TASKS * EACH {
            match tokio::time::timeout(Duration::from_secs(20), client.next_event())
                .await
                .expect("messages keep coming")
            {
                Some(ClientEvent::Message(m)) => {
                    let task = u64::from_be_bytes(m[8..16].try_into().unwrap()) as usize;
                    assert_eq!(number(&m), next[task], "each task's messages in order");
                    next[task] += 1;
                    got += 1;
                }
                other => panic!("unexpected: {other:?}"),
            }
        }
    }
    for s in senders {
        s.await.expect("sender");
    }

    // One client leaves; its id is refused from then on.
    let gone = ids[0];
    clients.remove(0).close();
    let (closed, _) = wait_closed(&mut server, &mut seen, Duration::from_secs(10)).await;
    assert_eq!(closed, gone);
    let handle = server.handle();
    assert!(matches!(
        handle.try_send(gone, Bytes::from_static(b"late")),
        Err(ServerSendError::Handle(_))
    ));
    // A new connection reuses the slot under a new generation: the old id
    // stays refused, the new one works.
    let mut client = tcp_client(port, ClientConfig::default());
    wait_connected(&mut client, &mut Vec::new()).await;
    let fresh = wait_accepted(&mut server, &mut seen).await;
    assert_ne!(fresh, gone);
    assert_eq!(fresh.index(), gone.index(), "the freed slot was reused");
    assert!(handle.try_send(gone, Bytes::from_static(b"late")).is_err());
    handle
        .try_send(fresh, Bytes::from_static(b"hello"))
        .expect("the new connection takes sends");
    match tokio::time::timeout(Duration::from_secs(10), client.next_event())
        .await
        .expect("the message came")
    {
        Some(ClientEvent::Message(m)) => assert_eq!(&m[..], b"hello"),
        other => panic!("unexpected: {other:?}"),
    }
}
