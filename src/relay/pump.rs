//! One direction of the relay: read messages from one socket, pass them
//! through the session's hooks, write them to the other.
//!
//! Both directions are polled by the same task. Each destination has a
//! small queue: what one read became after the hooks (usually the message
//! itself, sometimes more or nothing), plus replies hooks sent back to that
//! side. A direction reads its source only when its destination's queue is
//! empty, no event is still with the hooks, and the sender's own queue has
//! room for replies: when the destination cannot take more, the direction
//! stops reading, so a peer that stops reading slows its sender down
//! instead of growing memory. Messages that are ready together are written
//! together and flushed once.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::Tap;
use super::outgoing::Outgoing;
use super::pipeline::{Flow, Outbox, Pipeline};
use crate::hooks::{Close, Direction, Event};
use crate::usage::Traffic;

/// How many messages one direction moves before it lets the other run.
const BUDGET: usize = 64;

/// Replies waiting for a side at which the other direction stops reading
/// from that side.
const MAX_QUEUED: usize = 8;

/// The state of one direction.
#[derive(Debug)]
pub(crate) struct Half {
    direction: Direction,
    /// Messages for the destination, in order; the first may be partly written.
    queue: VecDeque<Outgoing>,
    /// Events read from the source that the hooks have not decided on.
    flow: Flow,
    /// Whether the direction stopped reading because the sender's queue is full.
    replies_full: bool,
    /// Whether the destination has unflushed writes.
    needs_flush: bool,
    /// Whether to ping the destination at the next chance.
    ping_due: bool,
    /// Frames of any kind read from the source: proof that it is alive.
    pub(crate) frames_in: u64,
    /// Text and binary messages read from the source.
    pub(crate) messages: u64,
    /// Payload bytes of those messages.
    pub(crate) bytes: u64,
}

impl Half {
    pub(crate) fn new(direction: Direction) -> Self {
        Self {
            direction,
            queue: VecDeque::new(),
            flow: Flow::default(),
            replies_full: false,
            needs_flush: false,
            ping_due: false,
            frames_in: 0,
            messages: 0,
            bytes: 0,
        }
    }

    /// Asks for a ping to be written to this direction's destination.
    pub(crate) fn ping(&mut self) {
        self.ping_due = true;
    }

    /// Whether this direction has stopped reading its source (its messages
    /// wait for the destination, a hook, or room for replies), so the
    /// source's silence proves nothing.
    pub(crate) fn is_held_back(&self) -> bool {
        !self.queue.is_empty() || self.flow.is_busy() || self.replies_full
    }

    /// Puts a message in the queue, as a read whose destination is full would.
    #[cfg(test)]
    pub(crate) fn hold(&mut self, message: Message) {
        self.queue.push_back(Outgoing::new(message));
    }

    /// Takes the first queued message, as writing it would.
    #[cfg(test)]
    pub(crate) fn take_pending(&mut self) -> Option<Outgoing> {
        self.queue.pop_front()
    }

    /// The messages decided on but not yet written.
    pub(crate) fn take_queue(&mut self) -> VecDeque<Outgoing> {
        std::mem::take(&mut self.queue)
    }

    /// What this direction read from its source.
    pub(crate) fn traffic(&self) -> Traffic {
        Traffic {
            messages: self.messages,
            bytes: self.bytes,
        }
    }
}

#[cfg(test)]
impl Default for Half {
    fn default() -> Self {
        Self::new(Direction::ClientToUpstream)
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
    /// A hook ended the session.
    Ended(Close),
}

/// The queues a direction's decisions go to, metering what goes upstream.
struct Queues<'a, T> {
    direction: Direction,
    destination: &'a mut VecDeque<Outgoing>,
    sender: &'a mut VecDeque<Outgoing>,
    replied: bool,
    tap: &'a mut T,
}

impl<T: Tap> Queues<'_, T> {
    fn push(queue: &mut VecDeque<Outgoing>, to_upstream: bool, tap: &mut T, message: Message) {
        if to_upstream {
            tap.client_message(&message);
        }
        queue.push_back(Outgoing::new(message));
    }
}

impl<T: Tap> Outbox for Queues<'_, T> {
    fn forward(&mut self, message: Message) {
        let to_upstream = self.direction == Direction::ClientToUpstream;
        Self::push(self.destination, to_upstream, self.tap, message);
    }

    fn reply(&mut self, message: Message) {
        let to_upstream = self.direction == Direction::UpstreamToClient;
        Self::push(self.sender, to_upstream, self.tap, message);
        self.replied = true;
    }
}

/// Moves messages from `source` to `destination` until both would block.
///
/// `sender` is the queue of the other direction, the one that writes to
/// `source`: replies of hooks go there. `tap` sees every message the
/// upstream sent, as read, and every message sent to the upstream, as queued.
pub(crate) fn poll_half<S, D>(
    source: &mut WebSocketStream<S>,
    destination: &mut WebSocketStream<D>,
    half: &mut Half,
    sender: &mut Half,
    pipeline: &mut Pipeline,
    tap: &mut impl Tap,
    cx: &mut Context<'_>,
) -> Poll<Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: AsyncRead + AsyncWrite + Unpin,
{
    let direction = half.direction;
    let mut budget = BUDGET;
    let mut replied = false;
    let stop = loop {
        if half.ping_due || !half.queue.is_empty() {
            match Pin::new(&mut *destination).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => break Some(Stop::DestinationFailed(error)),
                Poll::Pending => break None,
            }
            let message = if half.ping_due {
                half.ping_due = false;
                Message::Ping(Bytes::new())
            } else {
                let (message, rest) = half.queue.pop_front().expect("checked above").next();
                if let Some(rest) = rest {
                    half.queue.push_front(rest);
                }
                message
            };
            if let Err(error) = Pin::new(&mut *destination).start_send(message) {
                break Some(Stop::DestinationFailed(error));
            }
            half.needs_flush = true;
            continue;
        }
        let mut queues = Queues {
            direction,
            destination: &mut half.queue,
            sender: &mut sender.queue,
            replied: false,
            tap: &mut *tap,
        };
        if half.flow.is_busy() {
            let advanced = pipeline.advance(direction, &mut half.flow, &mut queues, cx);
            replied |= queues.replied;
            match advanced {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(close)) => break Some(Stop::Ended(close)),
                Poll::Pending => break None,
            }
        }
        if pipeline.injections_waiting {
            match pipeline.control().take_injected(direction) {
                Some(event) => {
                    queues.forward(event.into_message());
                    continue;
                }
                None => pipeline.injections_waiting = pipeline.control().has_injected(),
            }
        }
        half.replies_full = queues.sender.len() >= MAX_QUEUED;
        if half.replies_full {
            break None;
        }
        if budget == 0 {
            cx.waker().wake_by_ref();
            break None;
        }
        budget -= 1;
        match Pin::new(&mut *source).poll_next(cx) {
            Poll::Pending => break None,
            Poll::Ready(None) => break Some(Stop::SourceFailed(None)),
            Poll::Ready(Some(Err(error))) => break Some(Stop::SourceFailed(Some(error))),
            Poll::Ready(Some(Ok(message))) => {
                half.frames_in += 1;
                match message {
                    Message::Text(_) | Message::Binary(_) => {
                        half.messages += 1;
                        half.bytes += message.len() as u64;
                        if direction == Direction::UpstreamToClient {
                            queues.tap.upstream_message(&message);
                        }
                        if pipeline.is_active(direction) {
                            let event = Event::from_message(message).expect("a data message");
                            pipeline.admit(direction, event, &mut half.flow, &mut queues);
                            replied |= queues.replied;
                        } else {
                            queues.forward(message);
                        }
                    }
                    // Each hop answers its own pings (tungstenite queues the
                    // pong); pongs only prove the peer is alive.
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                    Message::Close(frame) => break Some(Stop::SourceClosed(frame)),
                }
            }
        }
    };
    if replied {
        // The other direction writes them: make sure it is polled again.
        cx.waker().wake_by_ref();
    }
    if let Some(stop) = stop {
        return Poll::Ready(stop);
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
