//! The SDP offer of `POST /v1/realtime/calls`, in the three encodings
//! clients send: raw `application/sdp` (browsers), `multipart/form-data`
//! with an `sdp` and a `session` part (openai-node, Azure), and JSON
//! `{"sdp", "session"}` (openai-python).

use serde_json::Value;

/// The largest offer accepted, in bytes.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// An offer and the session configuration that came with it, if any.
#[derive(Debug)]
pub(crate) struct Offer {
    pub(crate) sdp: String,
    pub(crate) session: Option<Value>,
}

/// Why a body is not an offer (the message of a `400`).
#[derive(Debug, PartialEq)]
pub(crate) struct BadOffer(pub(crate) &'static str);

impl Offer {
    /// Reads an offer from a request body of type `content_type`.
    pub(crate) fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Self, BadOffer> {
        let content_type = content_type.unwrap_or("application/sdp");
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let offer = match essence.as_str() {
            "application/sdp" => Self {
                sdp: text(body)?,
                session: None,
            },
            "application/json" => {
                let json: Value = serde_json::from_slice(body)
                    .map_err(|_| BadOffer("The body is not valid JSON."))?;
                let sdp = json["sdp"]
                    .as_str()
                    .ok_or(BadOffer("The JSON body has no `sdp` string."))?;
                Self {
                    sdp: sdp.to_owned(),
                    session: json.get("session").cloned(),
                }
            }
            "multipart/form-data" => multipart(content_type, body)?,
            _ => {
                return Err(BadOffer(
                    "Send the offer as application/sdp, multipart/form-data or application/json.",
                ));
            }
        };
        if !offer.sdp.starts_with("v=0") {
            return Err(BadOffer("The offer is not an SDP description."));
        }
        Ok(offer)
    }

    /// The model the offer's session names, if any.
    pub(crate) fn model(&self) -> Option<&str> {
        self.session.as_ref()?.get("model")?.as_str()
    }
}

fn text(body: &[u8]) -> Result<String, BadOffer> {
    String::from_utf8(body.to_vec()).map_err(|_| BadOffer("The offer is not UTF-8."))
}

/// The `sdp` and `session` parts of a `multipart/form-data` body.
fn multipart(content_type: &str, body: &[u8]) -> Result<Offer, BadOffer> {
    let boundary = content_type
        .split(';')
        .filter_map(|parameter| parameter.trim().strip_prefix("boundary="))
        .next()
        .map(|boundary| boundary.trim_matches('"'))
        .ok_or(BadOffer("The multipart body has no boundary."))?;
    let body = std::str::from_utf8(body).map_err(|_| BadOffer("The body is not UTF-8."))?;
    let delimiter = format!("--{boundary}");
    let mut sdp = None;
    let mut session = None;
    for part in body.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let (headers, content) = part
            .split_once("\r\n\r\n")
            .ok_or(BadOffer("A multipart part has no headers."))?;
        let content = content.strip_suffix("\r\n").unwrap_or(content);
        let name = headers
            .lines()
            .filter(|line| {
                line.to_ascii_lowercase()
                    .starts_with("content-disposition:")
            })
            .flat_map(|line| line.split(';'))
            .find_map(|parameter| parameter.trim().strip_prefix("name="))
            .map(|name| name.trim_matches('"'));
        match name {
            Some("sdp") => sdp = Some(content.to_owned()),
            Some("session") => {
                session = Some(
                    serde_json::from_str(content)
                        .map_err(|_| BadOffer("The `session` part is not valid JSON."))?,
                );
            }
            _ => {}
        }
    }
    Ok(Offer {
        sdp: sdp.ok_or(BadOffer("The multipart body has no `sdp` part."))?,
        session,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n";

    #[test]
    fn raw_sdp() {
        let offer = Offer::parse(Some("application/sdp"), SDP.as_bytes()).unwrap();
        assert_eq!(offer.sdp, SDP);
        assert!(offer.session.is_none());
        // No content type: browsers' `fetch` with a string body says text/plain, curl nothing.
        assert!(Offer::parse(None, SDP.as_bytes()).is_ok());
    }

    #[test]
    fn json_as_openai_python_sends_it() {
        let body =
            serde_json::json!({"sdp": SDP, "session": {"type": "realtime", "model": "realtime"}});
        let offer = Offer::parse(Some("application/json"), body.to_string().as_bytes()).unwrap();
        assert_eq!(offer.sdp, SDP);
        assert_eq!(offer.model(), Some("realtime"));
    }

    #[test]
    fn multipart_as_openai_node_sends_it() {
        let body = format!(
            "--X\r\nContent-Disposition: form-data; name=\"sdp\"\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n\
             --X\r\nContent-Disposition: form-data; name=\"session\"\r\nContent-Type: application/json\r\n\r\n\
             {{\"type\":\"realtime\",\"model\":\"realtime\"}}\r\n--X--\r\n"
        );
        let offer = Offer::parse(Some("multipart/form-data; boundary=X"), body.as_bytes()).unwrap();
        assert_eq!(offer.sdp, SDP);
        assert_eq!(offer.model(), Some("realtime"));
    }

    #[test]
    fn refusals() {
        let bad = |content_type, body: &str| {
            Offer::parse(Some(content_type), body.as_bytes()).unwrap_err()
        };
        assert_eq!(
            bad("application/sdp", "hello"),
            BadOffer("The offer is not an SDP description.")
        );
        assert_eq!(
            bad("application/json", "{}"),
            BadOffer("The JSON body has no `sdp` string.")
        );
        assert_eq!(
            bad("application/json", "{"),
            BadOffer("The body is not valid JSON.")
        );
        assert_eq!(
            bad("multipart/form-data", ""),
            BadOffer("The multipart body has no boundary.")
        );
        assert_eq!(
            bad("multipart/form-data; boundary=X", "--X--\r\n"),
            BadOffer("The multipart body has no `sdp` part.")
        );
        assert!(bad("image/png", SDP).0.contains("application/sdp"));
    }
}
