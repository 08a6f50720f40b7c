//! One log line per response and one per session, from the layer's observer,
//! each naming the session's identity (the gateway key's name); with a
//! budget, the session's line says what it charged that identity.

use tower_realtime::budget::Spend;
use tower_realtime::usage::{Observation, Usage};

/// Logs usage records and session summaries at INFO (no content, no keys).
pub fn log(observation: Observation<'_>) {
    match observation {
        Observation::Usage(record) => tracing::info!(
            target: "usage",
            identity = %record.identity,
            provider = %record.provider,
            model = %record.model,
            request_id = %record.request_id,
            response = record.response_id.as_deref().unwrap_or("-"),
            tokens = %tokens(&record.usage),
            "response",
        ),
        Observation::Transcription(record) => tracing::info!(
            target: "usage",
            identity = %record.identity,
            provider = %record.provider,
            model = %record.model,
            request_id = %record.request_id,
            usage = ?record.usage,
            "transcription",
        ),
        Observation::SessionEnd(summary) => tracing::info!(
            target: "usage",
            identity = %summary.identity,
            provider = %summary.provider,
            model = %summary.model,
            request_id = %summary.request_id,
            session = summary.session_id.as_deref().unwrap_or("-"),
            duration_ms = summary.duration.as_millis() as u64,
            responses = summary.responses,
            tokens = %tokens(&summary.usage),
            input_audio_s = format_args!("{:.1}", summary.input_audio_seconds),
            spent = %spent(summary.spend.as_ref()),
            client_messages = summary.client_to_upstream.messages,
            upstream_messages = summary.upstream_to_client.messages,
            end = %summary.end,
            "session",
        ),
        _ => {}
    }
}

/// `tokens=79 usd=0.00079`: what the session charged its identity's
/// budget, or `-` without a budget.
fn spent(spend: Option<&Spend>) -> String {
    match spend {
        Some(spend) => format!("tokens={} usd={}", spend.tokens, spend.money),
        None => "-".to_owned(),
    }
}

/// `in=40(text 10, audio 30) out=48(text 28, audio 20)`, or `-` when the
/// provider reported none.
fn tokens(usage: &Usage) -> String {
    let (Some(input), Some(output)) = (usage.input_tokens, usage.output_tokens) else {
        return "-".to_owned();
    };
    let split = |text: Option<u64>, audio: Option<u64>| match (text, audio) {
        (Some(text), Some(audio)) => format!("(text {text}, audio {audio})"),
        _ => String::new(),
    };
    let input_split = usage
        .input_token_details
        .as_ref()
        .map(|d| split(d.text_tokens, d.audio_tokens))
        .unwrap_or_default();
    let output_split = usage
        .output_token_details
        .as_ref()
        .map(|d| split(d.text_tokens, d.audio_tokens))
        .unwrap_or_default();
    format!("in={input}{input_split} out={output}{output_split}")
}
