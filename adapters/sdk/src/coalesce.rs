//! A served connection whose writes are gathered until HTTP/2 has written
//! everything it has to send.
//!
//! HTTP/2 (h2) hands a connection its frames in several writes, and over
//! TLS each write becomes a record and a system call of its own, for
//! which the peer wakes up once more. h2 copies frames into one buffer,
//! except a DATA frame of 1 KiB or more (256 bytes if the connection
//! takes vectored writes), which it writes by reference, *and flushes*
//! before it buffers the next frame. So a unary answer used to leave as
//! two or three records (headers, message, trailers).
//!
//! [`Coalesced`] therefore (1) takes writes one at a time, so that h2
//! copies frames under 1 KiB into its buffer; (2) gathers writes until a
//! flush; (3) holds back a flush once when 1 KiB or more is gathered
//! (which is when h2 may be in the middle of its turn, about to buffer
//! the trailers after a message), waking the connection's task: h2 ends
//! every turn of its connection with a flush, and that one writes
//! everything, as does the turn the wake-up brings when nothing followed
//! (its first read, or its flush). Closing writes what is held too. A
//! connection's answers up to about [`GATHER_BYTES`] thus leave as one
//! record and one system call.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};

/// Bytes gathered per connection before they are written through even
/// without a flush: a DATA frame of the largest size a peer gets by
/// default (16 KiB) and the frames before it. A larger write passes
/// straight through.
pub const GATHER_BYTES: usize = 17 * 1024;

/// From how many gathered bytes a flush is held back once: h2 writes a
/// DATA frame by reference, and flushes before buffering the next frame,
/// from 1 KiB (when the connection does not take vectored writes), after
/// filling its buffer up to that size with the frame's first bytes.
const HOLD_BACK_FROM: usize = 1024;

/// `S` with its writes gathered until flushed (see the module's
/// documentation); reads pass through. tonic sees the connection info of
/// `S`, so a TLS stream's client certificate reaches requests as before.
#[derive(Debug)]
pub struct Coalesced<S> {
    inner: BufWriter<S>,
    /// A flush was held back: the next one writes.
    held_back: bool,
}

impl<S: AsyncWrite> Coalesced<S> {
    /// Wraps `stream`.
    pub fn new(stream: S) -> Self {
        Coalesced {
            inner: BufWriter::with_capacity(GATHER_BYTES, stream),
            held_back: false,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // A held-back flush is done before h2 reads on: its next turn reads
        // first, and may end the connection at once on what it reads (a
        // peer's end of stream without TLS close_notify does), dropping
        // this stream without another flush.
        if self.held_back
            && let Poll::Ready(flushed) = Pin::new(&mut self.inner).poll_flush(cx)
        {
            self.held_back = false;
            flushed?;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
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
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    /// False, so that h2 copies frames under 1 KiB into its own buffer
    /// instead of flushing around each of them.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.held_back && self.inner.buffer().len() >= HOLD_BACK_FROM {
            self.held_back = true;
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        self.held_back = false;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected + AsyncWrite> tonic::transport::server::Connected
    for Coalesced<S>
{
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    struct Wakes(AtomicUsize);
    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// What the peer has received so far, without waiting.
    fn received(far: &mut DuplexStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while let Some(Ok(n)) = far.read(&mut buf).now_or_never() {
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    fn flush(near: &mut Coalesced<DuplexStream>, waker: &Waker) {
        let flushed = Pin::new(near).poll_flush(&mut Context::from_waker(waker));
        assert!(matches!(flushed, Poll::Ready(Ok(()))));
    }

    /// Writes reach the peer only when flushed, then in one piece.
    #[tokio::test]
    async fn writes_are_gathered_until_flushed() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut near = Coalesced::new(near);
        near.write_all(b"headers and message").await.unwrap();
        near.write_all(b" + trailers").await.unwrap();
        assert!(received(&mut far).is_empty(), "written before the flush");
        near.flush().await.unwrap();
        assert_eq!(received(&mut far), b"headers and message + trailers");

        let large = vec![7u8; GATHER_BYTES + 1];
        near.write_all(&large).await.unwrap();
        assert_eq!(
            received(&mut far),
            large,
            "a write over the buffer passes through"
        );
    }

    /// A flush with 1 KiB or more gathered is held back once, with a
    /// wake-up, so that what h2 writes next joins it; the next flush writes
    /// all, whether or not anything was written in between.
    #[tokio::test]
    async fn a_flush_with_a_kibibyte_gathered_waits_once() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut near = Coalesced::new(near);
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let message = vec![1u8; HOLD_BACK_FROM];

        near.write_all(b"headers").await.unwrap();
        near.write_all(&message).await.unwrap();
        flush(&mut near, &waker);
        assert!(
            received(&mut far).is_empty(),
            "the flush after the message was not held back"
        );
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            1,
            "a held-back flush must wake the task"
        );
        near.write_all(b"trailers").await.unwrap();
        flush(&mut near, &waker);
        assert_eq!(
            received(&mut far),
            [&b"headers"[..], &message, b"trailers"].concat()
        );

        // Nothing follows the message: the wake-up's flush writes it.
        near.write_all(&message).await.unwrap();
        flush(&mut near, &waker);
        assert!(received(&mut far).is_empty());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
        flush(&mut near, &waker);
        assert_eq!(received(&mut far), message);

        // A read writes a held-back flush first.
        near.write_all(&message).await.unwrap();
        flush(&mut near, &waker);
        assert!(received(&mut far).is_empty());
        far.write_all(b"request").await.unwrap();
        let mut buf = [0u8; 16];
        let n = near.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"request");
        assert_eq!(
            received(&mut far),
            message,
            "the read did not write what was held"
        );

        // So does closing.
        near.write_all(&message).await.unwrap();
        flush(&mut near, &waker);
        near.shutdown().await.unwrap();
        assert_eq!(
            received(&mut far),
            message,
            "closing did not write what was held"
        );
    }

    /// h2 copies messages under 1 KiB into its own buffer only when the
    /// connection takes no vectored writes.
    #[test]
    fn takes_no_vectored_writes() {
        let (near, _far) = tokio::io::duplex(64);
        assert!(!Coalesced::new(near).is_write_vectored());
    }

    #[tokio::test]
    async fn with_less_gathered_a_flush_writes_at_once() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut near = Coalesced::new(near);
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        near.write_all(&[1u8; HOLD_BACK_FROM - 1]).await.unwrap();
        flush(&mut near, &waker);
        assert_eq!(received(&mut far).len(), HOLD_BACK_FROM - 1);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
    }
}
