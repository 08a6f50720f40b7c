//! Token usage as providers report it in `response.done`.

use std::ops::AddAssign;

use serde_json::{Map, Value};

/// The token usage of one response (`response.usage` of a `response.done`
/// event), or the sum of several.
///
/// Every field the provider left out is `None`, not zero: a provider that
/// reports no usage at all (xAI's `"usage": {}`) gives `Usage::default()`.
/// Both spellings of the detail objects are read: OpenAI's
/// `input_token_details`/`output_token_details` and the plural
/// `input_tokens_details`/`output_tokens_details` (Alibaba Bailian).
///
/// # Example
///
/// Sums keep what was reported and stay `None` where nothing was:
///
/// ```
/// use tower_realtime::usage::{InputTokenDetails, Usage};
///
/// let mut total = Usage::default();
/// total += &Usage::default().with_input_tokens(100).with_output_tokens(20);
/// total += &Usage::default()
///     .with_input_tokens(50)
///     .with_input_token_details(InputTokenDetails::default().with_cached_tokens(40));
/// assert_eq!(total.input_tokens, Some(150));
/// assert_eq!(total.output_tokens, Some(20));
/// assert_eq!(total.total_tokens, None);
/// assert_eq!(total.input_token_details.unwrap().cached_tokens, Some(40));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// Input and output tokens together.
    pub total_tokens: Option<u64>,
    /// Tokens read by the model (text, audio and images, cached or not).
    pub input_tokens: Option<u64>,
    /// Tokens the model produced (text and audio).
    pub output_tokens: Option<u64>,
    /// The input tokens by kind.
    pub input_token_details: Option<InputTokenDetails>,
    /// The output tokens by kind.
    pub output_token_details: Option<OutputTokenDetails>,
}

/// Input tokens by kind.
///
/// # Example
///
/// ```
/// use tower_realtime::usage::{CachedTokenDetails, InputTokenDetails};
///
/// let details = InputTokenDetails::default()
///     .with_text_tokens(120)
///     .with_cached_tokens(64)
///     .with_cached_tokens_details(CachedTokenDetails::default().with_text_tokens(64));
/// assert_eq!(details.audio_tokens, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InputTokenDetails {
    /// Text tokens.
    pub text_tokens: Option<u64>,
    /// Audio tokens.
    pub audio_tokens: Option<u64>,
    /// Image tokens.
    pub image_tokens: Option<u64>,
    /// Tokens served from the prompt cache (part of the input tokens).
    pub cached_tokens: Option<u64>,
    /// The cached tokens by kind.
    pub cached_tokens_details: Option<CachedTokenDetails>,
}

/// Cached input tokens by kind.
///
/// # Example
///
/// ```
/// use tower_realtime::usage::CachedTokenDetails;
///
/// let cached = CachedTokenDetails::default().with_audio_tokens(8);
/// assert_eq!(cached.text_tokens, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CachedTokenDetails {
    /// Cached text tokens.
    pub text_tokens: Option<u64>,
    /// Cached audio tokens.
    pub audio_tokens: Option<u64>,
    /// Cached image tokens.
    pub image_tokens: Option<u64>,
}

/// Output tokens by kind.
///
/// # Example
///
/// ```
/// use tower_realtime::usage::OutputTokenDetails;
///
/// let output = OutputTokenDetails::default().with_text_tokens(30).with_audio_tokens(91);
/// assert_eq!(output.audio_tokens, Some(91));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutputTokenDetails {
    /// Text tokens.
    pub text_tokens: Option<u64>,
    /// Audio tokens.
    pub audio_tokens: Option<u64>,
}

/// `with_FIELD(value)` setters that set `Some(value)`, for building values
/// of `#[non_exhaustive]` types field by field.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $field:ident: $type:ty;)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, value: $type) -> Self {
                self.$field = Some(value);
                self
            }
        )*
    };
}

impl Usage {
    setters! {
        /// Sets `total_tokens`.
        with_total_tokens: total_tokens: u64;
        /// Sets `input_tokens`.
        with_input_tokens: input_tokens: u64;
        /// Sets `output_tokens`.
        with_output_tokens: output_tokens: u64;
        /// Sets `input_token_details`.
        with_input_token_details: input_token_details: InputTokenDetails;
        /// Sets `output_token_details`.
        with_output_token_details: output_token_details: OutputTokenDetails;
    }
}

impl InputTokenDetails {
    setters! {
        /// Sets `text_tokens`.
        with_text_tokens: text_tokens: u64;
        /// Sets `audio_tokens`.
        with_audio_tokens: audio_tokens: u64;
        /// Sets `image_tokens`.
        with_image_tokens: image_tokens: u64;
        /// Sets `cached_tokens`.
        with_cached_tokens: cached_tokens: u64;
        /// Sets `cached_tokens_details`.
        with_cached_tokens_details: cached_tokens_details: CachedTokenDetails;
    }
}

impl CachedTokenDetails {
    setters! {
        /// Sets `text_tokens`.
        with_text_tokens: text_tokens: u64;
        /// Sets `audio_tokens`.
        with_audio_tokens: audio_tokens: u64;
        /// Sets `image_tokens`.
        with_image_tokens: image_tokens: u64;
    }
}

impl OutputTokenDetails {
    setters! {
        /// Sets `text_tokens`.
        with_text_tokens: text_tokens: u64;
        /// Sets `audio_tokens`.
        with_audio_tokens: audio_tokens: u64;
    }
}

impl Usage {
    /// Reads a usage object; fields that are missing or not counts are `None`.
    pub(crate) fn from_json(usage: &Map<String, Value>) -> Self {
        let details = |singular: &str, plural: &str| {
            usage
                .get(singular)
                .or_else(|| usage.get(plural))
                .and_then(Value::as_object)
        };
        Usage {
            total_tokens: count(usage, "total_tokens"),
            input_tokens: count(usage, "input_tokens"),
            output_tokens: count(usage, "output_tokens"),
            input_token_details: details("input_token_details", "input_tokens_details")
                .map(InputTokenDetails::from_json),
            output_token_details: details("output_token_details", "output_tokens_details")
                .map(OutputTokenDetails::from_json),
        }
    }
}

impl InputTokenDetails {
    fn from_json(details: &Map<String, Value>) -> Self {
        InputTokenDetails {
            text_tokens: count(details, "text_tokens"),
            audio_tokens: count(details, "audio_tokens"),
            image_tokens: count(details, "image_tokens"),
            cached_tokens: count(details, "cached_tokens"),
            cached_tokens_details: details
                .get("cached_tokens_details")
                .and_then(Value::as_object)
                .map(|cached| CachedTokenDetails {
                    text_tokens: count(cached, "text_tokens"),
                    audio_tokens: count(cached, "audio_tokens"),
                    image_tokens: count(cached, "image_tokens"),
                }),
        }
    }
}

impl OutputTokenDetails {
    fn from_json(details: &Map<String, Value>) -> Self {
        OutputTokenDetails {
            text_tokens: count(details, "text_tokens"),
            audio_tokens: count(details, "audio_tokens"),
        }
    }
}

fn count(object: &Map<String, Value>, key: &str) -> Option<u64> {
    object.get(key).and_then(Value::as_u64)
}

/// Adds `b` to `a`: absent plus absent stays absent.
fn add(a: &mut Option<u64>, b: Option<u64>) {
    if let Some(b) = b {
        *a = Some(a.unwrap_or(0).saturating_add(b));
    }
}

fn add_nested<T: Default + for<'a> AddAssign<&'a T>>(a: &mut Option<T>, b: &Option<T>) {
    if let Some(b) = b {
        *a.get_or_insert_with(T::default) += b;
    }
}

impl AddAssign<&Usage> for Usage {
    fn add_assign(&mut self, other: &Usage) {
        add(&mut self.total_tokens, other.total_tokens);
        add(&mut self.input_tokens, other.input_tokens);
        add(&mut self.output_tokens, other.output_tokens);
        add_nested(&mut self.input_token_details, &other.input_token_details);
        add_nested(&mut self.output_token_details, &other.output_token_details);
    }
}

impl AddAssign<&InputTokenDetails> for InputTokenDetails {
    fn add_assign(&mut self, other: &InputTokenDetails) {
        add(&mut self.text_tokens, other.text_tokens);
        add(&mut self.audio_tokens, other.audio_tokens);
        add(&mut self.image_tokens, other.image_tokens);
        add(&mut self.cached_tokens, other.cached_tokens);
        add_nested(
            &mut self.cached_tokens_details,
            &other.cached_tokens_details,
        );
    }
}

impl AddAssign<&CachedTokenDetails> for CachedTokenDetails {
    fn add_assign(&mut self, other: &CachedTokenDetails) {
        add(&mut self.text_tokens, other.text_tokens);
        add(&mut self.audio_tokens, other.audio_tokens);
        add(&mut self.image_tokens, other.image_tokens);
    }
}

impl AddAssign<&OutputTokenDetails> for OutputTokenDetails {
    fn add_assign(&mut self, other: &OutputTokenDetails) {
        add(&mut self.text_tokens, other.text_tokens);
        add(&mut self.audio_tokens, other.audio_tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn usage(value: Value) -> Usage {
        Usage::from_json(value.as_object().unwrap())
    }

    #[test]
    fn reads_openai_usage() {
        let read = usage(json!({
            "total_tokens": 253, "input_tokens": 132, "output_tokens": 121,
            "input_token_details": {
                "text_tokens": 119, "audio_tokens": 13, "image_tokens": 0, "cached_tokens": 64,
                "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0, "image_tokens": 0}
            },
            "output_token_details": {"text_tokens": 30, "audio_tokens": 91}
        }));
        assert_eq!(
            read,
            Usage {
                total_tokens: Some(253),
                input_tokens: Some(132),
                output_tokens: Some(121),
                input_token_details: Some(InputTokenDetails {
                    text_tokens: Some(119),
                    audio_tokens: Some(13),
                    image_tokens: Some(0),
                    cached_tokens: Some(64),
                    cached_tokens_details: Some(CachedTokenDetails {
                        text_tokens: Some(64),
                        audio_tokens: Some(0),
                        image_tokens: Some(0),
                    }),
                }),
                output_token_details: Some(OutputTokenDetails {
                    text_tokens: Some(30),
                    audio_tokens: Some(91),
                }),
            }
        );
    }

    #[test]
    fn reads_the_plural_spelling() {
        let read = usage(json!({
            "total_tokens": 377, "input_tokens": 336, "output_tokens": 41,
            "input_tokens_details": {"text_tokens": 228, "audio_tokens": 108},
            "output_tokens_details": {"text_tokens": 9, "audio_tokens": 32}
        }));
        let input = read.input_token_details.unwrap();
        assert_eq!(input.text_tokens, Some(228));
        assert_eq!(input.audio_tokens, Some(108));
        assert_eq!(input.cached_tokens, None);
        assert_eq!(read.output_token_details.unwrap().audio_tokens, Some(32));
    }

    #[test]
    fn missing_and_odd_fields_are_absent() {
        assert_eq!(usage(json!({})), Usage::default());
        let read = usage(json!({
            "total_tokens": null, "input_tokens": "12", "output_tokens": -1,
            "input_token_details": 5, "output_token_details": {"text_tokens": 1.5}
        }));
        assert_eq!(
            read,
            Usage {
                output_token_details: Some(OutputTokenDetails::default()),
                ..Usage::default()
            }
        );
    }

    #[test]
    fn sums_keep_absent_fields_absent() {
        let mut total = Usage::default();
        total += &usage(json!({"input_tokens": 10, "input_token_details": {"cached_tokens": 2}}));
        total += &usage(json!({
            "input_tokens": 5, "output_tokens": 7,
            "input_token_details": {"cached_tokens": 3, "cached_tokens_details": {"text_tokens": 3}}
        }));
        total += &Usage::default();
        assert_eq!(
            total,
            Usage {
                input_tokens: Some(15),
                output_tokens: Some(7),
                input_token_details: Some(InputTokenDetails {
                    cached_tokens: Some(5),
                    cached_tokens_details: Some(CachedTokenDetails {
                        text_tokens: Some(3),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Usage::default()
            }
        );
    }
}
