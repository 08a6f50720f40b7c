//! `multipart/form-data`: just enough to read the `sdp` and `session` parts
//! clients send, and to write them upstream.

use bytes::Bytes;

/// The most parts one offer may have.
const MAX_PARTS: usize = 8;

/// One part of a form: its name, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) name: String,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Bytes,
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        (name.trim().eq_ignore_ascii_case("boundary"))
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|value| !value.is_empty() && value.len() <= 70)
    })
}

/// The parts of `body`, or `None` when it is not a well-formed form with
/// this boundary (or has more than a few parts).
pub(crate) fn parse(body: &Bytes, boundary: &str) -> Option<Vec<Part>> {
    let delimiter = format!("--{boundary}");
    let text = body.as_ref();
    let mut parts = Vec::new();
    let mut at = find(text, delimiter.as_bytes(), 0)? + delimiter.len();
    loop {
        if text[at..].starts_with(b"--") {
            return Some(parts);
        }
        at = skip_line_end(text, at)?;
        let next = find(text, delimiter.as_bytes(), at)?;
        let part = &text[at..next];
        let part = part
            .strip_suffix(b"\r\n")
            .or_else(|| part.strip_suffix(b"\n"))?;
        let (head_end, body_start) = find(part, b"\r\n\r\n", 0)
            .map(|end| (end, end + 4))
            .or_else(|| find(part, b"\n\n", 0).map(|end| (end, end + 2)))?;
        let head = std::str::from_utf8(&part[..head_end]).ok()?;
        let mut name = None;
        let mut content_type = None;
        for line in head.lines() {
            let Some((header, value)) = line.split_once(':') else {
                continue;
            };
            if header.trim().eq_ignore_ascii_case("content-disposition") {
                name = disposition_name(value);
            } else if header.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(value.trim().to_owned());
            }
        }
        let offset = at + body_start;
        parts.push(Part {
            name: name?,
            content_type,
            body: body.slice(offset..offset + (part.len() - body_start)),
        });
        if parts.len() > MAX_PARTS {
            return None;
        }
        at = next + delimiter.len();
    }
}

/// A form of `parts` with `boundary`.
pub(crate) fn build(boundary: &str, parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, content_type, content) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

fn disposition_name(value: &str) -> Option<String> {
    value.split(';').find_map(|param| {
        let (key, value) = param.split_once('=')?;
        (key.trim().eq_ignore_ascii_case("name")).then(|| value.trim().trim_matches('"').to_owned())
    })
}

fn skip_line_end(text: &[u8], at: usize) -> Option<usize> {
    if text[at..].starts_with(b"\r\n") {
        Some(at + 2)
    } else if text[at..].starts_with(b"\n") {
        Some(at + 1)
    } else {
        None
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|at| at + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_form_parses_back() {
        let form = build(
            "gw-1",
            &[
                (
                    "sdp",
                    "application/sdp",
                    b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n",
                ),
                ("session", "application/json", br#"{"type":"realtime"}"#),
            ],
        );
        let parts = parse(&Bytes::from(form), "gw-1").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "sdp");
        assert_eq!(parts[0].body, "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n");
        assert_eq!(parts[1].content_type.as_deref(), Some("application/json"));
        assert_eq!(parts[1].body, r#"{"type":"realtime"}"#);
    }

    #[test]
    fn boundaries_and_broken_forms() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"abc\"").as_deref(),
            Some("abc")
        );
        assert_eq!(boundary("application/json; boundary=abc"), None);
        assert_eq!(boundary("multipart/form-data"), None);
        assert!(parse(&Bytes::from_static(b"--x\r\nno head"), "x").is_none());
        assert!(parse(&Bytes::from_static(b"nothing"), "x").is_none());
    }
}
