//! The relay: both directions of one session, its timers, and its close.

mod ending;
mod outgoing;
mod pipeline;
mod pump;
mod timers;

use std::collections::VecDeque;
use std::future::{pending, poll_fn};
use std::task::Poll;
use std::time::Duration;

use futures_util::future::join;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

pub(crate) use ending::{Action, Ending, Policy, Side};
pub(crate) use pipeline::Pipeline;
use pipeline::{Flow, Outbox};

use crate::hooks::{Direction, Event};
use crate::secret::{Secret, redact};
use crate::usage::Traffic;
use outgoing::Outgoing;
use pump::{Half, poll_half};
use timers::Timers;

/// The time limits of a session.
#[derive(Debug, Clone)]
pub(crate) struct RelayConfig {
    pub(crate) keepalive: Option<Duration>,
    /// Unanswered keepalive pings after which a peer is dead.
    pub(crate) keepalive_misses: u32,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_duration: Option<Duration>,
    /// How long to wait for close handshakes to finish once a session ends.
    pub(crate) close_timeout: Duration,
}

/// Sees what crosses the upstream hop: the innermost stage of the pipeline.
pub(crate) trait Tap {
    /// A message on its way to the upstream, after the hooks (injected and
    /// replied messages included).
    fn client_message(&mut self, message: &Message);
    /// A message from the upstream, as read, before the hooks.
    fn upstream_message(&mut self, message: &Message);
}

/// What the relay needs of either side: a WebSocket's messages both ways
/// (a tokio-tungstenite `WebSocketStream`, or a translating wrapper of one).
///
/// A close is a [`Message::Close`] sent like any other message; the side
/// answers the peer's close itself (flushed on [`Action::Answer`]).
pub(crate) trait Socket:
    Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin
{
}

impl<S> Socket for S where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin
{
}

/// How a session went.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) ending: Ending,
    pub(crate) client_to_upstream: Traffic,
    pub(crate) upstream_to_client: Traffic,
}

/// Relays messages between `client` and `upstream` until the session ends,
/// then closes both sides as the ending requires.
///
/// The sockets are borrowed, not moved in: the caller's task keeps the only
/// copy of each, which keeps the future of every idle session small.
pub(crate) async fn run<C, U>(
    client: &mut WebSocketStream<C>,
    upstream: &mut U,
    config: &RelayConfig,
    mut shutdown: watch::Receiver<bool>,
    secrets: &[Secret],
    pipeline: &mut Pipeline,
    tap: &mut impl Tap,
) -> Report
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: Socket,
{
    let mut to_upstream = Half::new(Direction::ClientToUpstream);
    let mut to_client = Half::new(Direction::UpstreamToClient);
    let control = pipeline.control().clone();
    let mut timers = Timers::new(
        Instant::now(),
        config.keepalive,
        config.keepalive_misses,
        config.idle_timeout,
        config.max_duration,
    );
    let mut shutdown_open = true;

    let mut ending = loop {
        if *shutdown.borrow_and_update() {
            break Ending::Policy(Policy::Shutdown);
        }
        let next_timer = timers.next();
        tokio::select! {
            biased;
            changed = shutdown.changed(), if shutdown_open => {
                // A dropped sender means no shutdown can come any more.
                shutdown_open = changed.is_ok();
            }
            () = control.requested() => {
                if let Some(close) = control.take_close() {
                    break Ending::Hook(close);
                }
                pipeline.injections_waiting = true;
            }
            () = async {
                match next_timer {
                    Some(at) => sleep_until(at).await,
                    None => pending().await,
                }
            } => {
                if let Some(ending) = timers.fire(Instant::now(), &mut to_upstream, &mut to_client) {
                    break ending;
                }
            }
            ending = poll_fn(|cx| {
                if let Poll::Ready(stop) =
                    poll_half(client, upstream, &mut to_upstream, &mut to_client, pipeline, tap, cx)
                {
                    return Poll::Ready(Ending::from_stop(Side::Client, stop));
                }
                if let Poll::Ready(stop) =
                    poll_half(upstream, client, &mut to_client, &mut to_upstream, pipeline, tap, cx)
                {
                    return Poll::Ready(Ending::from_stop(Side::Upstream, stop));
                }
                Poll::Pending
            }) => break ending,
        }
    };

    // An upstream's close reason goes to the client (and the summary): it
    // must not carry the provider's key.
    if let Ending::Closed {
        by: Side::Upstream,
        frame: Some(frame),
    } = &mut ending
        && secrets
            .iter()
            .any(|secret| !secret.expose().is_empty() && frame.reason.contains(secret.expose()))
    {
        frame.reason = Utf8Bytes::from(redact(&frame.reason, secrets));
    }
    control.end();
    let plan = ending.plan();
    // Responses cut short are still billed by the provider: while the
    // upstream is there, it is asked to cancel them, and their
    // `response.done` goes through the hooks (the budget charges it).
    let winding_down = pipeline.responses_open() && !ending.upstream_lost();
    let farewell = pipeline.farewell(&ending);
    let client_side = settle(
        client,
        plan.client,
        to_client.take_queue(),
        plan.client_event,
    );
    let upstream_queue = to_upstream.take_queue();
    let upstream_side = async {
        if winding_down {
            wind_down(upstream, pipeline, tap, config.close_timeout).await;
        }
        settle(upstream, plan.upstream, upstream_queue, farewell).await;
    };
    // Peers that do not finish their close handshake in time are dropped.
    // Boxed, so that only a closing session holds this future, not every
    // idle session's task.
    let closing = Box::pin(tokio::time::timeout(
        config.close_timeout,
        join(client_side, upstream_side),
    ));
    let _ = closing.await;

    Report {
        ending,
        client_to_upstream: to_upstream.traffic(),
        upstream_to_client: to_client.traffic(),
    }
}

/// Asks the upstream to cancel the responses still running, and reads
/// what it sends, through the hooks (their replies and forwards go
/// nowhere: the session is over), until no hook waits for a response or
/// `wait` is over.
async fn wind_down<U: Socket>(
    upstream: &mut U,
    pipeline: &mut Pipeline,
    tap: &mut impl Tap,
    wait: Duration,
) {
    let direction = Direction::UpstreamToClient;
    let cancel = Message::text(r#"{"type":"response.cancel"}"#);
    tap.client_message(&cancel);
    if upstream.send(cancel).await.is_err() {
        return;
    }
    let reading = async {
        let mut flow = Flow::default();
        while pipeline.responses_open() {
            let message = match upstream.next().await {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => message,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => continue,
            };
            tap.upstream_message(&message);
            if !pipeline.is_active(direction) {
                continue;
            }
            let event = Event::from_message(message).expect("a data message");
            pipeline.admit(direction, event, &mut flow, &mut Nowhere);
            let advanced = poll_fn(|cx| pipeline.advance(direction, &mut flow, &mut Nowhere, cx));
            if advanced.await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(wait, reading).await;
}

/// Where events decided on after the session ended go.
struct Nowhere;

impl Outbox for Nowhere {
    fn forward(&mut self, _: Message) {}
    fn reply(&mut self, _: Message) {}
}

/// Carries out what the ending asks of one side; `event` goes out right
/// before a close frame the gateway sends.
async fn settle<S: Socket>(
    socket: &mut S,
    action: Action,
    mut queue: VecDeque<Outgoing>,
    event: Option<Utf8Bytes>,
) {
    match action {
        Action::Drop => return,
        // The peer closed: flush tungstenite's automatic answer.
        Action::Answer => {
            if socket.flush().await.is_err() {
                return;
            }
        }
        Action::Close(frame) => {
            // What was already decided on for this side goes out before the
            // close (events still with the hooks do not).
            while let Some(outgoing) = queue.pop_front() {
                let (message, rest) = outgoing.next();
                if socket.feed(message).await.is_err() {
                    return;
                }
                if let Some(rest) = rest {
                    queue.push_front(rest);
                }
            }
            if let Some(event) = event
                && socket.feed(Message::Text(event)).await.is_err()
            {
                return;
            }
            if socket.send(Message::Close(frame)).await.is_err() {
                return;
            }
        }
    }
    // Wait for the peer's close frame (or end of stream), discarding data.
    while let Some(Ok(_)) = socket.next().await {}
}
