//! A Gemini Live connection that looks like an OpenAI realtime one.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::{Sink, Stream};
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::gemini::{Control, GeminiTranslator, Output};
use crate::usage::scan;

/// How long the client may configure before the setup goes anyway.
const CONFIGURATION_TIME: Duration = Duration::from_secs(5);
/// How long Gemini may take to confirm a `response.cancel`.
const CANCEL_TIME: Duration = Duration::from_secs(3);

/// A fresh upstream connection being opened.
pub type Dialling<S> = Pin<Box<dyn Future<Output = Result<S, String>> + Send>>;

/// Opens a fresh connection to the same upstream (for Gemini's `goAway`).
pub type Redial<S> = Box<dyn FnMut() -> Dialling<S> + Send>;

/// A Gemini Live WebSocket that speaks OpenAI's realtime schema: a
/// [`Stream`] of OpenAI server events and a [`Sink`] of OpenAI client
/// events, wrapped around the Gemini connection `S` (a tokio-tungstenite
/// `WebSocketStream`, or anything with its `Stream` and `Sink`).
///
/// It runs a [`GeminiTranslator`] both ways, and the session's side of it:
/// the synthesized `session.created` comes first; the setup goes after at
/// most five seconds of configuration; a `response.cancel` Gemini does not
/// confirm in three seconds ends the response; Gemini's close codes become
/// an `error` event and a close frame per the translator's table. With a
/// [`redial`](Self::redial) function it resumes the Gemini session on a
/// fresh connection when Gemini announces the end of this one (`goAway`),
/// at the next safe point, without the client noticing.
///
/// Pings and pongs pass through both ways.
///
/// # Example
///
/// ```
/// use futures_util::{SinkExt, StreamExt};
/// use tokio_tungstenite::tungstenite::Message;
/// use tower_realtime::testing::{GeminiLive, MockUpstream, Trigger};
/// use tower_realtime::translate::GeminiSocket;
/// use tower_realtime::translate::gemini::{Backend, GeminiConfig, GeminiTranslator};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let script = GeminiLive::new().reply(Trigger::TurnComplete, GeminiLive::text_turn("Hi!", 3, 2));
/// let gemini = MockUpstream::with_script(script).await?;
/// let (connection, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gemini.addr())).await?;
/// let translator = GeminiTranslator::new(GeminiConfig::new(Backend::GeminiApi, "models/m"));
/// let mut socket = GeminiSocket::new(connection, translator);
///
/// let say = r#"{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"Hello"}]}}"#;
/// socket.send(Message::text(say)).await?;
/// socket.send(Message::text(r#"{"type":"response.create"}"#)).await?;
/// while let Some(message) = socket.next().await {
///     let event: serde_json::Value = serde_json::from_str(message?.to_text()?)?;
///     if event["type"] == "response.done" {
///         assert_eq!(event["response"]["output"][0]["content"][0]["transcript"], "Hi!");
///         break;
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct GeminiSocket<S> {
    inner: S,
    translator: GeminiTranslator,
    to_client: VecDeque<Message>,
    to_upstream: VecDeque<Message>,
    redial: Option<Redial<S>>,
    dialling: Option<Dialling<S>>,
    /// The connection a resumption replaced, being closed.
    retiring: Option<S>,
    configuration: Option<Pin<Box<Sleep>>>,
    cancel: Option<Pin<Box<Sleep>>>,
    /// The reader, woken when the writer side queues events for the client.
    reader: Option<Waker>,
    /// The upstream stream ended (after the client got its close).
    done: bool,
    /// Messages were handed to the connection since its last flush.
    unflushed: bool,
}

impl<S> fmt::Debug for GeminiSocket<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeminiSocket")
            .field("translator", &self.translator)
            .field("to_client", &self.to_client.len())
            .field("to_upstream", &self.to_upstream.len())
            .field("resuming", &self.dialling.is_some())
            .finish_non_exhaustive()
    }
}

impl<S> GeminiSocket<S>
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    /// Wraps a connected Gemini Live socket (nothing sent on it yet).
    pub fn new(inner: S, mut translator: GeminiTranslator) -> Self {
        translator.set_can_reconnect(false);
        let outputs = translator.start();
        let mut socket = Self {
            inner,
            translator,
            to_client: VecDeque::new(),
            to_upstream: VecDeque::new(),
            redial: None,
            dialling: None,
            retiring: None,
            configuration: Some(Box::pin(tokio::time::sleep(CONFIGURATION_TIME))),
            cancel: None,
            reader: None,
            done: false,
            unflushed: false,
        };
        socket.route(outputs);
        socket
    }

    /// Resumes on connections `redial` opens when Gemini says `goAway`,
    /// and applies a `session.update` Gemini cannot apply in place by
    /// resuming (see
    /// [`GeminiConfig::reconfigure_by_resuming`](super::gemini::GeminiConfig::reconfigure_by_resuming)).
    /// Without it, the session ends when Gemini ends the connection, and
    /// such an update is refused with an `error` event.
    #[must_use]
    pub fn redial(mut self, redial: impl FnMut() -> Dialling<S> + Send + 'static) -> Self {
        self.translator.set_can_reconnect(true);
        self.redial = Some(Box::new(redial));
        self
    }

    fn route(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Upstream(message) => self.to_upstream.push_back(Message::text(message)),
                Output::Client(event) => self.to_client.push_back(Message::text(event)),
                Output::Control(Control::Close { code, reason }) => {
                    self.to_client.push_back(Message::Close(Some(CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    })));
                }
                Output::Control(Control::Reconnect { setup }) => match &mut self.redial {
                    Some(redial) => {
                        self.dialling = Some(redial());
                        // The setup goes first on the new connection, then
                        // anything not yet written to the old one.
                        self.to_upstream.push_front(Message::text(setup));
                    }
                    None => {
                        tracing::debug!("Gemini connection ending; no redial to resume on");
                        let outputs = self.translator.resumption_failed();
                        self.route(outputs);
                    }
                },
                Output::Control(Control::GoAway { time_left }) => {
                    tracing::debug!(?time_left, "Gemini announced the end of the connection");
                }
                Output::Control(Control::ResumptionHandle(_)) => {}
            }
        }
        if !self.to_client.is_empty()
            && let Some(reader) = self.reader.take()
        {
            reader.wake();
        }
    }

    /// Hands what is queued for Gemini to the connection, without flushing
    /// it: messages the relay writes together leave in one write.
    /// `Ready(Ok)` once all is handed over.
    fn feed_upstream(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        if self.dialling.is_some() {
            return Poll::Pending;
        }
        while !self.to_upstream.is_empty() {
            match Pin::new(&mut self.inner).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let message = self.to_upstream.pop_front().expect("checked");
            Pin::new(&mut self.inner).start_send(message)?;
            self.unflushed = true;
        }
        Poll::Ready(Ok(()))
    }

    /// Sends what is queued for Gemini; `Ready(Ok)` once all is written.
    fn flush_upstream(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.feed_upstream(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        if !self.unflushed {
            return Poll::Ready(Ok(()));
        }
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            self.unflushed = false;
        }
        flushed
    }

    /// Drives a resumption's dial; on success the new connection replaces
    /// the old one.
    fn poll_dialling(&mut self, cx: &mut Context<'_>) {
        let Some(dialling) = &mut self.dialling else {
            return;
        };
        let Poll::Ready(result) = dialling.as_mut().poll(cx) else {
            return;
        };
        self.dialling = None;
        match result {
            Ok(fresh) => {
                let old = std::mem::replace(&mut self.inner, fresh);
                self.retiring = Some(old);
            }
            Err(error) => {
                tracing::warn!(%error, "resuming the Gemini session failed");
                self.to_upstream.clear();
                let outputs = self.translator.resumption_failed();
                self.route(outputs);
            }
        }
    }

    fn poll_timers(&mut self, cx: &mut Context<'_>) {
        if let Some(sleep) = &mut self.configuration
            && sleep.as_mut().poll(cx).is_ready()
        {
            self.configuration = None;
            let outputs = self.translator.configuration_timeout();
            self.route(outputs);
        }
        if let Some(sleep) = &mut self.cancel
            && sleep.as_mut().poll(cx).is_ready()
        {
            self.cancel = None;
            let outputs = self.translator.cancel_timeout();
            self.route(outputs);
        }
    }

    /// The reader waits: events the writer side queues for the client wake it.
    fn wait<T>(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        self.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_retiring(&mut self, cx: &mut Context<'_>) {
        if let Some(old) = &mut self.retiring
            && Pin::new(old).poll_close(cx).is_ready()
        {
            self.retiring = None;
        }
    }
}

impl<S> Stream for GeminiSocket<S>
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    type Item = Result<Message, WsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // Whatever this poll queues for the client it returns itself: only
        // a reader left waiting is woken (by the writer side).
        this.reader = None;
        loop {
            if let Some(message) = this.to_client.pop_front() {
                return Poll::Ready(Some(Ok(message)));
            }
            if this.done || this.translator.is_closed() {
                return Poll::Ready(None);
            }
            this.poll_timers(cx);
            this.poll_dialling(cx);
            this.poll_retiring(cx);
            if let Poll::Ready(Err(error)) = this.flush_upstream(cx) {
                return Poll::Ready(Some(Err(error)));
            }
            if !this.to_client.is_empty() {
                continue;
            }
            if this.dialling.is_some() {
                return this.wait(cx);
            }
            let message = match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return this.wait(cx),
                Poll::Ready(message) => message,
            };
            let outputs = match message {
                Some(Ok(Message::Text(text))) => this.translator.upstream_message(text.as_bytes()),
                Some(Ok(Message::Binary(bytes))) => this.translator.upstream_message(&bytes),
                Some(Ok(message @ (Message::Ping(_) | Message::Pong(_)))) => {
                    return Poll::Ready(Some(Ok(message)));
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame.map_or((None, String::new()), |frame| {
                        (Some(u16::from(frame.code)), frame.reason.to_string())
                    });
                    this.translator.upstream_closed(code, &reason)
                }
                Some(Ok(Message::Frame(_))) => continue,
                Some(Err(_)) | None => {
                    let outputs = this.translator.upstream_closed(None, "");
                    if !this.translator.is_closed() {
                        // Resuming: the old connection's end is no news.
                        this.route(outputs);
                        continue;
                    }
                    this.done = true;
                    outputs
                }
            };
            this.route(outputs);
        }
    }
}

impl<S> Sink<Message> for GeminiSocket<S>
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    type Error = WsError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = &mut *self;
        this.poll_dialling(cx);
        if this.dialling.is_some() {
            // The translator holds client events while resuming.
            return Poll::Ready(Ok(()));
        }
        match this.feed_upstream(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_ready(cx),
            other => other,
        }
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> Result<(), WsError> {
        let this = &mut *self;
        let outputs = match message {
            Message::Text(text) => {
                if scan::event_type(text.as_bytes()) == Some(b"response.cancel") {
                    this.cancel = Some(Box::pin(tokio::time::sleep(CANCEL_TIME)));
                }
                this.translator.client_event(text.as_bytes())
            }
            Message::Binary(bytes) => this.translator.client_event(&bytes),
            control @ (Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => {
                if this.dialling.is_some() {
                    return Ok(());
                }
                this.unflushed = true;
                return Pin::new(&mut this.inner).start_send(control);
            }
            Message::Frame(_) => return Ok(()),
        };
        this.route(outputs);
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = &mut *self;
        this.poll_dialling(cx);
        if this.dialling.is_some() {
            return Poll::Ready(Ok(()));
        }
        this.flush_upstream(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = &mut *self;
        this.dialling = None;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}
