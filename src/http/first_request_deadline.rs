//! A deadline on a connection's first request. poem's idle timeout restarts with every byte, so a
//! client trickling one header byte at a time (slowloris) could hold a connection — and a file
//! descriptor — forever. Until the server has written its first byte (a response, or the
//! WebSocket handshake), reads fail with `TimedOut` once the deadline passes; after that the
//! connection is a normal one.
use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Sleep,
};

pub struct FirstRequestDeadline<S> {
    inner: S,
    /// Present until the server first writes.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> FirstRequestDeadline<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        Self { inner, deadline: Some(Box::pin(tokio::time::sleep(limit))) }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstRequestDeadline<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(deadline) = self.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "no complete request in time")));
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstRequestDeadline<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.deadline = None;
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.deadline = None;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_first_request_times_out_but_an_answered_one_does_not() {
        let (client, server) = duplex(64);
        let mut guarded = FirstRequestDeadline::new(server, Duration::from_secs(10));
        let mut buf = [0u8; 8];
        let error = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(client);

        let (mut client, server) = duplex(64);
        let mut guarded = FirstRequestDeadline::new(server, Duration::from_secs(10));
        client.write_all(b"GET").await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 3);
        guarded.write_all(b"HTTP/1.1 200").await.unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
        client.write_all(b"more").await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 4, "after the first answer there is no deadline");
    }
}
