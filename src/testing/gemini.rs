//! A scripted Gemini Live upstream, built from the documented message shapes.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::script::Script;
use super::session::UpstreamSession;

/// When a [`GeminiLive`] reply is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trigger {
    /// Right after `setupComplete`.
    SetupComplete,
    /// The `n`th `realtimeInput` audio chunk (counted from 1 per connection).
    AudioChunk(usize),
    /// A `clientContent` with `turnComplete: true`.
    TurnComplete,
    /// A `realtimeInput.activityEnd`.
    ActivityEnd,
    /// A `toolResponse`.
    ToolResponse,
    /// Any message after setup.
    AnyMessage,
    /// Speech that Gemini's automatic activity detection would answer:
    /// `realtimeInput` audio outside an `activityStart`…`activityEnd` span
    /// (PCM16 at the rate its `mimeType` names, 16 kHz if none) adding up
    /// to this long since the last reply.
    AudioFor(Duration),
}

/// One step of a reply.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Step {
    /// Send this message, as Google does: a binary frame of pretty-printed JSON.
    Send(Value),
    /// Wait a moment.
    Pause(Duration),
    /// Close the connection with this code and reason.
    Close(u16, String),
}

/// A scripted Gemini Live upstream: run it on a
/// [`MockUpstream`](super::MockUpstream) with
/// [`MockUpstream::with_script`](super::MockUpstream::with_script).
///
/// It behaves like `BidiGenerateContent`: the first message must be a
/// `setup` (anything else, or a second `setup`, closes the connection with
/// 1007 `Request contains an invalid argument.`); `setup` is answered with
/// `setupComplete` and, with [`GeminiLive::resumption`], a fresh resumption
/// handle. Then each reply is sent, in order, when the client message that
/// triggers it arrives; replies added with [`GeminiLive::reply_every`]
/// answer every such message the in-order ones leave. Every server message is a binary frame of
/// pretty-printed JSON. What the gateway sent is recorded on the
/// `MockUpstream`.
///
/// The associated functions build the documented server messages.
///
/// # Example
///
/// ```
/// use tower_realtime::testing::{GeminiLive, MockUpstream, Trigger};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let script = GeminiLive::new()
///     .resumption()
///     .reply(Trigger::TurnComplete, GeminiLive::text_turn("Hello there!", 12, 4));
/// let upstream = MockUpstream::with_script(script).await?;
/// # drop(upstream);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct GeminiLive {
    replies: Vec<(Trigger, Vec<Step>)>,
    resumed_replies: Vec<(Trigger, Vec<Step>)>,
    standing: Vec<(Trigger, Vec<Step>)>,
    resumption: bool,
}

impl GeminiLive {
    /// A Gemini upstream that answers `setup` and nothing else.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends a resumption handle (`handle-CONNECTION`) after `setupComplete`.
    #[must_use]
    pub fn resumption(mut self) -> Self {
        self.resumption = true;
        self
    }

    /// Sends `steps` when `trigger` happens (replies are used in order).
    #[must_use]
    pub fn reply(mut self, trigger: Trigger, steps: impl IntoIterator<Item = Step>) -> Self {
        self.replies.push((trigger, steps.into_iter().collect()));
        self
    }

    /// Sends `steps` every time `trigger` happens and no in-order
    /// [`reply`](Self::reply) answers the message, on every connection
    /// (the first of these replies whose trigger fires is sent; not for
    /// [`Trigger::SetupComplete`]): a conversation that goes on as long as
    /// the client talks.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_realtime::testing::{GeminiLive, Trigger};
    ///
    /// let script = GeminiLive::new()
    ///     .reply_every(Trigger::TurnComplete, GeminiLive::text_turn("Noted.", 12, 4))
    ///     .reply_every(Trigger::ActivityEnd, GeminiLive::text_turn("Heard you.", 12, 4))
    ///     .reply_every(Trigger::AudioFor(Duration::from_secs(2)), GeminiLive::text_turn("Heard you.", 12, 4));
    /// # drop(script);
    /// ```
    #[must_use]
    pub fn reply_every(mut self, trigger: Trigger, steps: impl IntoIterator<Item = Step>) -> Self {
        self.standing.push((trigger, steps.into_iter().collect()));
        self
    }

    /// Sends `steps` when `trigger` happens on a connection whose `setup`
    /// resumes a session (it names a resumption handle). Such connections
    /// use these replies instead of the others.
    #[must_use]
    pub fn reply_when_resumed(
        mut self,
        trigger: Trigger,
        steps: impl IntoIterator<Item = Step>,
    ) -> Self {
        self.resumed_replies
            .push((trigger, steps.into_iter().collect()));
        self
    }

    /// A model turn that says `text` (as an audio transcript), then ends
    /// with usage: `generationComplete`, `turnComplete` + `usageMetadata`.
    pub fn text_turn(text: &str, prompt_tokens: u64, response_tokens: u64) -> Vec<Step> {
        vec![
            Step::Send(
                json!({"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "AQADAAQAEgA="}}]}, "outputTranscription": {"text": text}}}),
            ),
            Step::Send(json!({"serverContent": {"generationComplete": true}})),
            Step::Send(Self::turn_complete_with_usage(
                prompt_tokens,
                response_tokens,
            )),
        ]
    }

    /// One chunk of model audio (base64 PCM at 24 kHz).
    pub fn audio(data: &str) -> Step {
        Step::Send(
            json!({"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}}]}}}),
        )
    }

    /// A chunk of the transcript of the user's speech.
    pub fn input_transcript(text: &str, finished: bool) -> Step {
        Step::Send(
            json!({"serverContent": {"inputTranscription": {"text": text, "finished": finished}}}),
        )
    }

    /// A chunk of the transcript of the model's speech.
    pub fn output_transcript(text: &str) -> Step {
        Step::Send(json!({"serverContent": {"outputTranscription": {"text": text}}}))
    }

    /// Barge-in: `interrupted`, then `turnComplete` (no `generationComplete`).
    pub fn interrupted() -> Vec<Step> {
        vec![
            Step::Send(json!({"serverContent": {"interrupted": true}})),
            Step::Send(json!({"serverContent": {"turnComplete": true}})),
        ]
    }

    /// A `toolCall` with one function call per `(id, name, args)`.
    pub fn tool_call<'a>(calls: impl IntoIterator<Item = (&'a str, &'a str, Value)>) -> Step {
        let calls: Vec<Value> = calls
            .into_iter()
            .map(|(id, name, args)| json!({"id": id, "name": name, "args": args}))
            .collect();
        Step::Send(json!({"toolCall": {"functionCalls": calls}}))
    }

    /// `toolCallCancellation` for these call ids.
    pub fn tool_call_cancellation<'a>(ids: impl IntoIterator<Item = &'a str>) -> Step {
        let ids: Vec<&str> = ids.into_iter().collect();
        Step::Send(json!({"toolCallCancellation": {"ids": ids}}))
    }

    /// `goAway` with `time_left` (a proto duration such as `"30s"`).
    pub fn go_away(time_left: &str) -> Step {
        Step::Send(json!({"goAway": {"timeLeft": time_left}}))
    }

    /// A new resumption handle.
    pub fn resumption_handle(handle: &str) -> Step {
        Step::Send(json!({"sessionResumptionUpdate": {"newHandle": handle, "resumable": true}}))
    }

    /// `turnComplete` with `usageMetadata` in the Gemini API's spelling.
    pub fn turn_complete_with_usage(prompt_tokens: u64, response_tokens: u64) -> Value {
        json!({
            "serverContent": {"turnComplete": true},
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "responseTokenCount": response_tokens,
                "totalTokenCount": prompt_tokens + response_tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
                "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": response_tokens}],
            },
        })
    }
}

/// What one client message to Gemini was.
#[derive(Debug, Default)]
struct Received {
    setup: bool,
    resumes: bool,
    audio: bool,
    /// How long the audio chunk plays.
    audio_length: Duration,
    turn_complete: bool,
    activity_start: bool,
    activity_end: bool,
    tool_response: bool,
}

/// How long a `realtimeInput.audio` blob of PCM16 plays: its base64 `data`
/// at the `rate=` of its `mimeType` (16 kHz, Gemini's default, if none).
fn audio_length(audio: &Value) -> Duration {
    let rate = audio
        .get("mimeType")
        .or_else(|| audio.get("mime_type"))
        .and_then(Value::as_str)
        .and_then(|mime| mime.split(';').find_map(|p| p.trim().strip_prefix("rate=")))
        .and_then(|rate| rate.parse::<u64>().ok())
        .filter(|&rate| rate > 0)
        .unwrap_or(16_000);
    let data = audio
        .get("data")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let bytes = data.trim_end_matches('=').len() as u64 * 3 / 4;
    Duration::from_micros(bytes / 2 * 1_000_000 / rate)
}

/// Where one connection's conversation is, for the triggers.
#[derive(Debug, Default)]
struct Heard {
    /// `realtimeInput` audio chunks on this connection.
    audio_chunks: usize,
    /// An `activityStart` without its `activityEnd`.
    in_activity: bool,
    /// Audio outside activities since the last reply.
    speech: Duration,
}

impl Heard {
    fn note(&mut self, received: &Received) {
        self.audio_chunks += usize::from(received.audio);
        if received.activity_start {
            self.in_activity = true;
        }
        if !self.in_activity {
            self.speech += received.audio_length;
        }
        if received.activity_end {
            self.in_activity = false;
        }
    }

    fn fires(&self, trigger: Trigger, received: &Received) -> bool {
        match trigger {
            Trigger::SetupComplete => false,
            Trigger::AudioChunk(n) => received.audio && self.audio_chunks == n,
            Trigger::TurnComplete => received.turn_complete,
            Trigger::ActivityEnd => received.activity_end,
            Trigger::ToolResponse => received.tool_response,
            Trigger::AnyMessage => true,
            Trigger::AudioFor(length) => {
                received.audio && !self.in_activity && self.speech >= length
            }
        }
    }
}

fn classify(message: &Message) -> Option<Received> {
    let bytes: &[u8] = match message {
        Message::Text(text) => text.as_bytes(),
        Message::Binary(bytes) => bytes,
        _ => return None,
    };
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let object = value.as_object()?;
    let input = object.get("realtimeInput");
    let audio = input.and_then(|input| input.get("audio"));
    Some(Received {
        setup: object.contains_key("setup"),
        resumes: object
            .get("setup")
            .and_then(|setup| setup.pointer("/sessionResumption/handle"))
            .is_some(),
        audio: audio.is_some(),
        audio_length: audio.map(audio_length).unwrap_or_default(),
        turn_complete: object
            .get("clientContent")
            .is_some_and(|content| content.get("turnComplete") == Some(&Value::Bool(true))),
        activity_start: input.is_some_and(|input| input.get("activityStart").is_some()),
        activity_end: input.is_some_and(|input| input.get("activityEnd").is_some()),
        tool_response: object.contains_key("toolResponse"),
    })
}

impl GeminiLive {
    /// Plays `steps`; `false` once the connection is closed.
    async fn play(session: &mut UpstreamSession, steps: &[Step]) -> bool {
        for step in steps {
            match step {
                Step::Send(message) => {
                    let pretty = serde_json::to_vec_pretty(message).expect("JSON");
                    if !session.send(Message::binary(pretty)).await {
                        return false;
                    }
                }
                Step::Pause(pause) => tokio::time::sleep(*pause).await,
                Step::Close(code, reason) => {
                    session.close(*code, reason).await;
                    return false;
                }
            }
        }
        true
    }
}

impl Script for GeminiLive {
    async fn run(&self, mut session: UpstreamSession) {
        let invalid = Step::Close(1007, "Request contains an invalid argument.".into());
        let Some(first) = session.recv().await else {
            return;
        };
        let Some(Received {
            setup: true,
            resumes,
            ..
        }) = classify(&first)
        else {
            Self::play(&mut session, &[invalid]).await;
            return;
        };
        let replies = if resumes {
            &self.resumed_replies
        } else {
            &self.replies
        };
        let mut hello = vec![Step::Send(json!({"setupComplete": {}}))];
        if self.resumption {
            let handle = format!("handle-{}", session.id());
            hello.push(Self::resumption_handle(&handle));
        }
        if !Self::play(&mut session, &hello).await {
            return;
        }
        let mut next = 0;
        let mut heard = Heard::default();
        while let Some((Trigger::SetupComplete, steps)) = replies.get(next) {
            next += 1;
            if !Self::play(&mut session, steps).await {
                return;
            }
        }
        while let Some(message) = session.recv().await {
            let Some(received) = classify(&message) else {
                continue;
            };
            if received.setup {
                Self::play(&mut session, std::slice::from_ref(&invalid)).await;
                return;
            }
            heard.note(&received);
            let in_order = replies
                .get(next)
                .filter(|(trigger, _)| heard.fires(*trigger, &received));
            let steps = match in_order {
                Some((_, steps)) => {
                    next += 1;
                    steps
                }
                None => match self
                    .standing
                    .iter()
                    .find(|(trigger, _)| heard.fires(*trigger, &received))
                {
                    Some((_, steps)) => steps,
                    None => continue,
                },
            };
            heard.speech = Duration::ZERO;
            if !Self::play(&mut session, steps).await {
                return;
            }
        }
    }
}
