//! Tracing events and metrics of sessions and refused upgrades.
//!
//! Levels keep `INFO` quiet: opening and closing are `DEBUG`; failures the
//! operator should look at (the upstream failed, the gateway is out of
//! capacity or misconfigured) are `WARN`; failures of the client are
//! `DEBUG`. Events carry counts, codes and timings, never message content
//! or credentials.
//! Metrics are recorded with the `metrics` facade when the `metrics`
//! feature is on; their names are listed in the [module docs](super).

use crate::error::{ErrorType, Rejection};
use crate::outcome::ClosedBy;

use super::info::SessionInfo;
use super::summary::SessionSummary;
use super::tokens::Usage;
use super::transcription::TranscriptionUsage;

#[cfg(feature = "metrics")]
mod names {
    pub(super) const SESSIONS_TOTAL: &str = "realtime_sessions_total";
    pub(super) const SESSIONS_ACTIVE: &str = "realtime_sessions_active";
    pub(super) const SESSION_DURATION: &str = "realtime_session_duration_seconds";
    pub(super) const MESSAGES: &str = "realtime_messages_total";
    pub(super) const BYTES: &str = "realtime_bytes_total";
    pub(super) const TOKENS: &str = "realtime_tokens_total";
    pub(super) const INPUT_AUDIO: &str = "realtime_input_audio_seconds";
    pub(super) const CONNECT_TIME: &str = "realtime_upstream_connect_seconds";
    pub(super) const SESSION_ERRORS: &str = "realtime_session_errors_total";
    pub(super) const REFUSALS: &str = "realtime_refusals_total";
    pub(super) const DEPLOYMENT_ATTEMPTS: &str = "realtime_deployment_attempts_total";
    pub(super) const BUDGET_SPEND: &str = "realtime_budget_spend_total";
}

#[cfg(feature = "metrics")]
use names::*;

/// An upgrade was refused. Failures of the upstream are logged at `WARN`
/// where they happen (with their cause); here they are `DEBUG`.
pub(crate) fn refused(rejection: &Rejection) {
    let status = rejection.status.as_u16();
    let code = &*rejection.code;
    let detail = &rejection.message;
    match rejection.kind {
        ErrorType::Server | ErrorType::RateLimit => {
            tracing::warn!(status, code, %detail, "realtime upgrade refused");
        }
        ErrorType::Upstream
        | ErrorType::InvalidRequest
        | ErrorType::Permission
        | ErrorType::InsufficientQuota => {
            tracing::debug!(status, code, %detail, "realtime upgrade refused");
        }
    }
    #[cfg(feature = "metrics")]
    metrics::counter!(REFUSALS, "code" => rejection.code.clone()).increment(1);
}

/// A session was tried on the alias deployment `deployment`: `opened`, or
/// the code of its failure. Deployments are configured, so the labels stay
/// bounded.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn deployment_attempt(deployment: &str, outcome: &str) {
    #[cfg(feature = "metrics")]
    {
        describe();
        metrics::counter!(
            DEPLOYMENT_ATTEMPTS,
            "deployment" => deployment.to_owned(),
            "outcome" => outcome.to_owned(),
        )
        .increment(1);
    }
}

/// The upstream accepted the session.
pub(crate) fn upstream_connected(info: &SessionInfo) {
    tracing::debug!(
        connect_ms = info.connect_time.as_millis() as u64,
        "upstream connected"
    );
    #[cfg(feature = "metrics")]
    metrics::histogram!(CONNECT_TIME, "provider" => info.provider.clone())
        .record(info.connect_time.as_secs_f64());
}

/// A session task started; it counts as active until the guard is dropped.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn session_started(info: &SessionInfo) -> Active {
    #[cfg(feature = "metrics")]
    {
        describe();
        metrics::counter!(SESSIONS_TOTAL, "provider" => info.provider.clone()).increment(1);
        metrics::gauge!(SESSIONS_ACTIVE, "provider" => info.provider.clone()).increment(1.0);
    }
    Active {
        #[cfg(feature = "metrics")]
        provider: info.provider.clone(),
    }
}

/// Keeps a session in `realtime_sessions_active` while it lives.
#[derive(Debug)]
pub(crate) struct Active {
    #[cfg(feature = "metrics")]
    provider: String,
}

impl Drop for Active {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        metrics::gauge!(SESSIONS_ACTIVE, "provider" => self.provider.clone()).decrement(1.0);
    }
}

/// Both sides are connected; messages start flowing.
pub(crate) fn session_open() {
    tracing::debug!("session open");
}

/// A `response.done` reported usage.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn response_usage(info: &SessionInfo, usage: &Usage) {
    #[cfg(feature = "metrics")]
    {
        let input = usage.input_token_details.as_ref();
        let cached = input.and_then(|details| details.cached_tokens_details.as_ref());
        let output = usage.output_token_details.as_ref();
        for (kind, count) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("input_text", input.and_then(|d| d.text_tokens)),
            ("input_audio", input.and_then(|d| d.audio_tokens)),
            ("input_image", input.and_then(|d| d.image_tokens)),
            ("input_cached", input.and_then(|d| d.cached_tokens)),
            ("input_cached_text", cached.and_then(|d| d.text_tokens)),
            ("input_cached_audio", cached.and_then(|d| d.audio_tokens)),
            ("input_cached_image", cached.and_then(|d| d.image_tokens)),
            ("output_text", output.and_then(|d| d.text_tokens)),
            ("output_audio", output.and_then(|d| d.audio_tokens)),
        ] {
            count_tokens(info, kind, count);
        }
    }
}

/// A session's budget charged its identity `spend`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn budget_spend(info: &SessionInfo, spend: &crate::budget::Spend) {
    #[cfg(feature = "metrics")]
    for (meter, amount) in [
        ("tokens", spend.tokens),
        ("input_audio_ms", spend.input_audio_ms),
        ("money_micros", spend.money.get()),
    ] {
        if amount > 0 {
            metrics::counter!(
                BUDGET_SPEND,
                "identity" => info.identity.name().to_owned(),
                "meter" => meter
            )
            .increment(amount);
        }
    }
}

/// A transcription reported usage.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn transcription_usage(info: &SessionInfo, usage: &TranscriptionUsage) {
    #[cfg(feature = "metrics")]
    if let TranscriptionUsage::Tokens(tokens) = usage {
        count_tokens(info, "transcription_input", tokens.input_tokens);
        count_tokens(info, "transcription_output", tokens.output_tokens);
    }
}

#[cfg(feature = "metrics")]
fn count_tokens(info: &SessionInfo, kind: &'static str, count: Option<u64>) {
    if let Some(count) = count {
        metrics::counter!(
            TOKENS,
            "provider" => info.provider.clone(),
            "model" => info.model_label.clone(),
            "kind" => kind
        )
        .increment(count);
    }
}

/// The session is over; it stops counting as active.
pub(crate) fn session_closed(summary: &SessionSummary, active: Active) {
    drop(active);
    let end = &summary.end;
    if let Some(error) = &end.error {
        if end.closed_by == ClosedBy::Upstream {
            tracing::warn!(closed_by = %end.closed_by, code = end.code, %error, "session failed");
        } else {
            tracing::debug!(closed_by = %end.closed_by, code = end.code, %error, "session failed");
        }
    }
    tracing::debug!(
        closed_by = %end.closed_by,
        code = end.code,
        duration_ms = summary.duration.as_millis() as u64,
        client_messages = summary.client_to_upstream.messages,
        client_bytes = summary.client_to_upstream.bytes,
        upstream_messages = summary.upstream_to_client.messages,
        upstream_bytes = summary.upstream_to_client.bytes,
        "session closed"
    );
    #[cfg(feature = "metrics")]
    {
        let provider = || summary.provider.clone();
        metrics::histogram!(
            SESSION_DURATION,
            "provider" => provider(),
            "closed_by" => end.closed_by.as_str()
        )
        .record(summary.duration.as_secs_f64());
        metrics::histogram!(INPUT_AUDIO, "provider" => provider())
            .record(summary.input_audio_seconds);
        for (direction, traffic) in [
            ("client_to_upstream", summary.client_to_upstream),
            ("upstream_to_client", summary.upstream_to_client),
        ] {
            metrics::counter!(MESSAGES, "provider" => provider(), "direction" => direction)
                .increment(traffic.messages);
            metrics::counter!(BYTES, "provider" => provider(), "direction" => direction)
                .increment(traffic.bytes);
        }
        if end.error.is_some() {
            let kind = match end.code {
                1006 => "connection_lost",
                1009 => "message_too_big",
                _ => "protocol_error",
            };
            metrics::counter!(
                SESSION_ERRORS,
                "provider" => provider(),
                "side" => end.closed_by.as_str(),
                "kind" => kind
            )
            .increment(1);
        }
    }
}

/// Describes the metrics to the recorder, once per process.
#[cfg(feature = "metrics")]
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        describe_counter!(SESSIONS_TOTAL, "Realtime sessions opened.");
        describe_gauge!(SESSIONS_ACTIVE, "Realtime sessions open now.");
        describe_histogram!(
            SESSION_DURATION,
            Unit::Seconds,
            "How long realtime sessions lasted."
        );
        describe_counter!(MESSAGES, "Messages relayed, by direction.");
        describe_counter!(BYTES, Unit::Bytes, "Payload bytes relayed, by direction.");
        describe_counter!(TOKENS, "Tokens reported by providers, by kind.");
        describe_histogram!(
            INPUT_AUDIO,
            Unit::Seconds,
            "Input audio appended per session."
        );
        describe_histogram!(
            CONNECT_TIME,
            Unit::Seconds,
            "Time to connect to the upstream."
        );
        describe_counter!(
            SESSION_ERRORS,
            "Sessions that ended with an error, by kind."
        );
        describe_counter!(REFUSALS, "Refused realtime upgrades, by error code.");
        describe_counter!(
            DEPLOYMENT_ATTEMPTS,
            "Sessions tried on an alias deployment, by deployment and outcome."
        );
    });
}
