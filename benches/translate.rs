//! What the Gemini Live translator costs per event on the audio path: client
//! appends into Gemini's `realtimeInput`, and Gemini's audio frames into
//! `response.output_audio.delta`. Two tables: the translator alone, in one
//! thread; then the same events relayed through the layer to a plain
//! (OpenAI-schema) upstream and to a Gemini upstream, side by side, counting
//! the gateway's CPU time only.
//!
//! ```sh
//! cargo bench --bench translate
//! ```
//!
//! `cargo test --benches` runs it quick, as a smoke test.

#[path = "translate/relayed.rs"]
mod relayed;

use std::hint::black_box;
use std::time::Instant;

use data_encoding::BASE64;
use serde_json::json;
use tower_realtime::translate::gemini::{Backend, GeminiConfig, GeminiTranslator, Output};

/// One workload: a name, and one event's worth of work.
type Row = (&'static str, Box<dyn FnMut() -> Vec<Output>>);

/// A translator past setup, with `update` applied first.
fn live(backend: Backend, update: serde_json::Value) -> GeminiTranslator {
    let model = match backend {
        Backend::Vertex => "projects/p/locations/l/publishers/google/models/m",
        _ => "models/m",
    };
    let mut translator = GeminiTranslator::new(GeminiConfig::new(backend, model));
    translator.start();
    translator.client_event(
        json!({"type": "session.update", "session": update})
            .to_string()
            .as_bytes(),
    );
    translator.configuration_timeout();
    translator.upstream_message(b"{\n  \"setupComplete\": {}\n}\n");
    translator
}

/// Nanoseconds per call of `step`, over `rounds` calls.
fn per_call(rounds: u32, mut step: impl FnMut() -> Vec<Output>) -> f64 {
    for _ in 0..rounds / 10 {
        black_box(step());
    }
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(step());
    }
    start.elapsed().as_nanos() as f64 / f64::from(rounds)
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let rounds = if full { 20_000 } else { 50 };

    // 20 ms of 24 kHz PCM16 (960 bytes), as an OpenAI client appends it.
    let pcm = BASE64.encode(&[7u8; 960]);
    let append =
        json!({"type": "input_audio_buffer.append", "event_id": "evt_1", "audio": pcm}).to_string();
    // 20 ms of G.711 (160 bytes).
    let ulaw = json!({"type": "input_audio_buffer.append", "audio": BASE64.encode(&[0x55; 160])})
        .to_string();
    // 40 ms of model audio, as Gemini sends it: a binary frame of pretty JSON.
    let delta = serde_json::to_vec_pretty(&json!({"serverContent": {"modelTurn": {"parts": [
        {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": BASE64.encode(&[3u8; 1920])}}]}}}))
    .unwrap();

    let g711 = json!({"audio": {"input": {"format": {"type": "audio/pcmu"}}, "output": {"format": {"type": "audio/pcmu"}}}});
    let rows: [Row; 5] = [
        ("append 20 ms PCM, spliced (Gemini API)", {
            let mut t = live(Backend::GeminiApi, json!({}));
            let event = append.clone();
            Box::new(move || t.client_event(event.as_bytes()))
        }),
        ("append 20 ms PCM, resampled to 16 kHz (Vertex)", {
            let mut t = live(Backend::Vertex, json!({}));
            let event = append.clone();
            Box::new(move || t.client_event(event.as_bytes()))
        }),
        ("append 20 ms G.711, decoded", {
            let mut t = live(Backend::GeminiApi, g711.clone());
            Box::new(move || t.client_event(ulaw.as_bytes()))
        }),
        ("model audio 40 ms to a PCM client", {
            let mut t = live(Backend::GeminiApi, json!({}));
            let frame = delta.clone();
            Box::new(move || t.upstream_message(&frame))
        }),
        ("model audio 40 ms to a G.711 client", {
            let mut t = live(Backend::GeminiApi, g711);
            let frame = delta.clone();
            Box::new(move || t.upstream_message(&frame))
        }),
    ];
    println!("| event | µs per event |");
    println!("|---|---|");
    for (name, mut step) in rows {
        let ns = per_call(rounds, &mut step);
        println!("| {name} | {:.2} |", ns / 1000.0);
    }

    let scale = if full {
        relayed::Scale {
            events: 20_000,
            rounds: 3,
        }
    } else {
        relayed::Scale {
            events: 20,
            rounds: 1,
        }
    };
    relayed::main(&scale);
}
