//! Framing: application data, pings and pongs on one byte stream.
//!
//! Wire format of every frame: one kind byte, a 4-byte big-endian payload
//! length, then the payload.
//!
//! | kind | frame | payload |
//! |------|-------|---------|
//! | 0x01 | data  | application bytes (may be empty) |
//! | 0x02 | ping  | 8 bytes, opaque (the sender's timestamp) |
//! | 0x03 | pong  | the 8 bytes of the ping it answers |
//!
//! The decoder follows tokio-util's contract: `Ok(None)` means "need more
//! bytes"; a declared length over the configured maximum is an error raised
//! from the header alone, before any buffer is grown.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use tokio_util::codec::{Decoder, Encoder};
//! use tether_core::codec::{Frame, FrameCodec};
//!
//! let mut codec = FrameCodec::new(1024);
//! let mut buf = BytesMut::new();
//! codec.encode(Frame::Data(Bytes::from_static(b"hi")), &mut buf).unwrap();
//! codec.encode(Frame::Ping(7), &mut buf).unwrap();
//! assert_eq!(codec.decode(&mut buf).unwrap(), Some(Frame::Data(Bytes::from_static(b"hi"))));
//! assert_eq!(codec.decode(&mut buf).unwrap(), Some(Frame::Ping(7)));
//! assert_eq!(codec.decode(&mut buf).unwrap(), None);
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::io;
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder};

/// Bytes of the frame header (kind + length).
pub const HEADER_LEN: usize = 5;
/// Default maximum payload length: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

const KIND_DATA: u8 = 0x01;
const KIND_PING: u8 = 0x02;
const KIND_PONG: u8 = 0x03;

/// One unit on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Application payload.
    Data(Bytes),
    /// Liveness probe; the peer answers with a pong carrying the same value.
    Ping(u64),
    /// Answer to a ping.
    Pong(u64),
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
    /// The kind byte is not one this version knows.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// A ping or pong whose payload is not 8 bytes.
    #[error("control frame with a {0}-byte payload (expected 8)")]
    BadControlLength(usize),
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

/// Encoder and decoder of [`Frame`]s with a maximum payload length.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_len: usize,
}

impl FrameCodec {
    /// A codec that rejects payloads over `max_len` bytes (capped at
    /// `u32::MAX`).
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len: max_len.min(u32::MAX as usize),
        }
    }

    /// The maximum payload length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let kind = src[0];
        let len = u32::from_be_bytes([src[1], src[2], src[3], src[4]]) as usize;
        match kind {
            KIND_DATA => {
                if len > self.max_len {
                    return Err(CodecError::FrameTooLong {
                        len,
                        max: self.max_len,
                    });
                }
            }
            KIND_PING | KIND_PONG => {
                if len != 8 {
                    return Err(CodecError::BadControlLength(len));
                }
            }
            other => return Err(CodecError::UnknownKind(other)),
        }
        if src.len() < HEADER_LEN + len {
            src.reserve(HEADER_LEN + len - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let payload = src.split_to(len);
        Ok(Some(match kind {
            KIND_DATA => Frame::Data(payload.freeze()),
            KIND_PING => Frame::Ping(u64::from_be_bytes(control(&payload))),
            _ => Frame::Pong(u64::from_be_bytes(control(&payload))),
        }))
    }
}

fn control(payload: &[u8]) -> [u8; 8] {
    let mut v = [0u8; 8];
    v.copy_from_slice(&payload[..8]);
    v
}

impl Encoder<Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        match frame {
            Frame::Data(bytes) => {
                if bytes.len() > self.max_len {
                    return Err(CodecError::FrameTooLong {
                        len: bytes.len(),
                        max: self.max_len,
                    });
                }
                dst.reserve(HEADER_LEN + bytes.len());
                dst.put_u8(KIND_DATA);
                dst.put_u32(bytes.len() as u32);
                dst.extend_from_slice(&bytes);
            }
            Frame::Ping(v) | Frame::Pong(v) => {
                dst.reserve(HEADER_LEN + 8);
                dst.put_u8(if matches!(frame, Frame::Ping(_)) {
                    KIND_PING
                } else {
                    KIND_PONG
                });
                dst.put_u32(8);
                dst.put_u64(v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_header_is_rejected_before_allocating() {
        let mut codec = FrameCodec::new(100);
        let mut buf = BytesMut::from(&[KIND_DATA, 0xff, 0xff, 0xff, 0xff][..]);
        let cap = buf.capacity();
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::FrameTooLong {
                len: 0xffff_ffff,
                max: 100
            })
        ));
        assert_eq!(buf.capacity(), cap);
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut codec = FrameCodec::default();
        let mut full = BytesMut::new();
        codec
            .encode(Frame::Data(Bytes::from_static(b"hello")), &mut full)
            .unwrap();
        let mut buf = BytesMut::new();
        for (i, b) in full.iter().enumerate() {
            buf.put_u8(*b);
            let got = codec.decode(&mut buf).unwrap();
            if i + 1 < full.len() {
                assert_eq!(got, None);
            } else {
                assert_eq!(got, Some(Frame::Data(Bytes::from_static(b"hello"))));
            }
        }
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(err.is_protocol());
        let mut buf = BytesMut::from(&[KIND_PING, 0, 0, 0, 3, 1, 2, 3][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::BadControlLength(3))
        ));
    }

    #[test]
    fn encoder_refuses_oversized_data() {
        let mut codec = FrameCodec::new(4);
        let mut buf = BytesMut::new();
        assert!(codec
            .encode(Frame::Data(Bytes::from_static(b"12345")), &mut buf)
            .is_err());
        assert!(buf.is_empty());
    }
}
