//! The browser console: one static page, its script and its microphone
//! worklet, compiled into the binary so it works offline.

use axum::Router;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};

const PAGE: &str = include_str!("console.html");
const SCRIPT: &str = include_str!("console.js");
const WORKLET: &str = include_str!("mic-worklet.js");

/// `/`, `/console.js`, `/mic-worklet.js`, and `/console/config.json`
/// (the models to suggest and whether a key is needed).
pub fn routes(models: Vec<String>, auth: bool) -> Router {
    let config = serde_json::json!({"models": models, "auth": auth});
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", PAGE)))
        .route("/console.js", get(|| asset("text/javascript", SCRIPT)))
        .route("/mic-worklet.js", get(|| asset("text/javascript", WORKLET)))
        .route(
            "/console/config.json",
            get(move || async move { Json(config) }),
        )
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
}
