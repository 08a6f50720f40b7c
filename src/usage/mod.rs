//! Usage accounting and session telemetry.
//!
//! The relay sees every event of a session, so it can report what the
//! session cost without slowing it down:
//!
//! - a [`UsageRecord`] for every `response.done` (its `response.usage`,
//!   with OpenAI's `input_token_details` or Bailian's `input_tokens_details`),
//! - a [`TranscriptionRecord`] for every transcription that reports usage
//!   (`tokens` or `duration`),
//! - one [`SessionSummary`] when the session ends, however it ends: who
//!   closed it and with which code, traffic both ways, usage totals, and the
//!   seconds of input audio the client appended (for providers that bill by
//!   the minute and report no tokens).
//!
//! Register an [`Observer`] with [`RealtimeLayer::observer`](crate::RealtimeLayer::observer).
//! It also hears when each session opens ([`SessionInfo`]).
//!
//! # Whom to bill
//!
//! Every record and summary carries the session's [`Identity`](crate::Identity),
//! the one its [admission hook](crate::admission) decided: bill and budget
//! by it. The `request_id` is the client's `X-Request-Id` when it sent one,
//! so any client can choose it: use it to correlate logs, never to bill.
//!
//! # What it costs
//!
//! Without an observer (and without the `metrics` feature) the meter looks
//! at nothing (hooks, model pinning among them, look at the event types
//! they asked for; see [`hooks`](crate::hooks)). With one, each message is classified by its top-level `type`
//! without parsing it; audio deltas and appends, most of the traffic, are
//! never parsed (of an append only the length of its base64 `audio` is
//! read). Only `response.done`, transcription results, `session.created`
//! and `session.updated` are parsed.
//!
//! Input audio seconds follow the input format the upstream confirms
//! (`session.created`, `session.updated`) at a sample rate the provider
//! accepts ([`Target::pcm_input_rates`](crate::provider::Target::pcm_input_rates)),
//! never the client's `session.update`, which the upstream may refuse: a
//! client cannot make its audio count as shorter than it is.
//!
//! # Tracing
//!
//! Each session runs in an `INFO` span `realtime_session` with the fields
//! `identity`, `provider`, `model` and `request_id`. Inside it: `upstream connected`
//! (with `connect_ms`), `session open` and `session closed` (with the close
//! code, duration and traffic) at `DEBUG`; `session failed` at `WARN` when
//! the upstream failed and at `DEBUG` when the client did; `realtime upgrade
//! refused` at `WARN` when the gateway is out of capacity or misconfigured
//! and at `DEBUG` otherwise (upstream failures are logged at `WARN`, with
//! their cause, where they happen). Nothing logged carries message content
//! or credentials.
//!
//! # Metrics
//!
//! With the `metrics` feature, sessions are measured through the
//! [`metrics`](https://docs.rs/metrics) facade; install any recorder
//! (Prometheus, OpenTelemetry, ...) to export them.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `realtime_sessions_total` | counter | `provider` | sessions opened |
//! | `realtime_sessions_active` | gauge | `provider` | sessions open now |
//! | `realtime_session_duration_seconds` | histogram | `provider`, `closed_by` | session durations |
//! | `realtime_messages_total` | counter | `provider`, `direction` | messages relayed (`client_to_upstream`, `upstream_to_client`) |
//! | `realtime_bytes_total` | counter | `provider`, `direction` | payload bytes relayed |
//! | `realtime_tokens_total` | counter | `provider`, `model`, `kind` | tokens reported: `input`, `output` and their parts `input_text`, `input_audio`, `input_image`, `input_cached`, `input_cached_text`, `input_cached_audio`, `input_cached_image`, `output_text`, `output_audio`; `transcription_input`, `transcription_output` |
//! | `realtime_input_audio_seconds` | histogram | `provider` | input audio appended per session |
//! | `realtime_upstream_connect_seconds` | histogram | `provider` | time to connect to the upstream |
//! | `realtime_session_errors_total` | counter | `provider`, `side`, `kind` | sessions ended by an error: `connection_lost`, `protocol_error`, `message_too_big` |
//! | `realtime_refusals_total` | counter | `code` | refused upgrades, by the error `code` of the response |
//! | `realtime_budget_spend_total` | counter | `identity`, `meter` | what sessions charged their identity's [budget](crate::RealtimeLayer::budget): `tokens`, `input_audio_ms`, `money_micros` (identities come from the admission hook, so keep them a bounded set) |
//!
//! `closed_by` is `client`, `upstream`, `gateway` or `hook`; `side` is `client`, `upstream` or `gateway`. Token
//! counts come from the provider; input audio is counted from append sizes.
//! `model` is the upstream model when clients cannot choose it freely: the
//! provider has an allow-list ([`Providers::allow_models`](crate::Providers::allow_models),
//! `PREFIX_MODELS`) or the client named an alias. Otherwise it is `other`,
//! so that clients cannot grow the set of label values. Observers see the
//! model itself in every record.
//!
//! # Example
//!
//! ```
//! use tower_realtime::usage::Observation;
//! use tower_realtime::{Providers, RealtimeLayer};
//!
//! let layer = RealtimeLayer::new(Providers::new()).observer(|observation: Observation<'_>| {
//!     match observation {
//!         Observation::SessionStart(info) => {
//!             println!("{} opened a session ({})", info.identity(), info.request_id());
//!         }
//!         Observation::Usage(record) => {
//!             // Bill `record.usage` to `record.identity` (the request id
//!             // only correlates logs: clients choose it).
//!             let _ = (record.identity.name(), &record.usage);
//!         }
//!         Observation::SessionEnd(summary) => {
//!             let _ = (summary.input_audio_seconds, &summary.usage, &summary.end);
//!         }
//!         _ => {}
//!     }
//! });
//! # drop(layer);
//! ```

pub(crate) mod audio;
mod info;
mod meter;
mod observer;
pub(crate) mod scan;
mod summary;
pub(crate) mod telemetry;
mod tokens;
mod transcription;

pub use info::SessionInfo;
pub(crate) use meter::{Meter, Metered};
pub(crate) use observer::Isolated;
pub use observer::{Observation, Observer, TranscriptionRecord, UsageRecord};
pub use summary::{SessionSummary, Traffic};
pub use tokens::{CachedTokenDetails, InputTokenDetails, OutputTokenDetails, Usage};
pub use transcription::{TranscriptionTotals, TranscriptionUsage};
