//! The SDP offer of `POST /v1/realtime/calls`, in each encoding clients send.

use bytes::Bytes;
use serde_json::Value;

use super::multipart;
use crate::error::Rejection;

/// An offer as a client sent it: the SDP, and the session it asks for (if any).
#[derive(Clone)]
pub(crate) struct Offer {
    pub(crate) sdp: String,
    pub(crate) session: Option<Value>,
}

// SDP carries ICE credentials: never print it.
impl std::fmt::Debug for Offer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offer")
            .field("sdp_bytes", &self.sdp.len())
            .finish_non_exhaustive()
    }
}

impl Offer {
    /// Reads `body` by its content type: raw `application/sdp`,
    /// `multipart/form-data` with `sdp` and `session` parts (openai-node,
    /// Azure), or JSON `{"sdp", "session"}` (openai-python).
    pub(crate) fn parse(content_type: Option<&str>, body: &Bytes) -> Result<Self, Rejection> {
        let content_type = content_type.unwrap_or("application/sdp");
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let offer = match essence.as_str() {
            "application/sdp" | "text/plain" => Offer {
                sdp: text(body)?,
                session: None,
            },
            "application/json" => {
                let json: Value = serde_json::from_slice(body).map_err(|_| {
                    Rejection::bad_request("invalid_json", "the request body is not valid JSON")
                })?;
                let sdp = json
                    .get("sdp")
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing_sdp("the JSON body has no `sdp` string"))?
                    .to_owned();
                Offer {
                    sdp,
                    session: session(json.get("session").cloned())?,
                }
            }
            "multipart/form-data" => {
                let boundary = multipart::boundary(content_type).ok_or_else(|| {
                    Rejection::bad_request(
                        "invalid_multipart",
                        "the multipart content type has no usable boundary",
                    )
                })?;
                let parts = multipart::parse(body, &boundary).ok_or_else(|| {
                    Rejection::bad_request("invalid_multipart", "the multipart body is malformed")
                })?;
                let part = |name: &str| parts.iter().find(|part| part.name == name);
                let sdp = text(
                    &part("sdp")
                        .ok_or_else(|| missing_sdp("the form has no `sdp` part"))?
                        .body,
                )?;
                let requested = match part("session") {
                    Some(part) => Some(serde_json::from_slice(&part.body).map_err(|_| {
                        Rejection::bad_request(
                            "invalid_session",
                            "the `session` part is not valid JSON",
                        )
                        .with_param("session")
                    })?),
                    None => None,
                };
                Offer {
                    sdp,
                    session: session(requested)?,
                }
            }
            _ => {
                return Err(Rejection::new(
                    http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    crate::error::ErrorType::InvalidRequest,
                    "unsupported_media_type",
                    "send the offer as application/sdp, multipart/form-data or application/json",
                ));
            }
        };
        if !offer.sdp.trim_start().starts_with("v=0") {
            return Err(missing_sdp(
                "the offer is not SDP (it must start with `v=0`)",
            ));
        }
        Ok(offer)
    }
}

fn text(body: &Bytes) -> Result<String, Rejection> {
    String::from_utf8(body.to_vec())
        .map_err(|_| Rejection::bad_request("invalid_sdp", "the SDP offer is not UTF-8"))
}

fn session(session: Option<Value>) -> Result<Option<Value>, Rejection> {
    match session {
        None | Some(Value::Null) => Ok(None),
        Some(object @ Value::Object(_)) => Ok(Some(object)),
        Some(_) => Err(Rejection::bad_request(
            "invalid_session",
            "`session` must be a JSON object",
        )
        .with_param("session")),
    }
}

fn missing_sdp(message: &str) -> Rejection {
    Rejection::bad_request("invalid_sdp", message).with_param("sdp")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n";

    #[test]
    fn reads_each_encoding() {
        let raw = Offer::parse(Some("application/sdp"), &Bytes::from(SDP)).unwrap();
        assert_eq!(raw.sdp, SDP);
        assert!(raw.session.is_none());

        let json = serde_json::json!({"sdp": SDP, "session": {"type": "realtime"}});
        let json = Offer::parse(Some("application/json"), &Bytes::from(json.to_string())).unwrap();
        assert_eq!(json.sdp, SDP);
        assert_eq!(json.session.unwrap()["type"], "realtime");

        let form = multipart::build(
            "b",
            &[
                ("sdp", "application/sdp", SDP.as_bytes()),
                ("session", "application/json", b"{\"model\":\"m\"}"),
            ],
        );
        let form =
            Offer::parse(Some("multipart/form-data; boundary=b"), &Bytes::from(form)).unwrap();
        assert_eq!(form.sdp, SDP);
        assert_eq!(form.session.as_ref().unwrap()["model"], "m");
        assert!(!format!("{form:?}").contains("v=0"));
    }

    #[test]
    fn refuses_what_is_no_offer() {
        let status = |content_type: &str, body: &str| {
            Offer::parse(Some(content_type), &Bytes::from(body.to_owned()))
                .unwrap_err()
                .status
                .as_u16()
        };
        assert_eq!(status("application/sdp", "hello"), 400);
        assert_eq!(status("application/json", "{\"sdp\":1}"), 400);
        assert_eq!(
            status("application/json", "{\"sdp\":\"v=0\",\"session\":3}"),
            400
        );
        assert_eq!(status("multipart/form-data; boundary=b", "--b--"), 400);
        assert_eq!(status("image/png", SDP), 415);
    }
}
