//! The budget of one live session: a hook that sees responses start and
//! finish, and a task that keeps the store's books for it in order.
//!
//! The hook never waits for the store except on a client's
//! `response.create`, whose fate (go, go with a lower `max_output_tokens`,
//! refused) depends on the answer; that verdict parks the client's
//! direction only. Everything else (settlements, charges, reservations of
//! responses the provider starts itself) is handed to the session's task
//! and forwarded at once: the task takes its work in the order the events
//! crossed the relay.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{AudioTime, Budget, Limits, Meter, Micros, ResponseStart, SessionBudget, Spend};
use crate::hooks::{
    Close, ErrorEvent, Event, Hook, HookContext, Interest, SessionControl, Verdict,
};
use crate::store::{Settled, StoreError};
use crate::usage::audio::{AudioFormat, AudioStream, base64_decoded_len};
use crate::usage::{SessionInfo, TranscriptionUsage, Usage, scan, telemetry};

const RESPONSE_CREATE: &str = "response.create";
const RESPONSE_CREATED: &str = "response.created";
const RESPONSE_DONE: &str = "response.done";
const APPEND: &str = "input_audio_buffer.append";
const OUTPUT_AUDIO_DELTA: &str = "response.output_audio.delta";
/// The beta name of [`OUTPUT_AUDIO_DELTA`].
const AUDIO_DELTA: &str = "response.audio.delta";
const TRANSCRIPTION_COMPLETED: &str = "conversation.item.input_audio_transcription.completed";
const SESSION_CREATED: &str = "session.created";
const SESSION_UPDATED: &str = "session.updated";

/// How a session whose identity's budget is spent ends.
pub(crate) fn spent_close() -> Close {
    Close::policy("insufficient_quota").error(ErrorEvent::new(
        "insufficient_quota",
        "insufficient_quota",
        "The budget of this API key is spent; the session was closed.",
    ))
}

/// What the session's task is asked to do.
enum Command {
    /// Reserve for a response; answer when a client waits for it.
    Start {
        requested: Option<u64>,
        answer: Option<oneshot::Sender<ResponseStart>>,
    },
    /// A response is done: settle it.
    Done {
        id: String,
        usage: Usage,
        audio: AudioTime,
    },
    /// Charge the audio no response or transcription charged before the
    /// session ended.
    Leftover { id: String, audio: AudioTime },
    /// Charge a transcription (and the input audio appended before it),
    /// once per id.
    Transcription {
        id: String,
        usage: Option<TranscriptionUsage>,
        audio: Duration,
        model: Option<String>,
    },
}

/// The session's end of its budget: what it spent, and its task.
pub(crate) struct BudgetHandle {
    spent: Arc<Mutex<Spend>>,
    task: JoinHandle<()>,
    open: Arc<AtomicUsize>,
}

impl BudgetHandle {
    /// The responses running upstream whose `response.done` the hook has
    /// not seen yet.
    pub(crate) fn open_responses(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.open)
    }

    /// Waits (at most `wait`) for the task to settle what the session
    /// left, then tells what the session spent.
    pub(crate) async fn finish(self, wait: Duration) -> Spend {
        if tokio::time::timeout(wait, self.task).await.is_err() {
            tracing::warn!("the session's budget was not settled in time; settling goes on");
        }
        *self.spent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The budget hook of one session.
pub(crate) struct BudgetHook {
    commands: mpsc::UnboundedSender<Command>,
    /// Client `response.create`s reserved for whose `response.created` has
    /// not arrived yet.
    client_started: Arc<AtomicU32>,
    /// Responses the upstream started (`response.created`) whose
    /// `response.done` has not arrived yet.
    open: Arc<AtomicUsize>,
    /// The session's input audio, when something budgets or prices it.
    audio: Option<AudioCount>,
    /// The session's output audio, when it is priced by the minute.
    output_audio: Option<AudioCount>,
    /// The PCM rates the upstream accepts, its default first.
    pcm_rates: Vec<u32>,
    /// Whether the budget prices models: then the session's transcription
    /// model is followed, to price transcriptions.
    priced: bool,
    /// The input transcription model the upstream confirmed.
    transcription_model: Option<String>,
    /// Prefix of settlement ids: unique to the session on every replica.
    key: String,
}

struct AudioCount {
    audio: AudioStream,
    /// Seconds already charged.
    charged: f64,
}

impl AudioCount {
    /// 16-bit PCM at `pcm_rate` until the session says otherwise.
    fn new(pcm_rate: u32) -> Self {
        Self {
            audio: AudioStream::new(pcm_rate),
            charged: 0.0,
        }
    }

    /// Counts the decoded size of the base64 string `member` of `event`.
    fn count(&mut self, event: &Event, member: &[u8]) {
        let audio = scan::members(event.as_bytes()).find_map(|(key, value)| match value {
            scan::Value::Str(text) if key == member => Some(text),
            _ => None,
        });
        if let Some(audio) = audio {
            self.audio
                .append(base64_decoded_len(audio.ascii_len(), audio.raw));
        }
    }

    /// Audio appended since the last call.
    fn take(&mut self) -> Duration {
        let seconds = self.audio.seconds();
        let new = (seconds - self.charged).max(0.0);
        self.charged = seconds;
        Duration::from_secs_f64(new)
    }
}

impl BudgetHook {
    /// The hook of the session `info`, counted as `key` in the store; its
    /// task runs until the hook is dropped, then releases what the session
    /// still holds.
    pub(crate) fn new(
        budget: &Budget,
        info: &SessionInfo,
        key: &str,
        control: SessionControl,
    ) -> (Self, BudgetHandle) {
        let identity = info.identity.name();
        let session = budget.session(identity, &info.provider, &info.model, key);
        let limits = budget.limits(identity);
        let (input, output) = counts_audio(budget, &limits, info);
        let audio = input.then(|| AudioCount::new(info.pcm_input_rate));
        let output_audio = output.then(|| AudioCount::new(info.pcm_input_rate));
        let (commands, receiver) = mpsc::unbounded_channel();
        let spent = Arc::new(Mutex::new(Spend::new()));
        let task = tokio::spawn(keep_books(
            session,
            receiver,
            control,
            Arc::clone(&spent),
            info.clone(),
        ));
        let open = Arc::new(AtomicUsize::new(0));
        let hook = Self {
            commands,
            client_started: Arc::new(AtomicU32::new(0)),
            open: Arc::clone(&open),
            audio,
            output_audio,
            pcm_rates: info.pcm_input_rates.clone(),
            priced: budget.priced(),
            transcription_model: None,
            key: key.to_owned(),
        };
        (hook, BudgetHandle { spent, task, open })
    }

    fn send(&self, command: Command) {
        // The task ends only after the hook is dropped.
        let _ = self.commands.send(command);
    }

    fn response_create(&mut self, event: Event) -> Verdict {
        let json = event.to_json();
        let requested = json
            .as_ref()
            .and_then(|json| json.pointer("/response/max_output_tokens"))
            .and_then(Value::as_u64);
        let (answer, answered) = oneshot::channel();
        self.client_started.fetch_add(1, Ordering::AcqRel);
        self.send(Command::Start {
            requested,
            answer: Some(answer),
        });
        let client_started = Arc::clone(&self.client_started);
        Verdict::later(async move {
            match answered.await {
                Ok(ResponseStart::Go {
                    max_output_tokens: Some(max),
                }) => match json.and_then(|json| clamped(json, max)) {
                    Some(clamped) => Verdict::forward(Event::json(&clamped)),
                    None => Verdict::forward(event),
                },
                Ok(ResponseStart::Refused(refusal)) => {
                    client_started.fetch_sub(1, Ordering::AcqRel);
                    let error = ErrorEvent::new(
                        "insufficient_quota",
                        "insufficient_quota",
                        format!("The response was not started: {refusal}."),
                    )
                    .answering(&event);
                    Verdict::reply(error.to_event())
                }
                // Go as asked, or unreserved (the store did not answer):
                // settled when done.
                _ => Verdict::forward(event),
            }
        })
    }

    fn response_created(&mut self) {
        // Running now: a session that ends before its `response.done`
        // asks the upstream to cancel it and waits for that.
        self.open.fetch_add(1, Ordering::AcqRel);
        let reserved = self
            .client_started
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if !reserved {
            // The provider started it (server VAD): reserve without waiting.
            self.send(Command::Start {
                requested: None,
                answer: None,
            });
        }
    }

    fn response_done(&mut self, event: &Event) {
        let Some(json) = event.to_json() else {
            return;
        };
        settled(&self.open);
        let response = json.get("response");
        let id = response
            .and_then(|response| response.get("id"))
            .and_then(Value::as_str)
            .unwrap_or("response");
        let usage = response
            .and_then(|response| response.get("usage"))
            .and_then(Value::as_object)
            .map(Usage::from_json)
            .unwrap_or_default();
        let audio = AudioTime::new(
            self.audio.as_mut().map_or(Duration::ZERO, AudioCount::take),
            self.output_audio
                .as_mut()
                .map_or(Duration::ZERO, AudioCount::take),
        );
        self.send(Command::Done {
            id: format!("{}:{id}", self.key),
            usage,
            audio,
        });
    }

    fn transcription(&mut self, event: &Event) {
        let Some(json) = event.to_json() else {
            return;
        };
        let usage = json
            .get("usage")
            .and_then(Value::as_object)
            .and_then(TranscriptionUsage::from_json);
        let audio = self.audio.as_mut().map_or(Duration::ZERO, AudioCount::take);
        if usage.is_none() && audio.is_zero() {
            return;
        }
        let item = json
            .get("item_id")
            .and_then(Value::as_str)
            .unwrap_or("item");
        let part = json
            .get("content_index")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        self.send(Command::Transcription {
            id: format!("{}:transcription:{item}:{part}", self.key),
            usage,
            audio,
            model: self.transcription_model.clone(),
        });
    }

    fn append(&mut self, event: &Event) {
        if let Some(count) = &mut self.audio {
            count.count(event, b"audio");
        }
    }

    fn output_delta(&mut self, event: &Event) {
        if let Some(count) = &mut self.output_audio {
            count.count(event, b"delta");
        }
    }

    fn learn_format(&mut self, event: &Event) {
        let Some(session) = event
            .to_json()
            .and_then(|mut json| json.get_mut("session").map(Value::take))
        else {
            return;
        };
        if self.priced
            && let Some(model) = transcription_model(&session)
        {
            self.transcription_model = Some(model.to_owned());
        }
        if let Some(count) = &mut self.audio
            && let Some(format) = AudioFormat::declared_by(&session, &self.pcm_rates)
        {
            count.audio.set_format(format);
        }
        if let Some(count) = &mut self.output_audio
            && let Some(format) = AudioFormat::output_declared_by(&session, &self.pcm_rates)
        {
            count.audio.set_format(format);
        }
    }
}

/// The audio sent and received since the last charge is charged when the
/// session ends (appends after the last response, a response cut short).
impl Drop for BudgetHook {
    fn drop(&mut self) {
        let audio = AudioTime::new(
            self.audio.as_mut().map_or(Duration::ZERO, AudioCount::take),
            self.output_audio
                .as_mut()
                .map_or(Duration::ZERO, AudioCount::take),
        );
        if !audio.input.is_zero() || !audio.output.is_zero() {
            let id = format!("{}:leftover", self.key);
            self.send(Command::Leftover { id, audio });
        }
    }
}

impl Hook for BudgetHook {
    fn interest(&self) -> Interest {
        let mut interest = Interest::new()
            .client_events([RESPONSE_CREATE])
            .upstream_events([RESPONSE_CREATED, RESPONSE_DONE, TRANSCRIPTION_COMPLETED]);
        if self.audio.is_some() {
            interest = interest.client_events([APPEND]);
        }
        if self.output_audio.is_some() {
            interest = interest.upstream_events([OUTPUT_AUDIO_DELTA, AUDIO_DELTA]);
        }
        if self.audio.is_some() || self.output_audio.is_some() || self.priced {
            interest = interest.upstream_events([SESSION_CREATED, SESSION_UPDATED]);
        }
        interest
    }

    fn on_event(&mut self, event: Event, _cx: &mut HookContext<'_>) -> Verdict {
        match event.event_type() {
            Some(RESPONSE_CREATE) => return self.response_create(event),
            Some(RESPONSE_CREATED) => self.response_created(),
            Some(RESPONSE_DONE) => self.response_done(&event),
            Some(TRANSCRIPTION_COMPLETED) => self.transcription(&event),
            Some(APPEND) => self.append(&event),
            Some(OUTPUT_AUDIO_DELTA | AUDIO_DELTA) => self.output_delta(&event),
            Some(SESSION_CREATED | SESSION_UPDATED) => self.learn_format(&event),
            _ => {}
        }
        Verdict::forward(event)
    }
}

/// One response fewer to wait for (never below none).
fn settled(open: &AtomicUsize) {
    let _ = open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
}

/// Whether the session's input audio is budgeted or priced by the minute,
/// and whether its output audio is priced by the minute.
fn counts_audio(budget: &Budget, limits: &Limits, info: &SessionInfo) -> (bool, bool) {
    let budgeted = limits
        .budgets()
        .iter()
        .any(|limit| limit.meter() == Meter::InputAudio);
    let minute = Duration::from_secs(60);
    let priced = |audio| {
        budget
            .price_of(&info.provider, &info.model)
            .is_some_and(|prices| prices.cost(&Usage::default(), audio) > Micros::ZERO)
    };
    (
        budgeted || priced(AudioTime::new(minute, Duration::ZERO)),
        priced(AudioTime::new(Duration::ZERO, minute)),
    )
}

/// The input transcription model a session object names (GA
/// `audio.input.transcription.model`, beta `input_audio_transcription.model`).
fn transcription_model(session: &Value) -> Option<&str> {
    session
        .pointer("/audio/input/transcription/model")
        .or_else(|| session.pointer("/input_audio_transcription/model"))
        .and_then(Value::as_str)
        .filter(|model| !model.is_empty())
}

/// `response.create` with `response.max_output_tokens` set to `max`.
fn clamped(mut json: Value, max: u64) -> Option<Value> {
    let object = json.as_object_mut()?;
    let response = object
        .entry("response")
        .or_insert_with(|| Value::Object(Default::default()));
    response
        .as_object_mut()?
        .insert("max_output_tokens".to_owned(), Value::from(max));
    Some(json)
}

/// The session's task: takes the hook's commands in order, and releases
/// what the session still holds once the hook is gone.
async fn keep_books(
    mut session: SessionBudget,
    mut commands: mpsc::UnboundedReceiver<Command>,
    control: SessionControl,
    spent: Arc<Mutex<Spend>>,
    info: SessionInfo,
) {
    while let Some(command) = commands.recv().await {
        match command {
            Command::Start { requested, answer } => {
                let start = session.start_response(requested).await;
                if let ResponseStart::Unreserved(error) = &start {
                    tracing::warn!(%error, "response started without a reservation");
                }
                match answer {
                    Some(answer) => {
                        let _ = answer.send(start);
                    }
                    // A response the provider started cannot be refused
                    // before it runs: a session that cannot afford one ends.
                    None => {
                        if let ResponseStart::Refused(_) = start {
                            control.close(spent_close());
                        }
                    }
                }
            }
            Command::Done { id, usage, audio } => {
                let charged = session.finish_response(&id, &usage, audio).await;
                let spend = session.spend_of(&usage, audio);
                account(charged, spend, &spent, &control, &info);
            }
            Command::Leftover { id, audio } => {
                let spend = session.spend_of(&Usage::default(), audio);
                let charged = session.charge(&id, spend).await;
                account(charged, spend, &spent, &control, &info);
            }
            Command::Transcription {
                id,
                usage,
                audio,
                model,
            } => {
                let spend = session.transcription_spend(model.as_deref(), usage.as_ref(), audio);
                let charged = session.charge(&id, spend).await;
                account(charged, spend, &spent, &control, &info);
            }
        }
    }
    session.close().await;
}

/// Adds what a settlement charged to the session's spend, and ends the
/// session when it spent its identity's budget.
fn account(
    charged: Result<Settled, StoreError>,
    spend: Spend,
    spent: &Mutex<Spend>,
    control: &SessionControl,
    info: &SessionInfo,
) {
    match charged {
        Ok(settled) => {
            if settled.applied() || settled.is_deferred() {
                let mut total = spent.lock().unwrap_or_else(PoisonError::into_inner);
                total.tokens += spend.tokens;
                total.input_audio_ms += spend.input_audio_ms;
                total.money += spend.money;
                drop(total);
                telemetry::budget_spend(info, &spend);
            }
            if settled.exhausted().is_some() {
                control.close(spent_close());
            }
        }
        Err(error) => tracing::warn!(%error, "a settlement was lost"),
    }
}
