//! A TCP connection as the server holds it: a deadline on every request it carries, and a place
//! among its client address's connections.
//!
//! poem's idle timeout restarts with every byte, so a client trickling one header line at a time
//! (slowloris) could hold a connection, and a file descriptor, forever; keep-alive lets it do so
//! after an honest first request too. So each request must arrive whole within a deadline that
//! starts when the server begins reading it (a new connection, or the first read after an
//! answer): until then reads fail with `TimedOut`. Once the connection becomes a WebSocket its own
//! deadlines (auth, pings, writes) take over.
use std::{
    future::Future,
    io,
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use dashmap::DashMap;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Sleep,
};

const SWITCHING_PROTOCOLS: &[u8] = b"HTTP/1.1 101 ";

enum Phase {
    /// Reading a request: it must be complete before the deadline.
    Reading(Pin<Box<Sleep>>),
    /// The server is answering; the next read starts the next request's deadline.
    Answering,
    /// The connection speaks another protocol now (a WebSocket).
    Upgraded,
}

pub struct GuardedConnection<S> {
    inner: S,
    limit: Duration,
    phase: Phase,
    _slot: Option<AddressSlot>,
}

impl<S> GuardedConnection<S> {
    pub fn new(inner: S, limit: Duration, slot: Option<AddressSlot>) -> Self {
        Self { inner, limit, phase: Phase::Reading(Box::pin(tokio::time::sleep(limit))), _slot: slot }
    }

    fn answering(&mut self, data: &[u8]) {
        match self.phase {
            Phase::Upgraded => {}
            _ if data.starts_with(SWITCHING_PROTOCOLS) => self.phase = Phase::Upgraded,
            _ => self.phase = Phase::Answering,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedConnection<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if matches!(self.phase, Phase::Answering) {
            let limit = self.limit;
            self.phase = Phase::Reading(Box::pin(tokio::time::sleep(limit)));
        }
        if let Phase::Reading(deadline) = &mut self.phase {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "no complete request in time")));
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedConnection<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.answering(data);
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty()).map(|b| &b[..]).unwrap_or_default();
        self.answering(first);
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

/// Open connections per client address.
#[derive(Clone, Default)]
pub struct AddressCounts(Arc<DashMap<IpAddr, usize>>);

impl AddressCounts {
    /// A place for one more connection from `address`, or `None` when it already has `max`.
    pub fn take(&self, address: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut count = self.0.entry(address).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot { counts: self.clone(), address })
    }
}

/// One connection's place among its address's; given back when the connection is dropped.
pub struct AddressSlot {
    counts: AddressCounts,
    address: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        self.counts.0.remove_if_mut(&self.address, |_, count| {
            *count -= 1;
            *count == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn every_request_on_a_connection_has_a_deadline_until_it_is_upgraded() {
        let (mut client, server) = duplex(64);
        let mut guarded = GuardedConnection::new(server, Duration::from_secs(10), None);
        let mut buf = [0u8; 8];
        client.write_all(b"GET").await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 3);
        guarded.write_all(b"HTTP/1.1 200").await.unwrap();
        // The next request on the kept-alive connection gets a deadline of its own.
        assert_eq!(guarded.read(&mut buf).await.unwrap_err().kind(), io::ErrorKind::TimedOut);

        let (mut client, server) = duplex(64);
        let mut guarded = GuardedConnection::new(server, Duration::from_secs(10), None);
        client.write_all(b"GET").await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 3);
        guarded.write_all(b"HTTP/1.1 101 Switching Protocols").await.unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
        client.write_all(b"frame").await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 5, "a WebSocket has deadlines of its own");
    }

    #[test]
    fn connections_are_counted_per_address_and_given_back() {
        let counts = AddressCounts::default();
        let address: IpAddr = [10, 0, 0, 1].into();
        let first = counts.take(address, 2).unwrap();
        let _second = counts.take(address, 2).unwrap();
        assert!(counts.take(address, 2).is_none());
        assert!(counts.take([10, 0, 0, 2].into(), 2).is_some());
        drop(first);
        assert!(counts.take(address, 2).is_some());
    }
}
