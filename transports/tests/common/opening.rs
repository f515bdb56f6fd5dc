//! tether's opening exchange by hand, for tests whose peer is a plain
//! socket playing a tether peer: the client's hello, the server's welcome.

use bytes::BytesMut;
use tether_core::codec::{decode, encode, Frame, Hello, HEADER_LEN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads one whole frame.
pub async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> Frame {
    let mut buf = BytesMut::zeroed(HEADER_LEN);
    stream.read_exact(&mut buf).await.expect("frame header");
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    buf.resize(HEADER_LEN + len, 0);
    stream
        .read_exact(&mut buf[HEADER_LEN..])
        .await
        .expect("frame body");
    decode(&mut buf, usize::MAX).unwrap().expect("one frame")
}

/// Writes one frame.
pub async fn write_frame<S: AsyncWrite + Unpin>(stream: &mut S, frame: Frame) {
    let mut buf = BytesMut::new();
    encode(&frame, usize::MAX, &mut buf).unwrap();
    stream.write_all(&buf).await.expect("frame written");
    stream.flush().await.expect("frame flushed");
}

/// The server half: reads the client's hello and answers with a welcome.
pub async fn welcome<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    match read_frame(stream).await {
        Frame::Hello(_) => write_frame(stream, Frame::Welcome(Hello::new(0))).await,
        other => panic!("expected the client's hello, got {other:?}"),
    }
}

/// The client half: writes a hello and reads the server's welcome.
pub async fn hello<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    write_frame(stream, Frame::Hello(Hello::new(0))).await;
    match read_frame(stream).await {
        Frame::Welcome(_) => {}
        other => panic!("expected the server's welcome, got {other:?}"),
    }
}

/// One data frame's bytes.
pub fn data_frame(payload: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let frame = Frame::Data(bytes::Bytes::copy_from_slice(payload));
    encode(&frame, usize::MAX, &mut buf).unwrap();
    buf.to_vec()
}
