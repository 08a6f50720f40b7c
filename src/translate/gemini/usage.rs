//! Gemini `usageMetadata` in the shape of OpenAI's `response.usage`.

use serde_json::{Map, Value, json};

use super::json::{count, field};

/// Token counts by modality.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Modalities {
    text: u64,
    audio: u64,
    image: u64,
}

impl Modalities {
    fn read(details: Option<&Value>) -> Self {
        let mut sum = Self::default();
        for entry in details.and_then(Value::as_array).into_iter().flatten() {
            let Some(entry) = entry.as_object() else {
                continue;
            };
            let tokens = count(entry, "tokenCount", "token_count").unwrap_or(0);
            let slot = match entry.get("modality").and_then(Value::as_str) {
                Some("TEXT") => &mut sum.text,
                Some("AUDIO") => &mut sum.audio,
                Some("IMAGE" | "VIDEO" | "DOCUMENT") => &mut sum.image,
                _ => continue,
            };
            *slot = slot.saturating_add(tokens);
        }
        sum
    }

    fn add(&mut self, other: Modalities) {
        self.text = self.text.saturating_add(other.text);
        self.audio = self.audio.saturating_add(other.audio);
        self.image = self.image.saturating_add(other.image);
    }
}

/// The usage Gemini reported for one model turn (or the sum of several
/// records that arrived before the response they belong to ended).
///
/// Both spellings are read: the Gemini API's `responseTokenCount` and
/// Vertex's `candidatesTokenCount`, camelCase and snake_case. Counts from
/// the upstream are untrusted: sums saturate instead of wrapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct GeminiUsage {
    prompt: u64,
    cached: u64,
    response: u64,
    tool_use_prompt: u64,
    thoughts: u64,
    total: Option<u64>,
    prompt_details: Modalities,
    cache_details: Modalities,
    response_details: Modalities,
    tool_use_details: Modalities,
}

impl GeminiUsage {
    /// Reads one `usageMetadata` object.
    pub(super) fn read(usage: &Map<String, Value>) -> Self {
        let response = count(usage, "responseTokenCount", "response_token_count")
            .or_else(|| count(usage, "candidatesTokenCount", "candidates_token_count"));
        let response_details = field(usage, "responseTokensDetails", "response_tokens_details")
            .or_else(|| {
                field(
                    usage,
                    "candidatesTokensDetails",
                    "candidates_tokens_details",
                )
            });
        Self {
            prompt: count(usage, "promptTokenCount", "prompt_token_count").unwrap_or(0),
            cached: count(
                usage,
                "cachedContentTokenCount",
                "cached_content_token_count",
            )
            .unwrap_or(0),
            response: response.unwrap_or(0),
            tool_use_prompt: count(
                usage,
                "toolUsePromptTokenCount",
                "tool_use_prompt_token_count",
            )
            .unwrap_or(0),
            thoughts: count(usage, "thoughtsTokenCount", "thoughts_token_count").unwrap_or(0),
            total: count(usage, "totalTokenCount", "total_token_count"),
            prompt_details: Modalities::read(field(
                usage,
                "promptTokensDetails",
                "prompt_tokens_details",
            )),
            cache_details: Modalities::read(field(
                usage,
                "cacheTokensDetails",
                "cache_tokens_details",
            )),
            response_details: Modalities::read(response_details),
            tool_use_details: Modalities::read(field(
                usage,
                "toolUsePromptTokensDetails",
                "tool_use_prompt_tokens_details",
            )),
        }
    }

    /// Adds another record (a standalone frame before the turn's own).
    pub(super) fn add(&mut self, other: &GeminiUsage) {
        self.prompt = self.prompt.saturating_add(other.prompt);
        self.cached = self.cached.saturating_add(other.cached);
        self.response = self.response.saturating_add(other.response);
        self.tool_use_prompt = self.tool_use_prompt.saturating_add(other.tool_use_prompt);
        self.thoughts = self.thoughts.saturating_add(other.thoughts);
        self.total = match (self.total, other.total) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            (a, b) => a.or(b),
        };
        self.prompt_details.add(other.prompt_details);
        self.cache_details.add(other.cache_details);
        self.response_details.add(other.response_details);
        self.tool_use_details.add(other.tool_use_details);
    }

    /// OpenAI's `usage` object: input is prompt plus tool-use prompt,
    /// output is response plus thoughts (counted as text).
    pub(super) fn to_openai(self) -> Value {
        let input = self.prompt.saturating_add(self.tool_use_prompt);
        let output = self.response.saturating_add(self.thoughts);
        json!({
            "total_tokens": self.total.unwrap_or(input.saturating_add(output)),
            "input_tokens": input,
            "output_tokens": output,
            "input_token_details": {
                "text_tokens": self.prompt_details.text.saturating_add(self.tool_use_details.text),
                "audio_tokens": self.prompt_details.audio.saturating_add(self.tool_use_details.audio),
                "image_tokens": self.prompt_details.image.saturating_add(self.tool_use_details.image),
                "cached_tokens": self.cached,
                "cached_tokens_details": {
                    "text_tokens": self.cache_details.text,
                    "audio_tokens": self.cache_details.audio,
                    "image_tokens": self.cache_details.image,
                },
            },
            "output_token_details": {
                "text_tokens": self.response_details.text.saturating_add(self.thoughts),
                "audio_tokens": self.response_details.audio,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Usage;

    fn openai(usage: Value) -> Value {
        GeminiUsage::read(usage.as_object().unwrap()).to_openai()
    }

    #[test]
    fn modality_details() {
        // Fixture 9 (community capture): a standalone usage frame.
        let usage = openai(json!({
            "promptTokenCount": 1200, "responseTokenCount": 60, "totalTokenCount": 1260,
            "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 1000}, {"modality": "TEXT", "tokenCount": 200}],
            "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 60}],
        }));
        assert_eq!(usage["input_tokens"], 1200);
        assert_eq!(usage["output_tokens"], 60);
        assert_eq!(usage["total_tokens"], 1260);
        assert_eq!(usage["input_token_details"]["audio_tokens"], 1000);
        assert_eq!(usage["input_token_details"]["text_tokens"], 200);
        assert_eq!(usage["output_token_details"]["audio_tokens"], 60);
        assert_eq!(usage["output_token_details"]["text_tokens"], 0);
    }

    #[test]
    fn vertex_spelling() {
        // Fixture 10: Vertex names the output `candidates`.
        let usage = openai(json!({
            "promptTokenCount": 20, "candidatesTokenCount": 27, "totalTokenCount": 47,
            "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": 25}, {"modality": "TEXT", "tokenCount": 2}],
        }));
        assert_eq!(usage["output_tokens"], 27);
        assert_eq!(usage["output_token_details"]["audio_tokens"], 25);
        assert_eq!(usage["output_token_details"]["text_tokens"], 2);
    }

    #[test]
    fn thoughts_cached_and_tool_use() {
        // Fixture 11, in snake_case as the SDK's own types spell it.
        let usage = openai(json!({
            "prompt_token_count": 100, "cached_content_token_count": 20, "response_token_count": 50,
            "thoughts_token_count": 7, "tool_use_prompt_token_count": 5, "total_token_count": 162,
            "cache_tokens_details": [{"modality": "TEXT", "token_count": 20}],
        }));
        assert_eq!(usage["input_tokens"], 105);
        assert_eq!(usage["output_tokens"], 57);
        assert_eq!(usage["total_tokens"], 162);
        assert_eq!(usage["input_token_details"]["cached_tokens"], 20);
        assert_eq!(
            usage["input_token_details"]["cached_tokens_details"]["text_tokens"],
            20
        );
        assert_eq!(usage["output_token_details"]["text_tokens"], 7);
        // The crate's own meter reads it as an OpenAI usage.
        let metered = Usage::from_json(usage.as_object().unwrap());
        assert_eq!(metered.input_tokens, Some(105));
        assert_eq!(metered.input_token_details.unwrap().cached_tokens, Some(20));
    }

    #[test]
    fn sums_saturate() {
        let mut usage =
            GeminiUsage::read(json!({"promptTokenCount": u64::MAX}).as_object().unwrap());
        usage.add(&GeminiUsage::read(
            json!({"promptTokenCount": 5, "totalTokenCount": 9})
                .as_object()
                .unwrap(),
        ));
        let openai = usage.to_openai();
        assert_eq!(openai["input_tokens"], u64::MAX);
        assert_eq!(openai["total_tokens"], 9);
    }
}
