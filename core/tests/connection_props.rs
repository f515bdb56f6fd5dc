//! Properties of the connection machine over random traffic in simulated
//! time: whatever the sizes, chunking of the byte stream, receive-queue
//! limits and the moment a black hole starts, the server receives a
//! prefix of what the client sent, in order and without duplicates, each
//! side reports exactly one `Closed` at most, and a black hole is always
//! detected within the detection bound.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use std::time::{Duration, Instant};
use tether_core::connection::{Connection, ConnectionConfig, ConnectionEvent, Side};
use tether_core::liveness::{HeartbeatConfig, Policy};

fn config(recv_queue: usize) -> ConnectionConfig {
    ConnectionConfig {
        policy: Policy::Heartbeat(HeartbeatConfig::new(
            Duration::from_millis(50),
            Duration::from_millis(50),
            2,
        )),
        recv_queue,
        send_queue: 10_000,
        ..ConnectionConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_receiver_sees_a_prefix_in_order_and_one_end(
        sizes in prop::collection::vec(0usize..3000, 1..60),
        chunk in 64usize..4096,
        recv_queue in 1usize..8,
        cut_after in 0u64..400,
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut client = Connection::new(Side::Client, config(1024), now).unwrap();
        let mut server = Connection::new(Side::Server, config(recv_queue), now).unwrap();
        let sent: Vec<Bytes> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| Bytes::from(vec![(i % 251) as u8; n]))
            .collect();
        for m in &sent {
            client.send(m.clone()).unwrap();
        }
        let (mut wire_s, mut wire_c) = (BytesMut::new(), BytesMut::new());
        let (mut inbox_s, mut inbox_c) = (BytesMut::new(), BytesMut::new());
        let mut got: Vec<Bytes> = Vec::new();
        let (mut ends_c, mut ends_s) = (0, 0);
        let cut_at = t0 + Duration::from_millis(cut_after);
        let mut cut_seen = None;
        let mut opened = false;
        for _ in 0..20_000 {
            let cut = now >= cut_at;
            if cut && cut_seen.is_none() {
                cut_seen = Some(now);
            }
            client.poll_transmit(now, &mut wire_s);
            server.poll_transmit(now, &mut wire_c);
            // Deliver at most `chunk` bytes per turn each way.
            let n = wire_s.len().min(chunk);
            let piece = wire_s.split_to(n);
            if !cut { inbox_s.extend_from_slice(&piece); }
            let n = wire_c.len().min(chunk);
            let piece = wire_c.split_to(n);
            if !cut { inbox_c.extend_from_slice(&piece); }
            client.handle_written(now, 1, wire_s.len());
            server.handle_written(now, 1, wire_c.len());
            server.handle_bytes(now, &mut inbox_s);
            client.handle_bytes(now, &mut inbox_c);
            while let Some(e) = server.poll_event() {
                match e {
                    ConnectionEvent::Message(m) => got.push(m),
                    ConnectionEvent::Closed(_) => ends_s += 1,
                    ConnectionEvent::Connected { .. } => {}
                }
            }
            while let Some(e) = client.poll_event() {
                match e {
                    ConnectionEvent::Closed(_) => ends_c += 1,
                    ConnectionEvent::Connected { .. } => opened = true,
                    ConnectionEvent::Message(_) => {}
                }
            }
            if client.is_closed() && server.is_closed() {
                break;
            }
            let idle = wire_s.is_empty()
                && wire_c.is_empty()
                && inbox_s.is_empty()
                && inbox_c.is_empty()
                && !client.has_transmit()
                && !server.has_transmit();
            if idle || cut {
                let next = [client.poll_timeout(), server.poll_timeout()].into_iter().flatten().min();
                match next {
                    Some(t) => now = now.max(t),
                    None => break,
                }
                client.handle_timeout(now);
                server.handle_timeout(now);
            }
        }
        prop_assert!(got.len() <= sent.len());
        // Time stands still while bytes move, so a cut after the start
        // comes once everything was delivered: all of it arrived.
        if cut_after > 0 {
            prop_assert_eq!(got.len(), sent.len());
        }
        prop_assert_eq!(&got[..], &sent[..got.len()], "a prefix, in order");
        prop_assert!(ends_c <= 1 && ends_s <= 1);
        prop_assert_eq!(ends_c, 1, "the black hole was found");
        // Before the welcome the opening timeout rules; after it the cut
        // may come while writes are still queued, so detection is bounded
        // by the liveness bound plus the write-stall bound at most.
        let bound = if opened {
            client.detection_bound() * 2
        } else {
            client.config().opening_timeout
        };
        let cut_time = cut_seen.unwrap();
        prop_assert!(now - cut_time <= bound, "found after {:?}", now - cut_time);
    }
}
