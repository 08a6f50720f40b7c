//! The client load: WebSocket sessions driven from the bench's main process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

use crate::peer;

/// One client session.
pub(crate) type Session = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects to `url` (with `TCP_NODELAY`) and waits for the upstream's
/// first event; returns the session and how long that took.
pub(crate) async fn open(url: &str) -> (Session, Duration) {
    let start = Instant::now();
    let (mut session, _) = connect_async_with_config(url, Some(peer::config()), true)
        .await
        .unwrap_or_else(|error| panic!("connect to {url}: {error}"));
    next_data(&mut session).await;
    (session, start.elapsed())
}

/// Connects to `url` and sends `event` right after the handshake, before
/// the upstream's first event arrives, as a client that starts talking at
/// once does; returns the session and how long the echo took from the send.
pub(crate) async fn open_and_ask(url: &str, event: &Utf8Bytes) -> (Session, Duration) {
    let (mut session, _) = connect_async_with_config(url, Some(peer::config()), true)
        .await
        .unwrap_or_else(|error| panic!("connect to {url}: {error}"));
    let start = Instant::now();
    session
        .send(Message::Text(event.clone()))
        .await
        .expect("send the first event");
    // The upstream's `session.created` (400 B) comes first, then the echo.
    while next_data(&mut session).await.len() != event.len() {}
    (session, start.elapsed())
}

/// Asks the upstream for `count` events of `size` bytes, one every
/// `interval`; returns how long each took from the upstream's send to its
/// arrival here.
pub(crate) async fn paced(
    session: &mut Session,
    count: usize,
    size: usize,
    interval: Duration,
) -> Vec<Duration> {
    let ask = format!("{} {count} {size} {}", peer::PACED, interval.as_millis());
    session
        .send(Message::text(ask))
        .await
        .expect("ask for paced events");
    let mut delays = Vec::with_capacity(count);
    for _ in 0..count {
        let event = next_data(session).await;
        let arrived = peer::monotonic_ns();
        let sent = peer::sent_at(event.to_text().expect("a text event")).expect("a stamped event");
        delays.push(Duration::from_nanos(arrived.saturating_sub(sent)));
    }
    delays
}

/// Paced events on every session at once: the delays of all of them.
pub(crate) async fn paced_together(
    sessions: &mut [Session],
    count: usize,
    size: usize,
    interval: Duration,
) -> Vec<Duration> {
    let each = sessions
        .iter_mut()
        .map(|session| paced(session, count, size, interval));
    join_all(each).await.into_iter().flatten().collect()
}

/// Opens `count` sessions, at most `parallel` handshakes at a time.
pub(crate) async fn open_many(url: &str, count: usize, parallel: usize) -> Vec<Session> {
    let gate = Arc::new(Semaphore::new(parallel));
    let opening = (0..count).map(|_| {
        let gate = Arc::clone(&gate);
        async move {
            let _permit = gate.acquire().await.expect("open semaphore");
            open(url).await.0
        }
    });
    join_all(opening).await
}

/// Closes a session and waits for the close handshake.
pub(crate) async fn close(mut session: Session) {
    if session.close(None).await.is_ok() {
        while let Some(Ok(_)) = session.next().await {}
    }
}

/// The next text or binary message.
async fn next_data(session: &mut Session) -> Message {
    loop {
        match session.next().await {
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => return message,
            Some(Ok(Message::Close(frame))) => panic!("session closed: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("session failed: {error}"),
            None => panic!("session ended"),
        }
    }
}

/// Sends `event` and waits for its echo, `count` times; the round-trip
/// times go into `samples`.
pub(crate) async fn round_trips(
    session: &mut Session,
    event: &Utf8Bytes,
    count: usize,
    samples: &mut Vec<Duration>,
) {
    for _ in 0..count {
        let start = Instant::now();
        session
            .send(Message::Text(event.clone()))
            .await
            .expect("send an event");
        let echo = next_data(session).await;
        samples.push(start.elapsed());
        debug_assert_eq!(echo.len(), event.len());
    }
}

/// Round trips on every session at once: the samples of all of them.
pub(crate) async fn round_trips_together(
    sessions: &mut [Session],
    event: &Utf8Bytes,
    count: usize,
) -> Vec<Duration> {
    let each = sessions.iter_mut().map(|session| async move {
        let mut samples = Vec::with_capacity(count);
        round_trips(session, event, count, &mut samples).await;
        samples
    });
    join_all(each).await.into_iter().flatten().collect()
}

/// Asks the upstream to flood every session with `count` events of `size`
/// bytes; returns the time until the last event arrived on all of them.
pub(crate) async fn flood(sessions: &mut [Session], count: usize, size: usize) -> Duration {
    let start = Instant::now();
    let each = sessions.iter_mut().map(|session| async move {
        session
            .send(Message::text(format!("{} {count} {size}", peer::FLOOD)))
            .await
            .expect("ask for a flood");
        for _ in 0..count {
            let event = next_data(session).await;
            debug_assert_eq!(event.len(), size);
        }
    });
    join_all(each).await;
    start.elapsed()
}

/// Sends one message of `size` bytes and waits for its echo.
pub(crate) async fn big_round_trip(session: &mut Session, size: usize) {
    let event = peer::event("input_audio_buffer.append", size);
    session
        .send(Message::Text(event))
        .await
        .expect("send a big event");
    let echo = next_data(session).await;
    assert_eq!(echo.len(), size, "the big event came back whole");
}
