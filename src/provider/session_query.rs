//! The query that tells an OpenAI-style endpoint what the session is for.

use url::Url;

use super::{TargetError, TargetRequest};

/// The `?intent=` values a provider passes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intents {
    /// None: a session with an intent is refused with 400 `unsupported_intent`.
    None,
    /// `transcription`, sent upstream instead of the model, which then only
    /// routes inside the gateway (OpenAI refuses a transcription model as the
    /// session model).
    Transcription,
}

/// Appends the session to `url`'s query: the model as `model_param` (`model`,
/// or Azure's preview `deployment`), or the intent if the provider passes it.
pub(crate) fn append_session(
    url: &mut Url,
    request: &TargetRequest<'_>,
    model_param: &str,
    intents: Intents,
) -> Result<(), TargetError> {
    match (request.intent(), intents) {
        (None, _) if request.model().is_empty() => Err(TargetError::bad_request(
            "missing_model",
            format!("no model for provider `{}`", request.provider()),
        )),
        (None, _) => {
            url.query_pairs_mut()
                .append_pair(model_param, request.model());
            Ok(())
        }
        (Some("transcription"), Intents::Transcription) => {
            url.query_pairs_mut().append_pair("intent", "transcription");
            Ok(())
        }
        (Some(intent), Intents::Transcription) => Err(TargetError::bad_request(
            "unsupported_intent",
            format!("intent `{intent}` is not supported; use `transcription` or none"),
        )),
        (Some(intent), Intents::None) => Err(TargetError::bad_request(
            "unsupported_intent",
            format!(
                "provider `{}` does not support intents (got `{intent}`)",
                request.provider()
            ),
        )),
    }
}
