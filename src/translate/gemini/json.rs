//! Reading Gemini messages, which come in two spellings.

use serde_json::{Map, Value};

/// The member `camel` of `object`, or its snake_case spelling `snake`.
pub(super) fn field<'a>(
    object: &'a Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Option<&'a Value> {
    object.get(camel).or_else(|| object.get(snake))
}

/// A member read as an object.
pub(super) fn object<'a>(
    object: &'a Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Option<&'a Map<String, Value>> {
    field(object, camel, snake)?.as_object()
}

/// A member read as a string.
pub(super) fn string<'a>(
    object: &'a Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Option<&'a str> {
    field(object, camel, snake)?.as_str()
}

/// A member read as `true` (absent, `false` and other types are `false`).
pub(super) fn flag(object: &Map<String, Value>, camel: &str, snake: &str) -> bool {
    field(object, camel, snake).and_then(Value::as_bool) == Some(true)
}

/// A count: a non-negative integer, or one written as a string (int64 in
/// proto JSON).
pub(super) fn count(object: &Map<String, Value>, camel: &str, snake: &str) -> Option<u64> {
    match field(object, camel, snake)? {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// A proto duration (`"30s"`, `"1.250s"`) in milliseconds.
pub(super) fn duration_ms(text: &str) -> Option<u64> {
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_spellings_and_string_counts() {
        let Value::Object(message) =
            json!({"turn_complete": true, "promptTokenCount": "42", "goAway": {}})
        else {
            unreachable!()
        };
        assert!(flag(&message, "turnComplete", "turn_complete"));
        assert_eq!(
            count(&message, "promptTokenCount", "prompt_token_count"),
            Some(42)
        );
        assert!(object(&message, "goAway", "go_away").is_some());
        assert_eq!(duration_ms("30s"), Some(30_000));
        assert_eq!(duration_ms("1.250s"), Some(1250));
        assert_eq!(duration_ms("-1s"), None);
        assert_eq!(duration_ms("30"), None);
    }
}
