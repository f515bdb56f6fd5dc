//! Feeding and flushing, over real loopback TCP:
//!
//! * many tasks feed into one client at once while others `send` and the
//!   server reads: every message arrives, each task's in order — the
//!   writes that find the connection busy are left to the task holding
//!   it and none is lost or reordered on the way;
//! * a fed message nobody flushes still goes out, with the next write or
//!   on the connection's next heartbeat turn;
//! * the server's side feeds and flushes alike, through its connection
//!   handle and by id; a flush by an id that ended is refused.

#![cfg(feature = "tcp")]

mod common;

use bytes::Bytes;
use common::{
    fast_client, fast_server, tcp_client, tcp_server, wait_accepted, wait_closed, wait_connected,
};
use std::time::Duration;
use tether_transports::driver::{ClientConfig, ClientEvent, ServerConfig, ServerEvent};

/// A message naming its task and its place in that task's sequence.
fn tagged(task: u64, seq: u64, len: usize) -> Bytes {
    let mut msg = vec![(seq % 251) as u8; len.max(16)];
    msg[..8].copy_from_slice(&task.to_be_bytes());
    msg[8..16].copy_from_slice(&seq.to_be_bytes());
    Bytes::from(msg)
}

fn tag(msg: &[u8]) -> (usize, u64) {
    let task = u64::from_be_bytes(msg[..8].try_into().expect("8 bytes"));
    let seq = u64::from_be_bytes(msg[8..16].try_into().expect("8 bytes"));
    (task as usize, seq)
}

async fn next_client_message(client: &mut tether_transports::driver::Client) -> Bytes {
    match tokio::time::timeout(Duration::from_secs(10), client.next_event())
        .await
        .expect("a message came")
    {
        Some(ClientEvent::Message(m)) => m,
        other => panic!("expected a message: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_and_sends_from_many_tasks_arrive_whole_and_in_order() {
    const TASKS: u64 = 6;
    const EACH: u64 = 5_000;
    let mut server = tcp_server(ServerConfig::default()).await;
    let mut client = tcp_client(server.local_addr().port(), ClientConfig::default());
    wait_connected(&mut client, &mut Vec::new()).await;
    let mut seen = Vec::new();
    let id = wait_accepted(&mut server, &mut seen).await;
    let mut conn = server.take_conn(id).expect("the connection's handle");

    // Even tasks feed in bursts of varying length and flush; odd tasks
    // send one at a time. Sizes vary so that some messages are copied and
    // some go out as their own buffers.
    let senders: Vec<_> = (0..TASKS)
        .map(|task| {
            let handle = client.handle();
            tokio::spawn(async move {
                for seq in 0..EACH {
                    let len = [24, 64, 200, 3000][(seq % 4) as usize];
                    let msg = tagged(task, seq, len);
                    if task % 2 == 0 {
                        handle.feed(msg).await.expect("feed");
                        if seq % (7 + task) == 0 {
                            handle.flush();
                        }
                    } else {
                        handle.send(msg).await.expect("send");
                    }
                }
                handle.flush();
            })
        })
        .collect();

    let mut next = [0u64; TASKS as usize];
    let mut got = 0u64;
    let mut batch = Vec::new();
    while got < TASKS * EACH {
        let n = tokio::time::timeout(Duration::from_secs(20), conn.next_messages(&mut batch, 256))
            .await
            .unwrap_or_else(|_| panic!("after {got} messages ({next:?}) no more came"));
        assert!(n > 0, "the connection's messages ended early");
        for msg in batch.drain(..) {
            let (task, seq) = tag(&msg);
            assert_eq!(seq, next[task], "task {task}: in order, none lost");
            assert_eq!(msg.len(), [24, 64, 200, 3000][(seq % 4) as usize]);
            next[task] += 1;
            got += 1;
        }
    }
    for s in senders {
        s.await.expect("sender");
    }
    assert_eq!(next, [EACH; TASKS as usize]);
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fed_message_nobody_flushes_still_goes_out() {
    let mut server = tcp_server(fast_server()).await;
    let mut client = tcp_client(server.local_addr().port(), fast_client());
    wait_connected(&mut client, &mut Vec::new()).await;
    let mut seen = Vec::new();
    let id = wait_accepted(&mut server, &mut seen).await;
    let mut conn = server.take_conn(id).expect("the connection's handle");
    let handle = client.handle();

    // Fed and never flushed: the heartbeat turn writes it.
    handle
        .feed(tagged(0, 0, 32))
        .await
        .expect("feed while connected");
    let first = tokio::time::timeout(Duration::from_secs(10), conn.next_message())
        .await
        .expect("the fed message went out without a flush")
        .expect("the connection is up");
    assert_eq!(tag(&first), (0, 0));

    // Fed, then a send: the send's write carries both, in order.
    handle.feed(tagged(0, 1, 32)).await.expect("feed");
    handle.send(tagged(0, 2, 32)).await.expect("send");
    for seq in 1..=2 {
        let msg = tokio::time::timeout(Duration::from_secs(10), conn.next_message())
            .await
            .expect("the message came")
            .expect("the connection is up");
        assert_eq!(tag(&msg), (0, seq));
    }
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_feeds_and_flushes_by_handle_and_by_id() {
    let mut server = tcp_server(ServerConfig::default()).await;
    let port = server.local_addr().port();
    let mut seen = Vec::new();
    let mut a = tcp_client(port, ClientConfig::default());
    wait_connected(&mut a, &mut Vec::new()).await;
    let id_a = wait_accepted(&mut server, &mut seen).await;
    let mut b = tcp_client(port, ClientConfig::default());
    wait_connected(&mut b, &mut Vec::new()).await;
    let id_b = wait_accepted(&mut server, &mut seen).await;

    let conn_a = server.take_conn(id_a).expect("a's handle");
    const EACH: u64 = 300;
    for seq in 0..EACH {
        conn_a.feed(tagged(1, seq, 40)).await.expect("feed on a");
    }
    conn_a.flush();
    let by_id = server.handle();
    for seq in 0..EACH {
        by_id
            .feed(id_b, tagged(2, seq, 40))
            .await
            .expect("feed b by id");
    }
    by_id.flush(id_b).expect("flush b by id");

    for (client, task) in [(&mut a, 1usize), (&mut b, 2usize)] {
        for seq in 0..EACH {
            let msg = next_client_message(client).await;
            assert_eq!(tag(&msg), (task, seq), "in order, none lost");
        }
    }

    b.close();
    let (closed, _) = wait_closed(&mut server, &mut seen, Duration::from_secs(10)).await;
    assert_eq!(closed, id_b);
    assert!(
        by_id.flush(id_b).is_err(),
        "a flush by an ended id is refused"
    );
    assert!(
        by_id.feed(id_b, tagged(2, 0, 40)).await.is_err(),
        "a feed by an ended id is refused"
    );
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, ServerEvent::Message { .. })),
        "no message reached the server's events"
    );
    a.close();
}
