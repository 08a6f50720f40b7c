//! One direction of the relay: read messages from one socket, write them to the other.
//!
//! Both directions are polled by the same task, each with at most one message
//! in hand: when the destination cannot take it, the direction stops reading
//! its source, so a peer that stops reading slows its sender down instead of
//! growing memory. Messages that are ready together are written together and
//! flushed once.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::outgoing::Outgoing;
use crate::usage::Traffic;

/// How many messages one direction moves before it lets the other run.
const BUDGET: usize = 64;

/// The state of one direction.
#[derive(Debug, Default)]
pub(crate) struct Half {
    /// A message read from the source that the destination has not fully
    /// taken yet.
    pending: Option<Outgoing>,
    /// Whether the destination has unflushed writes.
    needs_flush: bool,
    /// Whether to ping the destination at the next chance.
    ping_due: bool,
    /// Frames of any kind read from the source: proof that it is alive.
    pub(crate) frames_in: u64,
    /// Text and binary messages relayed.
    pub(crate) messages: u64,
    /// Payload bytes of those messages.
    pub(crate) bytes: u64,
}

impl Half {
    /// Asks for a ping to be written to this direction's destination.
    pub(crate) fn ping(&mut self) {
        self.ping_due = true;
    }

    /// Whether this direction holds a message its destination has not taken:
    /// it has stopped reading its source, so the source's silence proves nothing.
    pub(crate) fn is_held_back(&self) -> bool {
        self.pending.is_some()
    }

    /// Puts a message in hand, as a read whose destination is full would.
    #[cfg(test)]
    pub(crate) fn hold(&mut self, message: Message) {
        self.pending = Some(Outgoing::new(message));
    }

    /// The message read but not yet written, if any.
    pub(crate) fn take_pending(&mut self) -> Option<Outgoing> {
        self.pending.take()
    }

    /// What this direction relayed.
    pub(crate) fn traffic(&self) -> Traffic {
        Traffic {
            messages: self.messages,
            bytes: self.bytes,
        }
    }
}

/// Why a direction stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The source sent a close frame.
    SourceClosed(Option<CloseFrame>),
    /// The source ended or failed to read.
    SourceFailed(Option<WsError>),
    /// Writing to the destination failed.
    DestinationFailed(WsError),
}

/// Moves messages from `source` to `destination` until both would block.
///
/// `observe` sees every text and binary message before it is forwarded.
pub(crate) fn poll_half<S, D>(
    source: &mut WebSocketStream<S>,
    destination: &mut WebSocketStream<D>,
    half: &mut Half,
    observe: &mut impl FnMut(&Message),
    cx: &mut Context<'_>,
) -> Poll<Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: AsyncRead + AsyncWrite + Unpin,
{
    let mut budget = BUDGET;
    loop {
        if half.ping_due || half.pending.is_some() {
            match Pin::new(&mut *destination).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Stop::DestinationFailed(error)),
                Poll::Pending => break,
            }
            let message = if half.ping_due {
                half.ping_due = false;
                Message::Ping(Bytes::new())
            } else {
                let (message, rest) = half.pending.take().expect("checked above").next();
                half.pending = rest;
                message
            };
            if let Err(error) = Pin::new(&mut *destination).start_send(message) {
                return Poll::Ready(Stop::DestinationFailed(error));
            }
            half.needs_flush = true;
            continue;
        }
        if budget == 0 {
            cx.waker().wake_by_ref();
            break;
        }
        budget -= 1;
        match Pin::new(&mut *source).poll_next(cx) {
            Poll::Pending => break,
            Poll::Ready(None) => return Poll::Ready(Stop::SourceFailed(None)),
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Stop::SourceFailed(Some(error))),
            Poll::Ready(Some(Ok(message))) => {
                half.frames_in += 1;
                match message {
                    Message::Text(_) | Message::Binary(_) => {
                        half.messages += 1;
                        half.bytes += message.len() as u64;
                        observe(&message);
                        half.pending = Some(Outgoing::new(message));
                    }
                    // Each hop answers its own pings (tungstenite queues the
                    // pong); pongs only prove the peer is alive.
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                    Message::Close(frame) => return Poll::Ready(Stop::SourceClosed(frame)),
                }
            }
        }
    }
    if half.needs_flush {
        match Pin::new(&mut *destination).poll_flush(cx) {
            Poll::Ready(Ok(())) => half.needs_flush = false,
            Poll::Ready(Err(error)) => return Poll::Ready(Stop::DestinationFailed(error)),
            Poll::Pending => {}
        }
    }
    Poll::Pending
}
