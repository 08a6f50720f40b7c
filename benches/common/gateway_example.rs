//! The gateway example's release build as a bench runs it: its upstream as
//! the `openai` provider, its limits out of the way, no demo, no keys.
//! Included with `#[path]` by the benches that measure it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Starts `target/release/examples/gateway` (or the binary the environment
/// variable `path_variable` names) with `openai_base_url` as its `openai`
/// provider; the child and where it listens. `None` when it is not built
/// (`cargo build --release --all-features --example gateway`). Its stdout
/// is drained in a thread and its logs discarded.
pub(crate) fn spawn(path_variable: &str, openai_base_url: &str) -> Option<(Child, SocketAddr)> {
    let path = std::env::var_os(path_variable)
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.join("examples").join("gateway"))
        })
        .filter(|path| path.is_file())?;
    let mut child = Command::new(&path)
        .args(["--listen", "127.0.0.1:0", "--no-demo"])
        .args([
            "--sessions-per-minute",
            "1000000000",
            "--max-sessions",
            "1000000",
        ])
        .env("OPENAI_API_KEY", "sk-bench")
        .env("OPENAI_BASE_URL", openai_base_url)
        .env_remove("GATEWAY_API_KEY")
        .env_remove("GATEWAY_API_KEYS")
        .env_remove("REALTIME_PROVIDERS")
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("start {}: {error}", path.display()));
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    let addr = loop {
        line.clear();
        let read = stdout
            .read_line(&mut line)
            .expect("read the example's banner");
        assert!(read > 0, "the gateway example exited before listening");
        if let Some(url) = line.trim().strip_prefix("listening") {
            let url = url.trim();
            break url
                .strip_prefix("http://")
                .unwrap_or(url)
                .parse()
                .expect("an address");
        }
    };
    // Keep reading its stdout, so that it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    Some((child, addr))
}
