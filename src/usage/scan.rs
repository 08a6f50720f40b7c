//! Reading the top level of a JSON event without parsing it.
//!
//! Audio deltas and appends are most of a session's traffic, and most of
//! their bytes are one long base64 string. [`members`] walks the members of
//! the top-level object one at a time: it reads each key, and skips each
//! value without looking inside it (strings with `memchr`, nested objects
//! and arrays by counting brackets outside strings). Callers stop as soon as
//! they have what they need, so finding the `type` of
//! `{"type":"response.output_audio.delta","delta":"…"}` reads a few dozen
//! bytes, whatever the size of the delta.
//!
//! The walker does not validate: it returns what it found before the first
//! byte it cannot make sense of, and never panics. [`event_type`] compares
//! keys as written and takes the first `type` (enough for counting);
//! [`classify`], which the event pipeline enforces policy on, reads the
//! `type` as a JSON parser would: escapes decoded, every top-level member
//! seen, a repeated `type` reported instead of guessed.

use memchr::{memchr2, memchr3};

/// A top-level value as the walker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// A string.
    Str(Str<'a>),
    /// A number, literal, object or array (skipped).
    Other,
}

/// A string value: its raw bytes between the quotes, escapes included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Str<'a> {
    /// The bytes between the quotes, as written.
    pub(crate) raw: &'a [u8],
    /// How many bytes longer the escapes are than what they stand for
    /// (`\/` is one byte longer than `/`, `\u002f` five).
    escape_overhead: usize,
}

impl Str<'_> {
    /// The number of characters, for strings of ASCII characters (what
    /// base64 is made of), without unescaping anything.
    pub(crate) fn ascii_len(&self) -> usize {
        self.raw.len() - self.escape_overhead
    }
}

/// The members of the top-level object of `json`, in order, as `(key, value)`.
/// Ends at the end of the object or at the first malformed byte; yields
/// nothing when `json` is not an object.
pub(crate) fn members(json: &[u8]) -> Members<'_> {
    let at = skip_whitespace(json, 0);
    let object = json.get(at) == Some(&b'{');
    Members {
        json,
        at: at + 1,
        value_start: at + 1,
        first: true,
        done: !object,
    }
}

/// The top-level `type` of an event, if it is a string.
pub(crate) fn event_type(json: &[u8]) -> Option<&[u8]> {
    members(json).find_map(|(key, value)| match value {
        Value::Str(text) if key == b"type" => Some(text.raw),
        _ => None,
    })
}

/// The top-level `type` of an event, read as the provider's JSON parser reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Class {
    /// One `type`, a string without escapes: these bytes of the event.
    Plain(std::ops::Range<usize>),
    /// One `type`, written with escapes (or an escaped key): its decoded value.
    Decoded(Box<str>),
    /// No `type` string: not a JSON object, no `type` member, or a
    /// `type` that is not a string.
    Untyped,
    /// More than one top-level `type` member: JSON parsers disagree on
    /// which one counts.
    Duplicate,
}

/// Classifies an event by its top-level `type`, walking every top-level
/// member (values are skipped, not parsed). For UTF-8 `json`, a
/// [`Class::Plain`] range lies on character boundaries. Keys and the `type` value are
/// compared after decoding their escapes, so `{"t\u0079pe":"a\u002eb"}` is
/// of type `a.b`.
pub(crate) fn classify(json: &[u8]) -> Class {
    let mut found: Option<Value<'_>> = None;
    for (key, value) in members(json) {
        if key_is(key, "type") {
            if found.is_some() {
                return Class::Duplicate;
            }
            found = Some(value);
        }
    }
    match found {
        Some(Value::Str(text)) if !text.raw.contains(&b'\\') => {
            let start = text.raw.as_ptr() as usize - json.as_ptr() as usize;
            Class::Plain(start..start + text.raw.len())
        }
        Some(Value::Str(text)) => {
            decode(text.raw).map_or(Class::Untyped, |text| Class::Decoded(text.into()))
        }
        _ => Class::Untyped,
    }
}

/// Whether a key, as written, is `name` once its escapes are decoded.
pub(crate) fn key_is(key: &[u8], name: &str) -> bool {
    // An escape is longer than what it stands for.
    key == name.as_bytes()
        || (key.len() > name.len() && key.contains(&b'\\') && decode(key).as_deref() == Some(name))
}

/// The value of a JSON string, given the bytes between its quotes.
pub(crate) fn decode(raw: &[u8]) -> Option<String> {
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

/// Iterator over the top-level members of a JSON object; see [`members`].
#[derive(Debug)]
pub(crate) struct Members<'a> {
    json: &'a [u8],
    at: usize,
    /// Where the last value read starts.
    value_start: usize,
    first: bool,
    done: bool,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a [u8], Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let member = self.member();
        self.done = member.is_none();
        member
    }
}

impl<'a> Members<'a> {
    /// The bytes of `json` the value of the last member spans.
    pub(crate) fn value_span(&self) -> std::ops::Range<usize> {
        self.value_start..self.at
    }

    fn member(&mut self) -> Option<(&'a [u8], Value<'a>)> {
        let json = self.json;
        let mut at = skip_whitespace(json, self.at);
        if !self.first {
            // After a value: `,` then the next member, or the end.
            if *json.get(at)? != b',' {
                return None;
            }
            at = skip_whitespace(json, at + 1);
        }
        if *json.get(at)? != b'"' {
            return None;
        }
        let (key_end, _) = string_end(json, at + 1)?;
        let key = &json[at + 1..key_end];
        at = skip_whitespace(json, key_end + 1);
        if *json.get(at)? != b':' {
            return None;
        }
        at = skip_whitespace(json, at + 1);
        let (end, value) = skip_value(json, at)?;
        self.value_start = at;
        self.at = end;
        self.first = false;
        Some((key, value))
    }
}

fn skip_whitespace(json: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = json.get(at) {
        at += 1;
    }
    at
}

/// The value starting at `at`: where it ends, and what it is.
fn skip_value(json: &[u8], at: usize) -> Option<(usize, Value<'_>)> {
    match *json.get(at)? {
        b'"' => {
            let (end, escape_overhead) = string_end(json, at + 1)?;
            let text = Str {
                raw: &json[at + 1..end],
                escape_overhead,
            };
            Some((end + 1, Value::Str(text)))
        }
        b'{' => Some((container_end(json, at, b'{', b'}')?, Value::Other)),
        b'[' => Some((container_end(json, at, b'[', b']')?, Value::Other)),
        _ => {
            // A number or literal: up to the next delimiter.
            let length = json[at..]
                .iter()
                .position(|byte| matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(json.len() - at);
            (length > 0).then_some((at + length, Value::Other))
        }
    }
}

/// The closing quote of the string whose contents start at `at`, and the
/// overhead of its escapes.
fn string_end(json: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let mut escape_overhead = 0;
    loop {
        let found = at + memchr2(b'"', b'\\', json.get(at..)?)?;
        if json[found] == b'"' {
            return Some((found, escape_overhead));
        }
        let (length, overhead) = match *json.get(found + 1)? {
            b'u' => (6, 5),
            _ => (2, 1),
        };
        escape_overhead += overhead;
        at = found + length;
    }
}

/// One past the bracket that closes the container opening at `at`.
///
/// Only this container's kind of bracket is counted (outside strings): in
/// valid JSON the other kind is balanced inside it.
fn container_end(json: &[u8], mut at: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        let found = at + memchr3(b'"', open, close, json.get(at..)?)?;
        match json[found] {
            b'"' => {
                let (end, _) = string_end(json, found + 1)?;
                at = end + 1;
                continue;
            }
            byte if byte == open => depth += 1,
            _ => {
                depth -= 1;
                if depth == 0 {
                    return Some(found + 1);
                }
            }
        }
        at = found + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(json: &str) -> Vec<String> {
        members(json.as_bytes())
            .map(|(key, _)| String::from_utf8(key.to_vec()).unwrap())
            .collect()
    }

    fn kind(json: &str) -> Option<&str> {
        event_type(json.as_bytes()).map(|kind| std::str::from_utf8(kind).unwrap())
    }

    #[test]
    fn finds_the_type_first_or_last() {
        assert_eq!(kind(r#"{"type":"response.done"}"#), Some("response.done"));
        assert_eq!(
            kind(
                r#" { "event_id" : "e1" , "n": -1.5e3, "ok": true, "none": null, "type" : "a.b" } "#
            ),
            Some("a.b")
        );
        assert_eq!(
            kind("{\n\t\"event_id\":\"e\",\r\n\"type\":\"x\"\n}"),
            Some("x")
        );
    }

    #[test]
    fn type_after_a_huge_delta() {
        let delta = "QUJD".repeat(1 << 18);
        let json = format!(
            r#"{{"delta":"{delta}","item_id":"item_1","type":"response.output_audio.delta"}}"#
        );
        assert_eq!(kind(&json), Some("response.output_audio.delta"));
    }

    #[test]
    fn nested_type_keys_are_not_the_event_type() {
        let json = r#"{"response":{"type":"nested","output":[{"type":"message","content":[{"type":"audio"}]}]},"item":[{"type":"x"}],"type":"response.done"}"#;
        assert_eq!(kind(json), Some("response.done"));
        assert_eq!(keys(json), ["response", "item", "type"]);
        assert_eq!(kind(r#"{"session":{"type":"realtime"}}"#), None);
        assert_eq!(kind(r#"{"outer":[[["type"]],{"type":"y"}]}"#), None);
    }

    #[test]
    fn escaped_quotes_and_brackets_inside_strings() {
        let json = r#"{"transcript":"she said \"type\":\"fake\" {[}]\\","obj":{"a":"}\"{","b":["]"]},"type":"real"}"#;
        assert_eq!(kind(json), Some("real"));
        assert_eq!(keys(json), ["transcript", "obj", "type"]);
        // A key with an escaped quote is one key.
        assert_eq!(keys(r#"{"a\"type":"x","type":"y"}"#), ["a\\\"type", "type"]);
        assert_eq!(kind(r#"{"a\"type":"x","type":"y"}"#), Some("y"));
    }

    #[test]
    fn stops_once_the_type_is_found_without_reading_further() {
        // Everything after the type is garbage: the walker never gets there.
        assert_eq!(
            kind(r#"{"type":"response.output_audio.delta","delta":"AAAA"#),
            Some("response.output_audio.delta")
        );
        assert_eq!(kind(r#"{"type":"x", garbage"#), Some("x"));
    }

    #[test]
    fn malformed_input_ends_the_walk_without_panicking() {
        for json in [
            "",
            "   ",
            "[]",
            "\"type\"",
            "{",
            "{}",
            "{\"",
            "{\"type",
            "{\"type\"",
            "{\"type\":",
            "{\"type\" \"x\"}",
            "{\"a\":1 \"type\":\"x\"}",
            "{\"a\":\"\\",
            "{\"a\":\"\\u00",
            "{\"a\":{\"b\":[1,2}",
            "{\"a\":,\"type\":\"x\"}",
            "{type:\"x\"}",
            "{\"type\":1}",
        ] {
            assert_eq!(kind(json), None, "{json:?}");
        }
        // Every prefix of a real event is handled.
        let event = r#"{"event_id":"e\u00e9\"","response":{"usage":{"a":[1,{"b":"c"}]}},"type":"response.done"}"#;
        for end in 0..event.len() {
            let _ = kind(&event[..end]);
        }
        assert_eq!(kind(event), Some("response.done"));
    }

    #[test]
    fn measures_strings_without_unescaping() {
        let json = r#"{"audio":"ab\/c\u002fd","x":""}"#;
        let lengths: Vec<usize> = members(json.as_bytes())
            .map(|(_, value)| match value {
                Value::Str(text) => text.ascii_len(),
                Value::Other => usize::MAX,
            })
            .collect();
        assert_eq!(lengths, [6, 0]);
    }

    fn class(json: &str) -> Class {
        classify(json.as_bytes())
    }

    fn plain(json: &str) -> Option<&str> {
        match classify(json.as_bytes()) {
            Class::Plain(range) => Some(&json[range]),
            _ => None,
        }
    }

    #[test]
    fn classification_reads_the_type_as_a_json_parser_does() {
        assert_eq!(
            plain(r#"{"event_id":"e","type":"session.update"}"#),
            Some("session.update")
        );
        // Escapes in the value or the key are decoded.
        assert_eq!(
            class(r#"{"type":"session\u002eupdate"}"#),
            Class::Decoded("session.update".into())
        );
        assert_eq!(
            plain(r#"{"t\u0079pe":"session.update"}"#),
            Some("session.update")
        );
        assert_eq!(class(r#"{"type":"a\"b"}"#), Class::Decoded("a\"b".into()));
        // A repeated type is neither the first nor the last: it is ambiguous.
        assert_eq!(
            class(r#"{"type":"input_audio_buffer.append","type":"session.update"}"#),
            Class::Duplicate
        );
        assert_eq!(
            class(r#"{"type":"a","x":{"type":"b"},"typ\u0065":"c"}"#),
            Class::Duplicate
        );
        assert_eq!(class(r#"{"type":1,"type":"a"}"#), Class::Duplicate);
        // Nested types, other keys and non-objects are not types.
        assert_eq!(class(r#"{"session":{"type":"realtime"}}"#), Class::Untyped);
        assert_eq!(class(r#"{"type":null}"#), Class::Untyped);
        assert_eq!(class(r#"{"type":"\ud800"}"#), Class::Untyped);
        assert_eq!(class("[1]"), Class::Untyped);
        assert_eq!(class("\u{0}binary"), Class::Untyped);
    }

    #[test]
    fn non_objects_have_no_members() {
        assert_eq!(members(b"[{\"type\":\"x\"}]").count(), 0);
        assert_eq!(members(b"\x00\x01binary").count(), 0);
    }
}
