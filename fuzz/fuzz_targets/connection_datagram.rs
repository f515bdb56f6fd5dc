//! The connection machine over datagrams, fed by a peer that sends
//! anything (see `tether_fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|input: tether_fuzz::Input| {
    tether_fuzz::run(tether_fuzz::Carrier::Datagram, input);
});
