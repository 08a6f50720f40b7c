//! The official OpenAI Python SDK (`openai[realtime]`) drives a Gemini Live
//! session through the layer: `tests/python/gemini_text_turn.py` against a
//! gateway whose `gemini` provider is the scripted Gemini upstream.
//!
//! The interpreter is `$OPENAI_PYTHON`, else `python3`. Without it or without
//! the SDK the test is skipped with a message, unless `CI=true`: then it
//! fails. `.ci/run` installs the pinned SDK and sets `OPENAI_PYTHON`.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use tower_realtime::provider::Gemini;
use tower_realtime::testing::{GeminiLive, MockUpstream, Trigger};
use tower_realtime::{Providers, RealtimeLayer, Secret};

use common::{PROMPTLY, serve_axum};

const KEY: &str = "AIza-test-SECRET";

fn python() -> String {
    std::env::var("OPENAI_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Why the SDK cannot run here, if it cannot.
fn missing(python: &str) -> Option<String> {
    let probe = std::process::Command::new(python)
        .args(["-c", "import openai, websockets"])
        .output();
    match probe {
        Err(error) => Some(format!("`{python}` could not run: {error}")),
        Ok(output) if !output.status.success() => Some(format!(
            "`{python}` has no `openai[realtime]` ({})",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        )),
        Ok(_) => None,
    }
}

fn skip_or_fail(missing: &str) {
    let how =
        "`pip install \"openai[realtime]\"`, or set OPENAI_PYTHON to an interpreter that has it";
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("CI=true but the OpenAI Python SDK test cannot run: {missing}; {how}");
    }
    // Written past the test harness's capture, so that the skip is seen.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED the_openai_python_sdk_holds_a_gemini_text_turn: {missing}; {how}. \
         CI=true turns this skip into a failure."
    );
}

#[tokio::test]
async fn the_openai_python_sdk_holds_a_gemini_text_turn() {
    let python = python();
    if let Some(missing) = missing(&python) {
        return skip_or_fail(&missing);
    }
    let script = GeminiLive::new().reply(
        Trigger::TurnComplete,
        GeminiLive::text_turn("Hi from Gemini!", 11, 7),
    );
    let upstream = MockUpstream::with_script(script).await.unwrap();
    let gemini = Gemini::new(Secret::new(KEY))
        .base_url(&format!("http://{}", upstream.addr()))
        .unwrap();
    let gateway = serve_axum(RealtimeLayer::new(Providers::new().with("gemini", gemini))).await;

    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/gemini_text_turn.py");
    let run = tokio::process::Command::new(&python)
        .arg(file)
        .arg(format!("http://{}/v1", gateway.addr))
        .arg("gemini/gemini-live-2.5-flash-preview")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    // The interpreter's start-up and imports take a while on a loaded machine.
    let output = tokio::time::timeout(PROMPTLY * 6, run)
        .await
        .expect("the Python client finishes")
        .expect("the Python client runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed:\n{stderr}"
    );
    let seen: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("JSON from the Python client, got {output:?}"));

    assert_eq!(seen.get("error"), None, "{seen}");
    assert_eq!(seen["types"][0], "session.created", "{seen}");
    assert!(seen["session_id"].as_str().unwrap().starts_with("sess_"));
    assert_eq!(seen["transcript"], "Hi from Gemini!");
    assert_eq!(seen["audio_bytes"], 8, "{seen}");
    assert_eq!(seen["status"], "completed");
    assert_eq!(seen["usage"]["input_tokens"], 11);
    assert_eq!(seen["usage"]["output_tokens"], 7);
    assert_eq!(seen["usage"]["total_tokens"], 18);

    let received: Vec<Value> = upstream
        .received()
        .iter()
        .map(|message| serde_json::from_slice(&message.clone().into_data()).unwrap())
        .collect();
    let setup = &received[0]["setup"];
    assert_eq!(
        setup["systemInstruction"]["parts"][0]["text"],
        "Answer in one sentence."
    );
    assert_eq!(
        received[1]["clientContent"]["turns"][0]["parts"][0]["text"],
        "Hello from Python"
    );
    assert_eq!(upstream.requests()[0].headers["x-goog-api-key"], KEY);
}
