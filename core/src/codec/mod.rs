//! Framing: application data, pings, pongs and the opening hello on one
//! byte stream (or one frame per datagram).
//!
//! Wire format of every frame: one kind byte, a 4-byte big-endian payload
//! length, then the payload.
//!
//! | kind | frame | payload |
//! |------|-------|---------|
//! | 0x01 | data  | application bytes (may be empty) |
//! | 0x02 | ping  | 8 bytes, opaque (the sender's timestamp) |
//! | 0x03 | pong  | the 8 bytes of the ping it answers |
//! | 0x04 | hello | client → server: version (u16), capabilities (u64), then extension bytes |
//! | 0x05 | welcome | server → client: the same layout, the server's answer |
//! | 0x06–0x7f | reserved | must be understood: sent only once the hello negotiated them (the session layer's frames live here); unknown is a protocol error |
//! | 0x80–0xff | extension | may be ignored: a receiver that does not know the kind skips the frame |
//!
//! Encoding and decoding are plain functions over `BytesMut`
//! ([`encode`], [`decode`]), with no runtime behind them (the transports
//! wrap them for tokio-util's `Framed`). A decoder returns `Ok(None)` for "need more bytes"; a declared
//! length over the maximum is an error raised from the header alone,
//! before any buffer is grown.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use tether_core::codec::{decode, encode, Frame};
//!
//! let mut buf = BytesMut::new();
//! encode(&Frame::Data(Bytes::from_static(b"hi")), 1024, &mut buf).unwrap();
//! encode(&Frame::Ping(7), 1024, &mut buf).unwrap();
//! assert_eq!(decode(&mut buf, 1024).unwrap(), Some(Frame::Data(Bytes::from_static(b"hi"))));
//! assert_eq!(decode(&mut buf, 1024).unwrap(), Some(Frame::Ping(7)));
//! assert_eq!(decode(&mut buf, 1024).unwrap(), None);
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::io;
use thiserror::Error;

/// Bytes of the frame header (kind + length).
pub const HEADER_LEN: usize = 5;
/// Default maximum payload length: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// The protocol version this build speaks.
pub const VERSION: u16 = 1;
/// Bytes of a hello's fixed part (version + capabilities).
pub const HELLO_LEN: usize = 10;
/// Largest hello or welcome payload accepted (fixed part + extensions).
pub const MAX_HELLO: usize = 4096;

const KIND_DATA: u8 = 0x01;
const KIND_PING: u8 = 0x02;
const KIND_PONG: u8 = 0x03;
const KIND_HELLO: u8 = 0x04;
const KIND_WELCOME: u8 = 0x05;
/// The first kind that a receiver may skip when it does not know it.
pub const FIRST_IGNORABLE: u8 = 0x80;

/// The opening exchange of a connection: what each side speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version ([`VERSION`]).
    pub version: u16,
    /// Capability bits; a feature is on when both sides set its bit.
    pub capabilities: u64,
    /// Extension bytes after the fixed part (e.g. a session resume
    /// request); a side that knows no extension ignores them.
    pub extra: Bytes,
}

impl Hello {
    /// This build's hello with `capabilities`.
    pub fn new(capabilities: u64) -> Self {
        Self {
            version: VERSION,
            capabilities,
            extra: Bytes::new(),
        }
    }
}

/// One unit on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Application payload.
    Data(Bytes),
    /// Liveness probe; the peer answers with a pong carrying the same value.
    Ping(u64),
    /// Answer to a ping.
    Pong(u64),
    /// Client → server, first frame of a connection.
    Hello(Hello),
    /// Server → client, the answer to `Hello`.
    Welcome(Hello),
    /// A frame of an ignorable kind (0x80–0xff) this version does not know;
    /// its payload was skipped.
    Skipped {
        /// The kind byte.
        kind: u8,
    },
}

/// Why a byte stream could not be framed.
#[derive(Debug, Error)]
pub enum CodecError {
    /// A frame declared (or was asked to carry) more than the maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLong {
        /// The length declared or requested.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The kind byte is not one this version knows (and not ignorable).
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// A ping or pong whose payload is not 8 bytes.
    #[error("control frame with a {0}-byte payload (expected 8)")]
    BadControlLength(usize),
    /// A hello or welcome shorter than its fixed part, or longer than
    /// [`MAX_HELLO`].
    #[error("hello frame with a {0}-byte payload (expected {HELLO_LEN} to {MAX_HELLO})")]
    BadHelloLength(usize),
    /// The underlying stream failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl CodecError {
    /// True when the peer broke the protocol (as opposed to an I/O failure).
    pub fn is_protocol(&self) -> bool {
        !matches!(self, Self::Io(_))
    }
}

/// Checks a frame header: the payload length the kind allows.
fn check_header(kind: u8, len: usize, max_len: usize) -> Result<(), CodecError> {
    match kind {
        KIND_DATA if len > max_len => Err(CodecError::FrameTooLong { len, max: max_len }),
        KIND_DATA => Ok(()),
        KIND_PING | KIND_PONG if len != 8 => Err(CodecError::BadControlLength(len)),
        KIND_PING | KIND_PONG => Ok(()),
        KIND_HELLO | KIND_WELCOME if !(HELLO_LEN..=MAX_HELLO).contains(&len) => {
            Err(CodecError::BadHelloLength(len))
        }
        KIND_HELLO | KIND_WELCOME => Ok(()),
        k if k >= FIRST_IGNORABLE && len > max_len => {
            Err(CodecError::FrameTooLong { len, max: max_len })
        }
        k if k >= FIRST_IGNORABLE => Ok(()),
        other => Err(CodecError::UnknownKind(other)),
    }
}

/// Takes one whole frame off the front of `src`; `Ok(None)` when `src`
/// holds only part of one (it is left as it is, with room reserved for the
/// rest). `max_len` bounds data and extension payloads.
pub fn decode(src: &mut BytesMut, max_len: usize) -> Result<Option<Frame>, CodecError> {
    if src.len() < HEADER_LEN {
        return Ok(None);
    }
    let kind = src[0];
    let len = u32::from_be_bytes([src[1], src[2], src[3], src[4]]) as usize;
    check_header(kind, len, max_len.min(u32::MAX as usize))?;
    if src.len() < HEADER_LEN + len {
        src.reserve(HEADER_LEN + len - src.len());
        return Ok(None);
    }
    src.advance(HEADER_LEN);
    let payload = src.split_to(len);
    Ok(Some(parse(kind, payload.freeze())))
}

/// Decodes a datagram that carries exactly one frame.
pub fn decode_datagram(datagram: Bytes, max_len: usize) -> Result<Frame, CodecError> {
    if datagram.len() < HEADER_LEN {
        return Err(CodecError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "datagram of {} bytes is shorter than a frame header",
                datagram.len()
            ),
        )));
    }
    let kind = datagram[0];
    let len = u32::from_be_bytes([datagram[1], datagram[2], datagram[3], datagram[4]]) as usize;
    check_header(kind, len, max_len.min(u32::MAX as usize))?;
    if datagram.len() != HEADER_LEN + len {
        return Err(CodecError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "datagram of {} bytes holds a frame of {}",
                datagram.len(),
                HEADER_LEN + len
            ),
        )));
    }
    Ok(parse(kind, datagram.slice(HEADER_LEN..)))
}

fn parse(kind: u8, payload: Bytes) -> Frame {
    match kind {
        KIND_DATA => Frame::Data(payload),
        KIND_PING => Frame::Ping(u64::from_be_bytes(control(&payload))),
        KIND_PONG => Frame::Pong(u64::from_be_bytes(control(&payload))),
        KIND_HELLO | KIND_WELCOME => {
            let hello = Hello {
                version: u16::from_be_bytes([payload[0], payload[1]]),
                capabilities: u64::from_be_bytes(control(&payload[2..])),
                extra: payload.slice(HELLO_LEN..),
            };
            if kind == KIND_HELLO {
                Frame::Hello(hello)
            } else {
                Frame::Welcome(hello)
            }
        }
        kind => Frame::Skipped { kind },
    }
}

fn control(payload: &[u8]) -> [u8; 8] {
    let mut v = [0u8; 8];
    v.copy_from_slice(&payload[..8]);
    v
}

/// The bytes `frame` takes on the wire.
pub fn encoded_len(frame: &Frame) -> usize {
    HEADER_LEN
        + match frame {
            Frame::Data(bytes) => bytes.len(),
            Frame::Ping(_) | Frame::Pong(_) => 8,
            Frame::Hello(h) | Frame::Welcome(h) => HELLO_LEN + h.extra.len(),
            Frame::Skipped { .. } => 0,
        }
}

/// Appends `frame` to `dst`. Fails, writing nothing, for data over
/// `max_len` or a hello over [`MAX_HELLO`].
pub fn encode(frame: &Frame, max_len: usize, dst: &mut BytesMut) -> Result<(), CodecError> {
    let max_len = max_len.min(u32::MAX as usize);
    match frame {
        Frame::Data(bytes) => {
            if bytes.len() > max_len {
                return Err(CodecError::FrameTooLong {
                    len: bytes.len(),
                    max: max_len,
                });
            }
            dst.reserve(HEADER_LEN + bytes.len());
            dst.put_u8(KIND_DATA);
            dst.put_u32(bytes.len() as u32);
            dst.extend_from_slice(bytes);
        }
        Frame::Ping(v) | Frame::Pong(v) => {
            dst.reserve(HEADER_LEN + 8);
            dst.put_u8(if matches!(frame, Frame::Ping(_)) {
                KIND_PING
            } else {
                KIND_PONG
            });
            dst.put_u32(8);
            dst.put_u64(*v);
        }
        Frame::Hello(h) | Frame::Welcome(h) => {
            let len = HELLO_LEN + h.extra.len();
            if len > MAX_HELLO {
                return Err(CodecError::BadHelloLength(len));
            }
            dst.reserve(HEADER_LEN + len);
            dst.put_u8(if matches!(frame, Frame::Hello(_)) {
                KIND_HELLO
            } else {
                KIND_WELCOME
            });
            dst.put_u32(len as u32);
            dst.put_u16(h.version);
            dst.put_u64(h.capabilities);
            dst.extend_from_slice(&h.extra);
        }
        Frame::Skipped { kind } => {
            dst.reserve(HEADER_LEN);
            dst.put_u8(*kind);
            dst.put_u32(0);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAXLEN: usize = 100;

    #[test]
    fn oversized_header_is_rejected_before_allocating() {
        let mut buf = BytesMut::from(&[KIND_DATA, 0xff, 0xff, 0xff, 0xff][..]);
        let cap = buf.capacity();
        assert!(matches!(
            decode(&mut buf, MAXLEN),
            Err(CodecError::FrameTooLong {
                len: 0xffff_ffff,
                max: 100
            })
        ));
        assert_eq!(buf.capacity(), cap);
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut full = BytesMut::new();
        encode(
            &Frame::Data(Bytes::from_static(b"hello")),
            MAXLEN,
            &mut full,
        )
        .unwrap();
        let mut buf = BytesMut::new();
        for (i, b) in full.iter().enumerate() {
            buf.put_u8(*b);
            let got = decode(&mut buf, MAXLEN).unwrap();
            if i + 1 < full.len() {
                assert_eq!(got, None);
            } else {
                assert_eq!(got, Some(Frame::Data(Bytes::from_static(b"hello"))));
            }
        }
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        let err = decode(&mut buf, MAXLEN).unwrap_err();
        assert!(err.is_protocol());
        let mut buf = BytesMut::from(&[KIND_PING, 0, 0, 0, 3, 1, 2, 3][..]);
        assert!(matches!(
            decode(&mut buf, MAXLEN),
            Err(CodecError::BadControlLength(3))
        ));
    }

    #[test]
    fn encoder_refuses_oversized_data() {
        let mut buf = BytesMut::new();
        assert!(encode(&Frame::Data(Bytes::from_static(b"12345")), 4, &mut buf).is_err());
        assert!(buf.is_empty());
    }

    #[test]
    fn hellos_round_trip_with_their_extensions() {
        let mut buf = BytesMut::new();
        let hello = Hello {
            version: VERSION,
            capabilities: 0b101,
            extra: Bytes::from_static(b"resume me"),
        };
        encode(&Frame::Hello(hello.clone()), 16, &mut buf).unwrap();
        encode(&Frame::Welcome(Hello::new(1)), 16, &mut buf).unwrap();
        let first = buf.len();
        assert_eq!(decode(&mut buf, 16).unwrap(), Some(Frame::Hello(hello)));
        assert!(buf.len() < first);
        assert_eq!(
            decode(&mut buf, 16).unwrap(),
            Some(Frame::Welcome(Hello::new(1)))
        );
        let short = [KIND_HELLO, 0, 0, 0, 3, 0, 1, 0];
        assert!(matches!(
            decode(&mut BytesMut::from(&short[..]), 16),
            Err(CodecError::BadHelloLength(3))
        ));
    }

    #[test]
    fn unknown_kinds_are_skipped_only_in_the_ignorable_range() {
        let mut buf = BytesMut::from(&[0x9a, 0, 0, 0, 2, 7, 7, KIND_PING, 0, 0, 0, 8][..]);
        buf.extend_from_slice(&5u64.to_be_bytes());
        assert_eq!(
            decode(&mut buf, 16).unwrap(),
            Some(Frame::Skipped { kind: 0x9a })
        );
        assert_eq!(decode(&mut buf, 16).unwrap(), Some(Frame::Ping(5)));
        // A reserved must-understand kind (a session frame nobody
        // negotiated) is an error.
        let mut buf = BytesMut::from(&[0x10, 0, 0, 0, 0][..]);
        assert!(matches!(
            decode(&mut buf, 16),
            Err(CodecError::UnknownKind(0x10))
        ));
        // An ignorable frame is still bounded.
        let mut buf = BytesMut::from(&[0xff, 0, 0, 1, 0][..]);
        assert!(matches!(
            decode(&mut buf, 16),
            Err(CodecError::FrameTooLong { .. })
        ));
    }

    #[test]
    fn a_datagram_holds_exactly_one_frame() {
        let mut buf = BytesMut::new();
        encode(&Frame::Pong(9), 16, &mut buf).unwrap();
        let one = buf.clone().freeze();
        assert_eq!(decode_datagram(one.clone(), 16).unwrap(), Frame::Pong(9));
        assert_eq!(encoded_len(&Frame::Pong(9)), one.len());
        encode(&Frame::Pong(9), 16, &mut buf).unwrap();
        assert!(decode_datagram(buf.freeze(), 16).is_err());
        assert!(decode_datagram(one.slice(..3), 16).is_err());
    }
}
