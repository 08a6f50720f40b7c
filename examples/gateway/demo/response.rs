//! One demo response as the GA event sequence: `response.created`, the
//! output item and content part, streamed deltas, the `.done` events and
//! `response.done` with usage.

use serde_json::{Value, json};

use super::audio;
use super::outbox::Outbox;

/// Audio tokens per second of input audio (one per 100 ms), as OpenAI counts.
pub(crate) const INPUT_AUDIO_TOKENS_PER_SECOND: f64 = 10.0;
/// Audio tokens per second of output audio (one per 50 ms), as OpenAI counts.
const OUTPUT_AUDIO_TOKENS_PER_SECOND: f64 = 20.0;

/// Roughly how many tokens `text` is: one per four characters.
pub(crate) fn text_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Tokens of a conversation, by kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tokens {
    pub(crate) text: u64,
    pub(crate) audio: u64,
}

/// Everything one response needs to be told.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) id: String,
    pub(crate) item_id: String,
    /// The item the reply follows; `None` when it is the first.
    pub(crate) previous_item_id: Option<String>,
    /// `None` for out-of-band responses (`"conversation": "none"`).
    pub(crate) conversation_id: Option<String>,
    pub(crate) text: String,
    pub(crate) audio: bool,
    pub(crate) voice: Value,
    pub(crate) metadata: Value,
    /// What the model read: instructions and the conversation so far.
    pub(crate) input: Tokens,
}

impl Reply {
    /// Queues the whole response on `out`; returns the tokens it adds to the conversation.
    pub(crate) fn send(&self, out: &mut Outbox) -> Tokens {
        let ids = json!({"response_id": self.id, "item_id": self.item_id, "output_index": 0, "content_index": 0});
        let with_ids = |fields: Value| merged(&ids, fields);
        let in_progress = self.item("in_progress", json!([]));
        out.push_response(
            "response.created",
            json!({"response": self.object("in_progress", json!([]), Value::Null)}),
            false,
        );
        out.push_response(
            "response.output_item.added",
            json!({"response_id": self.id, "output_index": 0, "item": in_progress}),
            false,
        );
        if self.conversation_id.is_some() {
            out.push_response(
                "conversation.item.added",
                json!({"previous_item_id": self.previous_item_id, "item": in_progress}),
                false,
            );
        }
        let (part, part_done) = if self.audio {
            (
                json!({"type": "audio", "transcript": ""}),
                json!({"type": "audio", "transcript": self.text}),
            )
        } else {
            (
                json!({"type": "text", "text": ""}),
                json!({"type": "text", "text": self.text}),
            )
        };
        out.push_response(
            "response.content_part.added",
            with_ids(json!({"part": part})),
            false,
        );

        let pcm = if self.audio {
            audio::chime()
        } else {
            Vec::new()
        };
        self.stream(out, &audio::deltas(&pcm), &ids);
        if self.audio {
            out.push_response("response.output_audio.done", ids.clone(), false);
            out.push_response(
                "response.output_audio_transcript.done",
                with_ids(json!({"transcript": self.text})),
                false,
            );
        } else {
            out.push_response(
                "response.output_text.done",
                with_ids(json!({"text": self.text})),
                false,
            );
        }
        out.push_response(
            "response.content_part.done",
            with_ids(json!({"part": part_done})),
            false,
        );

        let content = if self.audio {
            json!([{"type": "output_audio", "transcript": self.text}])
        } else {
            json!([{"type": "output_text", "text": self.text}])
        };
        let done = self.item("completed", content);
        out.push_response(
            "response.output_item.done",
            json!({"response_id": self.id, "output_index": 0, "item": done}),
            false,
        );
        if self.conversation_id.is_some() {
            out.push_response(
                "conversation.item.done",
                json!({"previous_item_id": self.previous_item_id, "item": done}),
                false,
            );
        }
        let seconds = pcm.len() as f64 / (audio::SAMPLE_RATE * 2) as f64;
        let output = Tokens {
            text: text_tokens(&self.text),
            audio: (seconds * OUTPUT_AUDIO_TOKENS_PER_SECOND).round() as u64,
        };
        out.push_response(
            "response.done",
            json!({"response": self.object("completed", json!([done]), usage(self.input, output))}),
            false,
        );
        output
    }

    /// The text (or transcript) deltas, word by word, with the audio deltas
    /// spread evenly between them.
    fn stream(&self, out: &mut Outbox, audio: &[String], ids: &Value) {
        let words: Vec<&str> = self.text.split_inclusive(' ').collect();
        let text_kind = if self.audio {
            "response.output_audio_transcript.delta"
        } else {
            "response.output_text.delta"
        };
        let mut sent_audio = 0;
        for (index, word) in words.iter().enumerate() {
            out.push_response(text_kind, merged(ids, json!({"delta": word})), true);
            let due = (index + 1) * audio.len() / words.len();
            for delta in &audio[sent_audio..due] {
                out.push_response(
                    "response.output_audio.delta",
                    merged(ids, json!({"delta": delta})),
                    true,
                );
            }
            sent_audio = due;
        }
        for delta in &audio[sent_audio..] {
            out.push_response(
                "response.output_audio.delta",
                merged(ids, json!({"delta": delta})),
                true,
            );
        }
    }

    fn item(&self, status: &str, content: Value) -> Value {
        json!({
            "id": self.item_id,
            "object": "realtime.item",
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        })
    }

    /// The `response` object of `response.created` and `response.done`.
    pub(crate) fn object(&self, status: &str, output: Value, usage: Value) -> Value {
        json!({
            "object": "realtime.response",
            "id": self.id,
            "status": status,
            "status_details": null,
            "output": output,
            "conversation_id": self.conversation_id,
            "output_modalities": [if self.audio { "audio" } else { "text" }],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": self.voice}},
            "usage": usage,
            "metadata": self.metadata,
        })
    }
}

/// The `usage` of `response.done`.
pub(crate) fn usage(input: Tokens, output: Tokens) -> Value {
    let input_total = input.text + input.audio;
    let output_total = output.text + output.audio;
    json!({
        "total_tokens": input_total + output_total,
        "input_tokens": input_total,
        "output_tokens": output_total,
        "input_token_details": {
            "text_tokens": input.text,
            "audio_tokens": input.audio,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": output.text, "audio_tokens": output.audio},
    })
}

fn merged(base: &Value, extra: Value) -> Value {
    let mut merged = base.clone();
    if let (Value::Object(into), Value::Object(fields)) = (&mut merged, extra) {
        into.extend(fields);
    }
    merged
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    fn reply(audio: bool) -> Reply {
        Reply {
            id: "resp_1".into(),
            item_id: "item_2".into(),
            previous_item_id: Some("item_1".into()),
            conversation_id: Some("conv_1".into()),
            text: "one two three".into(),
            audio,
            voice: "alloy".into(),
            metadata: Value::Null,
            input: Tokens {
                text: 40,
                audio: 15,
            },
        }
    }

    fn sent(reply: &Reply) -> (Vec<Value>, Tokens) {
        let mut out = Outbox::new(Duration::ZERO, "t");
        let output = reply.send(&mut out);
        (
            out.take_due(Instant::now() + Duration::from_secs(1)),
            output,
        )
    }

    #[test]
    fn an_audio_reply_streams_transcript_and_chime() {
        let (events, output) = sent(&reply(true));
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds.first(), Some(&"response.created"));
        assert_eq!(kinds.last(), Some(&"response.done"));
        let count = |kind: &str| kinds.iter().filter(|k| **k == kind).count();
        assert_eq!(count("response.output_audio_transcript.delta"), 3);
        assert_eq!(count("response.output_audio.delta"), 10);
        assert_eq!(count("response.output_text.delta"), 0);
        assert_eq!(count("conversation.item.added"), 1);
        let transcript: String = events
            .iter()
            .filter(|e| e["type"] == "response.output_audio_transcript.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(transcript, "one two three");
        let done = &events.last().unwrap()["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(
            done["output"][0]["content"][0]["transcript"],
            "one two three"
        );
        let usage = &done["usage"];
        assert_eq!(usage["input_tokens"], 55);
        assert_eq!(usage["output_token_details"]["audio_tokens"], 20);
        assert_eq!(usage["output_token_details"]["text_tokens"], 4);
        assert_eq!(usage["total_tokens"], 55 + 24);
        assert_eq!((output.text, output.audio), (4, 20));
    }

    #[test]
    fn a_text_reply_out_of_band_has_no_audio_nor_conversation_items() {
        let mut reply = reply(false);
        reply.conversation_id = None;
        let (events, output) = sent(&reply);
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert!(kinds.contains(&"response.output_text.done"));
        assert!(
            !kinds
                .iter()
                .any(|k| k.contains("audio") || k.starts_with("conversation."))
        );
        assert_eq!(output.audio, 0);
        assert_eq!(
            events.last().unwrap()["response"]["output_modalities"][0],
            "text"
        );
    }

    #[test]
    fn token_estimates() {
        assert_eq!(text_tokens(""), 0);
        assert_eq!(text_tokens("abcde"), 2);
    }
}
