//! The datagram layout (see the table in the module docs of `udp`).

/// Protocol version carried in every datagram.
pub(super) const VERSION: u8 = 1;
/// Bytes before the body: version, type, session id, sequence number.
pub(super) const HEADER_LEN: usize = 18;
/// Bytes of the truncated HMAC-SHA256 tag that ends authenticated packets.
pub(super) const MAC_LEN: usize = 16;
/// Bytes of a handshake nonce.
pub(super) const NONCE_LEN: usize = 32;
/// Bytes of a stateless reset token.
pub(super) const TOKEN_LEN: usize = 16;
/// Bytes a data packet adds around the application payload: header, the
/// codec's frame header, MAC.
pub(super) const DATA_OVERHEAD: usize = HEADER_LEN + tether_core::codec::HEADER_LEN + MAC_LEN;

/// The packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Kind {
    Hello = 1,
    Welcome = 2,
    Data = 3,
    Close = 4,
    UnknownSession = 5,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Hello,
            2 => Self::Welcome,
            3 => Self::Data,
            4 => Self::Close,
            5 => Self::UnknownSession,
            _ => return None,
        })
    }
}

/// A parsed datagram, borrowing from the receive buffer. Nothing in it is
/// trusted until the MAC (or, for `UnknownSession`, the token) is checked.
#[derive(Debug)]
pub(super) struct Packet<'a> {
    pub kind: Kind,
    pub session: u64,
    pub seq: u64,
    pub body: &'a [u8],
    /// Everything the MAC covers (header and body).
    pub signed: &'a [u8],
    /// The tag; empty for `UnknownSession`, which carries a token instead.
    pub mac: &'a [u8],
}

/// Parses the fixed layout; `None` for anything too short, of another
/// version or of an unknown type.
pub(super) fn parse(datagram: &[u8]) -> Option<Packet<'_>> {
    if datagram.len() < HEADER_LEN || datagram[0] != VERSION {
        return None;
    }
    let kind = Kind::from_u8(datagram[1])?;
    let session = u64::from_be_bytes(datagram[2..10].try_into().ok()?);
    let seq = u64::from_be_bytes(datagram[10..18].try_into().ok()?);
    if kind == Kind::UnknownSession {
        let body = &datagram[HEADER_LEN..];
        return (body.len() == TOKEN_LEN).then_some(Packet {
            kind,
            session,
            seq,
            body,
            signed: datagram,
            mac: &[],
        });
    }
    if datagram.len() < HEADER_LEN + MAC_LEN {
        return None;
    }
    let (signed, mac) = datagram.split_at(datagram.len() - MAC_LEN);
    Some(Packet {
        kind,
        session,
        seq,
        body: &signed[HEADER_LEN..],
        signed,
        mac,
    })
}

/// Appends the header to `out`.
pub(super) fn put_header(out: &mut Vec<u8>, kind: Kind, session: u64, seq: u64) {
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&session.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips() {
        let mut p = Vec::new();
        put_header(&mut p, Kind::Data, 0x0102_0304_0506_0708, 9);
        p.extend_from_slice(b"body");
        p.extend_from_slice(&[0xaa; MAC_LEN]);
        let got = parse(&p).unwrap();
        assert_eq!(got.kind, Kind::Data);
        assert_eq!(got.session, 0x0102_0304_0506_0708);
        assert_eq!(got.seq, 9);
        assert_eq!(got.body, b"body");
        assert_eq!(got.mac, &[0xaa; MAC_LEN]);
        assert_eq!(got.signed.len(), HEADER_LEN + 4);
    }

    #[test]
    fn junk_is_rejected() {
        assert!(parse(b"").is_none());
        let mut bad_type = [0u8; HEADER_LEN + MAC_LEN];
        bad_type[0] = VERSION;
        bad_type[1] = 9;
        assert!(parse(&bad_type).is_none(), "unknown type");
        let mut p = Vec::new();
        put_header(&mut p, Kind::Data, 1, 1);
        assert!(parse(&p).is_none(), "no room for a MAC");
        p[0] = 2;
        p.extend_from_slice(&[0; MAC_LEN]);
        assert!(parse(&p).is_none(), "other version");
        let mut r = Vec::new();
        put_header(&mut r, Kind::UnknownSession, 1, 0);
        r.extend_from_slice(&[0; TOKEN_LEN - 1]);
        assert!(parse(&r).is_none(), "short token");
    }
}
