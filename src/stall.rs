//! A socket whose writes make no progress for a deadline fails: a peer that sends
//! requests (or keeps a connection open) but never reads its answers holds its socket
//! for at most that long once the kernel's buffers are full. Once a write has failed so,
//! every later write and read fails at once too, so that whatever holds the socket (a
//! writer that goes on to its next message, a reader the peer keeps busy) lets it go.
//! Reads pass through untouched until then; what the deadline should be is the caller's choice, and it can be switched
//! off for good (a socket upgraded to a transport with its own slow-consumer rule). The
//! wrapper can also hold something that must live exactly as long as the socket (a place
//! in a count).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `io` whose writes (and flushes) fail with [`io::ErrorKind::TimedOut`] once they have
/// waited `deadline` without a byte taken; `held` is dropped with it.
#[derive(Debug)]
pub struct StallLimit<T, H = ()> {
    io: T,
    _held: H,
    /// Set once the deadline no longer applies; read only when a write waits.
    off: Arc<AtomicBool>,
    deadline: Duration,
    /// Armed while a write waits, from the moment it first had to; `None` once a write
    /// goes through, so the path of a socket that keeps up pays one branch.
    stalled: Option<Pin<Box<Sleep>>>,
    /// A write has waited past the deadline: the socket is finished.
    dead: bool,
}

impl<T> StallLimit<T> {
    /// Wraps `io`.
    pub fn new(io: T, deadline: Duration) -> Self {
        StallLimit::holding(io, deadline, ())
    }
}

impl<T, H> StallLimit<T, H> {
    /// Wraps `io`, keeping `held` until the wrapper is dropped.
    pub fn holding(io: T, deadline: Duration, held: H) -> Self {
        StallLimit {
            io,
            _held: held,
            off: Arc::new(AtomicBool::new(false)),
            deadline,
            stalled: None,
            dead: false,
        }
    }

    /// A switch that turns the deadline off for good when set.
    pub fn switch(&self) -> Arc<AtomicBool> {
        self.off.clone()
    }

    /// Passes a write's (or flush's) result on, except that one which has waited
    /// `deadline` since it first could not proceed fails instead of waiting longer.
    fn gate<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        if self.off.load(Ordering::Relaxed) {
            self.stalled = None;
            return poll;
        }
        let deadline = self.deadline;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + deadline)));
        ready!(sleep.as_mut().poll(cx));
        self.stalled = None;
        self.dead = true;
        Poll::Ready(Err(stopped_reading()))
    }
}

fn stopped_reading() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading")
}

impl<T: AsyncRead + Unpin, H: Unpin> AsyncRead for StallLimit<T, H> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.dead {
            return Poll::Ready(Err(stopped_reading()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin, H: Unpin> AsyncWrite for StallLimit<T, H> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.dead {
            return Poll::Ready(Err(stopped_reading()));
        }
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.gate(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.dead {
            return Poll::Ready(Err(stopped_reading()));
        }
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.gate(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.dead {
            return Poll::Ready(Err(stopped_reading()));
        }
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.gate(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_write_nobody_reads_fails_after_the_deadline_and_one_that_is_read_does_not() {
        let deadline = Duration::from_millis(200);
        let (near, _far) = tokio::io::duplex(64);
        let mut near = StallLimit::new(near, deadline);
        near.write_all(&[0; 64]).await.unwrap();
        let started = Instant::now();
        let err = near.write_all(&[0; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= deadline);
        assert!(started.elapsed() < deadline * 10);
        // Finished: the next write, and a read, fail at once.
        let again = Instant::now();
        let err = near.write_all(&[0; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let mut byte = [0; 1];
        let err = tokio::io::AsyncReadExt::read(&mut near, &mut byte)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(again.elapsed() < deadline);

        let (near, mut far) = tokio::io::duplex(64);
        let mut near = StallLimit::new(near, deadline);
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0; 64];
            while got < 640 {
                tokio::time::sleep(deadline / 2).await;
                got += tokio::io::AsyncReadExt::read(&mut far, &mut buf)
                    .await
                    .unwrap();
            }
        });
        near.write_all(&[0; 640])
            .await
            .expect("a slow reader keeps up");
        reader.await.unwrap();

        let (near, _far) = tokio::io::duplex(64);
        let mut near = StallLimit::new(near, deadline);
        near.switch().store(true, Ordering::Relaxed);
        near.write_all(&[0; 64]).await.unwrap();
        let waited = tokio::time::timeout(deadline * 3, near.write_all(&[0; 64])).await;
        assert!(waited.is_err(), "switched off, the write waits on");
    }
}
