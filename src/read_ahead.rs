//! Large reads while a socket streams, no buffer while it idles.
//!
//! tungstenite reads at most its read buffer (4 KiB by default) per call,
//! which keeps idle sessions small but costs one system call per few
//! messages when a peer streams. [`ReadAhead`] (used by
//! [`SplitFrames`](crate::split_frames::SplitFrames)) watches the reads: once one
//! fills the caller's buffer (more is likely waiting), it reads up to
//! [`AHEAD`] bytes at a time into a buffer of its own and hands them out from
//! there; as soon as the socket has nothing more, the buffer is freed, so an
//! idle session holds none.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

/// How much is read at once while a socket streams.
pub(crate) const AHEAD: usize = 64 << 10;

/// Reads a socket in large pieces while it streams.
#[derive(Debug, Default)]
pub(crate) struct ReadAhead {
    /// Bytes read ahead: `buffer[at..filled]` are waiting. Empty (and not
    /// allocated) unless the socket streams.
    buffer: Vec<u8>,
    at: usize,
    filled: usize,
    /// Whether the last read filled what it was given.
    streaming: bool,
}

impl ReadAhead {
    /// Reads from `socket` into `out`, from the buffer while the socket streams.
    pub(crate) fn poll_read<S: AsyncRead + Unpin>(
        &mut self,
        socket: &mut S,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.filled {
            self.hand_out(out);
            return Poll::Ready(Ok(()));
        }
        if !self.streaming {
            let wanted = out.remaining();
            let start = out.filled().len();
            ready!(Pin::new(socket).poll_read(cx, out))?;
            let read = out.filled().len() - start;
            self.streaming = read > 0 && read == wanted;
            return Poll::Ready(Ok(()));
        }
        if self.buffer.is_empty() {
            self.buffer = vec![0; AHEAD];
        }
        let mut ahead = ReadBuf::new(&mut self.buffer);
        match Pin::new(socket).poll_read(cx, &mut ahead) {
            Poll::Pending => {
                // The stream paused: back to small reads, and no buffer.
                self.streaming = false;
                self.release();
                Poll::Pending
            }
            Poll::Ready(Err(error)) => {
                self.release();
                Poll::Ready(Err(error))
            }
            Poll::Ready(Ok(())) => {
                let read = ahead.filled().len();
                self.at = 0;
                self.filled = read;
                self.streaming = read == AHEAD;
                self.hand_out(out);
                Poll::Ready(Ok(()))
            }
        }
    }

    fn hand_out(&mut self, out: &mut ReadBuf<'_>) {
        let n = (self.filled - self.at).min(out.remaining());
        out.put_slice(&self.buffer[self.at..self.at + n]);
        self.at += n;
        if self.at == self.filled && !self.streaming {
            self.release();
        }
    }

    fn release(&mut self) {
        self.buffer = Vec::new();
        self.at = 0;
        self.filled = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::task::Waker;

    use super::*;

    /// A socket that has `Some(n)` bytes ready or nothing (`None`) in turn.
    struct Scripted {
        turns: VecDeque<Option<usize>>,
        next: u8,
        reads: usize,
    }

    impl AsyncRead for Scripted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.reads += 1;
            match self.turns.front_mut() {
                None => Poll::Ready(Ok(())),
                Some(None) => {
                    self.turns.pop_front();
                    Poll::Pending
                }
                Some(Some(ready)) => {
                    let n = (*ready).min(out.remaining());
                    *ready -= n;
                    if *ready == 0 {
                        self.turns.pop_front();
                    }
                    for _ in 0..n {
                        let byte = self.next;
                        self.next = self.next.wrapping_add(1);
                        out.put_slice(&[byte]);
                    }
                    Poll::Ready(Ok(()))
                }
            }
        }
    }

    fn read(ahead: &mut ReadAhead, socket: &mut Scripted, size: usize) -> Poll<Vec<u8>> {
        let mut buffer = vec![0; size];
        let mut out = ReadBuf::new(&mut buffer);
        let mut cx = Context::from_waker(Waker::noop());
        ahead
            .poll_read(socket, &mut cx, &mut out)
            .map(|result| result.map(|()| out.filled().to_vec()).unwrap())
    }

    #[test]
    fn reads_ahead_only_while_the_socket_streams() {
        let turns = [Some(100), None, Some(3 * AHEAD), None, Some(10)];
        let mut socket = Scripted {
            turns: turns.into_iter().collect(),
            next: 0,
            reads: 0,
        };
        let mut ahead = ReadAhead::default();
        let mut received = Vec::new();
        let mut pending = 0;
        loop {
            match read(&mut ahead, &mut socket, 4096) {
                Poll::Pending => {
                    pending += 1;
                    // A pause frees the read-ahead buffer.
                    assert!(ahead.buffer.is_empty());
                }
                Poll::Ready(bytes) if bytes.is_empty() => break,
                Poll::Ready(bytes) => {
                    received.extend(bytes);
                    if received.len() < 4096 {
                        // Small reads go straight to the caller: no buffer.
                        assert!(ahead.buffer.is_empty());
                    }
                }
            }
        }
        assert_eq!(pending, 2);
        let expected: Vec<u8> = (0..100 + 3 * AHEAD + 10).map(|i| i as u8).collect();
        assert_eq!(received, expected);
        // One read of 4 KiB, then 64 KiB at a time: far fewer than 4 KiB reads.
        assert!(socket.reads < 3 * AHEAD / 4096, "{} reads", socket.reads);
    }
}
