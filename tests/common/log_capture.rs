//! Every tracing event and `log` record of the process, at TRACE level,
//! formatted into one buffer.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The captured output of the whole test binary.
#[derive(Clone, Default)]
pub struct Captured {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl Captured {
    /// Everything formatted so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs (once) a global subscriber that formats every span and event at
/// TRACE level, with all their fields, and forwards `log` records
/// (tungstenite, rustls) to it.
pub fn capture() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            tracing_subscriber::registry()
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(captured.clone())
                        .with_ansi(false)
                        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL),
                )
                .with(tracing_subscriber::filter::LevelFilter::TRACE)
                .try_init()
                .expect("no other global subscriber");
            captured
        })
        .clone()
}
