//! tether's frames for tokio-util's `Framed`: a thin adapter over the
//! plain functions of `tether_core::codec`, which stays free of any
//! runtime.

use bytes::BytesMut;
use tether_core::codec::{decode, encode, CodecError, Frame, DEFAULT_MAX_FRAME};
use tokio_util::codec::{Decoder, Encoder};

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
        decode(src, self.max_len)
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode(&frame, self.max_len, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn framed_and_plain_functions_agree() {
        let mut codec = FrameCodec::new(8);
        let mut buf = BytesMut::new();
        codec.encode(Frame::Ping(3), &mut buf).unwrap();
        assert!(codec
            .encode(Frame::Data(Bytes::from_static(b"too long!")), &mut buf)
            .is_err());
        assert_eq!(decode(&mut buf.clone(), 8).unwrap(), Some(Frame::Ping(3)));
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Frame::Ping(3)));
    }
}
