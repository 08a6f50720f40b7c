//! The demo provider's call endpoints, as OpenAI's: `POST
//! /v1/realtime/calls` and `POST /v1/realtime/calls/{id}/hangup`, open to
//! browsers (CORS, `Location` exposed) as OpenAI's are.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tower_http::cors::CorsLayer;

use super::Calls;
use super::offer::{MAX_BODY, Offer};
use super::peer::{AnswerError, answer};

/// The call routes, on `calls`.
pub(crate) fn routes(calls: Calls) -> Router {
    Router::new()
        .route("/v1/realtime/calls", post(create).fallback(only_post))
        .route(
            "/v1/realtime/calls/{id}/hangup",
            post(hang_up).fallback(only_post),
        )
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not_found",
                "No such endpoint on the demo provider.",
            )
        })
        // `create` enforces its own limit, with an OpenAI-shaped `413`.
        .layer(DefaultBodyLimit::disable())
        .layer(CorsLayer::permissive())
        .with_state(calls)
}

/// `201` with the SDP answer and `Location: /v1/realtime/calls/rtc_…`.
async fn create(State(calls): State<Calls>, headers: HeaderMap, body: Body) -> Response {
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "offer_too_large",
            "The offer is larger than 64 KiB.",
        );
    };
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let offer = match Offer::parse(content_type, &body) {
        Ok(offer) => offer,
        Err(bad) => return error(StatusCode::BAD_REQUEST, "invalid_offer", bad.0),
    };
    match answer(&calls, &offer.sdp, offer.model()).await {
        Ok((id, sdp)) => (
            StatusCode::CREATED,
            [
                (CONTENT_TYPE, "application/sdp".to_owned()),
                (LOCATION, format!("/v1/realtime/calls/{id}")),
            ],
            sdp,
        )
            .into_response(),
        Err(AnswerError::Offer(reason)) => {
            tracing::info!(%reason, "demo provider: an offer it cannot answer");
            error(
                StatusCode::BAD_REQUEST,
                "invalid_offer",
                "The demo answers offers with an audio section it can send PCMU (G.711 μ-law) on.",
            )
        }
        Err(AnswerError::Socket(reason)) => {
            tracing::warn!(%reason, "demo provider: no UDP socket for a call");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "The demo could not open a UDP socket.",
            )
        }
    }
}

/// `200` with an empty body, or `404` for a call that is not live.
async fn hang_up(State(calls): State<Calls>, Path(id): Path<String>) -> Response {
    match calls.get(&id) {
        Some(call) => {
            call.hang_up();
            StatusCode::OK.into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            "call_not_found",
            "No live call has this id.",
        ),
    }
}

async fn only_post() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Use POST.",
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"type": "invalid_request_error", "code": code, "message": message, "param": null}});
    (status, axum::Json(body)).into_response()
}
