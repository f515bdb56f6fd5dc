//! The byte stream under a TLS [`StreamLink`](crate::stream::StreamLink):
//! rustls's stream plus the one TLS-specific rule for how a connection
//! ended.
//!
//! A TLS peer that closes in an orderly way sends close_notify first; the
//! stream then ends cleanly and `StreamLink` reports `PeerClosed`, as for a
//! TCP FIN. A TCP FIN (or a dead process's kernel closing the socket)
//! *without* close_notify is a truncation: rustls surfaces it as
//! `UnexpectedEof`, which the shared classifier would call an orderly
//! close. Here it becomes `ConnectionReset`, so it is reported as
//! `DisconnectReason::Reset`: the session ended abruptly, and data the
//! peer meant to send may be missing. A TCP RST under TLS is a reset
//! already.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TLS stream (client or server side) over TCP that reports truncation
/// as a reset.
pub struct TlsIo {
    inner: tokio_rustls::TlsStream<TcpStream>,
}

impl TlsIo {
    pub(crate) fn new(inner: tokio_rustls::TlsStream<TcpStream>) -> Self {
        Self { inner }
    }

    /// The TCP socket and the TLS session state (negotiated version, ALPN,
    /// handshake kind, peer certificates).
    pub fn get_ref(&self) -> (&TcpStream, &rustls::CommonState) {
        self.inner.get_ref()
    }
}

fn truncation_as_reset(err: io::Error) -> io::Error {
    if err.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(
            io::ErrorKind::ConnectionReset,
            "TLS connection truncated: the peer closed TCP without close_notify",
        )
    } else {
        err
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner)
            .poll_read(cx, buf)
            .map_err(truncation_as_reset)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Sends close_notify, then shuts down the TCP write side.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
