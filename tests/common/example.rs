//! Running an example binary as a real process: its banner, its log, and a
//! graceful stop with SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// How long an example may take to start or to stop.
const PATIENCE: Duration = Duration::from_secs(60);

/// The built example `name`, next to this test's own binary
/// (`target/<profile>/examples/<name>`). `cargo test` builds the examples
/// before it runs the tests; when the binary is missing or older than the
/// sources (a run of one test target alone), it is built here, with all
/// features as in the README's test command.
pub fn example_binary(name: &str) -> PathBuf {
    let test = std::env::current_exe().expect("the test's path");
    let profile_dir = test
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = std::fs::metadata(&binary)
        .and_then(|meta| meta.modified())
        .ok();
    let sources = [
        root.join("src"),
        root.join("examples"),
        root.join("Cargo.toml"),
    ];
    if built.is_none_or(|built| sources.iter().any(|source| newer_than(source, built))) {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args([
                "build",
                "--all-features",
                "--example",
                name,
                "--manifest-path",
            ])
            .arg(root.join("Cargo.toml"));
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        // The variables cargo sets for this test would look like a changed
        // environment to build scripts, and rebuild them for nothing.
        for (variable, _) in std::env::vars_os() {
            let variable = variable.to_string_lossy();
            if variable.starts_with("CARGO_PKG_")
                || variable.starts_with("CARGO_MANIFEST_")
                || [
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "OUT_DIR",
                ]
                .contains(&variable.as_ref())
            {
                cargo.env_remove(variable.as_ref());
            }
        }
        let status = cargo.status().expect("cargo runs");
        assert!(status.success(), "building the example `{name}` failed");
    }
    binary
}

/// Whether `path`, or a file below it, was modified after `time`.
fn newer_than(path: &Path, time: SystemTime) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| newer_than(&entry.path(), time))
    } else {
        meta.modified().is_ok_and(|modified| modified > time)
    }
}

/// A directory under `target/tmp` for files a test leaves to look at.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// A running example that printed a banner with `listening  http://ADDR`,
/// ended by an empty line.
pub struct Example {
    pub addr: SocketAddr,
    /// The banner, without its empty last line.
    pub banner: String,
    child: Child,
    log: Arc<Mutex<String>>,
    log_reader: Option<JoinHandle<()>>,
}

impl Example {
    /// Starts `binary` with `args`, `GATEWAY_API_KEY` set to `api_key` (or
    /// unset), and waits for its banner (up to an empty line).
    pub fn start(binary: &Path, args: &[&str], api_key: Option<&str>) -> Example {
        Self::start_with_env(binary, args, api_key, &[])
    }

    /// [`start`](Self::start) with these variables set too (provider
    /// variables among them are kept).
    pub fn start_with_env(
        binary: &Path,
        args: &[&str],
        api_key: Option<&str>,
        env: &[(&str, &str)],
    ) -> Example {
        let mut command = Command::new(binary);
        command
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Provider variables of the machine running the tests would add
        // providers: the example sees only what the test gives it.
        for (variable, _) in std::env::vars() {
            let provider_setting = variable.starts_with("REALTIME_")
                || ["_API_KEY", "_BASE_URL", "_API_VERSION", "_AUTH"]
                    .iter()
                    .any(|suffix| variable.ends_with(suffix))
                || variable.contains("_API_KEY_");
            if provider_setting {
                command.env_remove(&variable);
            }
        }
        command.env_remove("GATEWAY_API_KEYS");
        // A Redis of the machine running the tests would share budgets.
        command.env_remove("REDIS_URL");
        match api_key {
            Some(key) => command.env("GATEWAY_API_KEY", key),
            None => command.env_remove("GATEWAY_API_KEY"),
        };
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("the example starts");

        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().expect("piped stderr");
        let log_reader = std::thread::spawn({
            let log = Arc::clone(&log);
            move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n @ 1..) = stderr.read(&mut buffer) {
                    log.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            }
        });

        let (lines, banner_lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        let mut example = Example {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            banner: String::new(),
            child,
            log,
            log_reader: Some(log_reader),
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = banner_lines.recv_timeout(left) else {
                panic!(
                    "no `listening` line from the example; stdout so far:\n{}\nlog:\n{}",
                    example.banner,
                    example.log()
                );
            };
            if line.is_empty() && example.addr.port() != 0 {
                break;
            }
            if let Some(addr) = line.trim().strip_prefix("listening  http://") {
                example.addr = addr.parse().expect("the listening address");
            }
            example.banner.push_str(&line);
            example.banner.push('\n');
        }
        // Keep reading stdout so that the example never blocks on it.
        std::thread::spawn(move || while banner_lines.recv().is_ok() {});
        example
    }

    /// What it logged (stderr) so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM, waits for the process to exit, and returns its log.
    ///
    /// # Panics
    ///
    /// When it does not exit in time or exits with a failure.
    pub fn stop_gracefully(mut self) -> String {
        let status = self.terminate();
        let log = self.log();
        assert!(status.success(), "the example exited with {status}:\n{log}");
        log
    }

    /// Waits until the log contains `needle`; `false` if it does not in time.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        self.wait_for_log_within(needle, PATIENCE)
    }

    /// Waits up to `patience` until the log contains `needle`.
    pub fn wait_for_log_within(&self, needle: &str, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        while !self.log().contains(needle) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Sends SIGTERM and waits for the exit; the log is complete then.
    pub fn terminate(&mut self) -> ExitStatus {
        let signal = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(signal.success(), "SIGTERM was not delivered");
        self.wait()
    }

    /// Waits for the process to exit on its own; the log is complete then.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("the example's status") {
                if let Some(reader) = self.log_reader.take() {
                    reader.join().unwrap();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the example did not exit in time:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
