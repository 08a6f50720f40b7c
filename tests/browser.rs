//! The console of the gateway example in a real browser: the example binary
//! with its demo provider, headless Chromium driven by playwright-core
//! (`tests/browser/console.spec.mjs`).
//!
//! Needs Chromium (`apt-get install -y chromium`, or `CHROMIUM=/path`) and
//! Node.js 20 or later; without them the test is skipped, unless
//! `REQUIRE_BROWSER_TEST=1` (as in CI) makes that a failure.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::example::{Example, example_binary, scratch_dir};

const KEY: &str = "browser-test-key";

#[test]
fn the_console_holds_a_demo_session_in_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if let Err(missing) = tools(&chromium, &dir) {
        skip_or_fail(&missing);
        return;
    }

    let started = Instant::now();
    let gateway = Example::start(
        &example_binary("gateway"),
        &["--listen", "127.0.0.1:0"],
        Some(KEY),
    );
    let screenshots = scratch_dir("browser");
    let output = Command::new("node")
        .arg("console.spec.mjs")
        .current_dir(&dir)
        .env("GATEWAY_URL", format!("http://{}", gateway.addr))
        .env("GATEWAY_API_KEY", KEY)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT_DIR", &screenshots)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!(
                "no result from the browser script\nstdout:\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    assert!(
        output.status.success() && report["ok"] == true,
        "the browser script failed: {report:#}\nstderr:\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        gateway.log()
    );

    // What the page showed, as the script read it.
    assert!(
        report["text"]["reply"]
            .as_str()
            .unwrap()
            .starts_with("You said: “Hello from Chromium”.")
    );
    assert!(report["text"]["audioDeltas"].as_u64().unwrap() >= 10);
    assert!(report["text"]["inputTokens"].as_u64().unwrap() > 0);
    assert!(report["text"]["outputTokens"].as_u64().unwrap() > 0);
    assert!(
        report["voice"]["reply"]
            .as_str()
            .unwrap()
            .starts_with("I heard ")
    );
    assert!(report["refusal"].as_str().unwrap().contains("401"));
    assert!(report["call"].as_str().unwrap().starts_with("gw_call_"));
    assert!(report["rtp"]["packets"].as_u64().unwrap() >= 50);
    assert_eq!(report["webrtc"]["responses"], 2);
    // The console's own sideband of the call, through the gateway, saw the usage.
    assert_eq!(report["sideband"]["opened"], 1);
    assert!(report["sideband"]["outputTokens"].as_u64().unwrap() > 0);
    for shot in ["console.png", "console-refused.png", "console-webrtc.png"] {
        let png = std::fs::read(screenshots.join(shot)).expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "{shot} is a PNG");
    }

    // The gateway logged the sessions and the refusal, and stops cleanly.
    let log = gateway.stop_gracefully();
    assert!(log.contains("status=101"), "{log}");
    assert!(log.contains("status=401"), "{log}");
    // The call: minted, answered, metered by the gateway's own sideband
    // (two chimes, 20 audio tokens each), hung up.
    assert!(log.contains("client secret minted"), "{log}");
    let metered = log
        .lines()
        .filter(|line| line.contains("realtime_call{") && line.contains("usage: response"))
        .filter(|line| line.contains("out=23(text 3, audio 20)"))
        .count();
    assert_eq!(metered, 2, "{log}");
    assert!(
        log.lines()
            .any(|line| line.contains("/hangup") && line.contains("status=200")),
        "{log}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "browser test took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        screenshots.display()
    );
}

/// Checks for Chromium and Node.js, and installs playwright-core with
/// `npm ci` when `node_modules` is missing.
fn tools(chromium: &Path, dir: &Path) -> Result<(), String> {
    if !chromium.exists() {
        return Err(format!("Chromium not found at {}", chromium.display()));
    }
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|output| output.status.success()) {
        return Err("Node.js (`node`) not found".into());
    }
    if !dir.join("node_modules/playwright-core").exists() {
        let npm = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .output()
            .map_err(|error| format!("`npm ci` could not run: {error}"))?;
        if !npm.status.success() {
            return Err(format!(
                "`npm ci` in tests/browser failed:\n{}",
                String::from_utf8_lossy(&npm.stderr)
            ));
        }
    }
    Ok(())
}

fn skip_or_fail(missing: &str) {
    let how = "install Chromium (`apt-get install -y chromium` on Debian, or set CHROMIUM=/path/to/chromium) \
               and Node.js 20 or later";
    if std::env::var("REQUIRE_BROWSER_TEST").is_ok_and(|value| value == "1") {
        panic!("REQUIRE_BROWSER_TEST=1 but the browser test cannot run: {missing}; {how}");
    }
    // Written past the test harness's capture, so that the skip is seen.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED the_console_holds_a_demo_session_in_chromium: {missing}; {how}. \
         REQUIRE_BROWSER_TEST=1 turns this skip into a failure."
    );
}
