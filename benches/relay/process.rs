//! The bench's child processes (upstream and gateways), and what the kernel
//! says about them: resident memory and CPU time.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::gateway_example;

/// Set to a command (e.g. `valgrind --tool=callgrind`) to run every gateway under it.
pub(crate) const GATEWAY_PREFIX: &str = "RELAY_BENCH_GATEWAY_PREFIX";

/// A child process running one role of this binary. Dropping it closes its
/// stdin, which makes it exit.
pub(crate) struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The pid that serves (the one announced, which a wrapper may have forked).
    pub(crate) pid: u32,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    wrapped: bool,
    /// Stopped with a kill (it does not watch its stdin).
    kill: bool,
}

/// Where the gateway example's release build is looked for, if not next to
/// the bench (`target/release/examples/gateway`).
pub(crate) const GATEWAY_EXAMPLE: &str = "RELAY_BENCH_GATEWAY_EXAMPLE";

impl Process {
    /// Starts this binary with `args` and waits for its announcement.
    pub(crate) fn spawn(args: &[String], prefix: Option<&str>) -> Process {
        let exe = std::env::current_exe().expect("the bench binary's own path");
        let words: Vec<&str> = prefix
            .map(|p| p.split_whitespace().collect())
            .unwrap_or_default();
        let wrapped = !words.is_empty();
        let mut command = match words.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(&exe);
                command
            }
            None => Command::new(&exe),
        };
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a child process");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the child's announcement");
        let mut words = line.split_whitespace();
        let (Some("listening"), Some(addr), Some(pid)) = (words.next(), words.next(), words.next())
        else {
            panic!("child {args:?} did not announce itself: {line:?}");
        };
        Process {
            stdin: child.stdin.take(),
            child,
            pid: pid.parse().expect("a pid"),
            addr: addr.parse().expect("a socket address"),
            wrapped,
            kill: false,
        }
    }

    /// Starts the gateway example as it ships (`axum::serve`, its middleware
    /// and logging; logs discarded), with the bench's upstream as its
    /// `openai` provider and limits out of the way. `None` when it is not
    /// built (`cargo build --release --example gateway`).
    pub(crate) fn spawn_gateway_example(upstream: SocketAddr) -> Option<Process> {
        let (child, addr) =
            gateway_example::spawn(GATEWAY_EXAMPLE, &format!("http://{upstream}/v1"))?;
        Some(Process {
            pid: child.id(),
            child,
            stdin: None,
            addr,
            wrapped: false,
            kill: true,
        })
    }

    /// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// CPU time used so far, user and system together.
    pub(crate) fn cpu(&self) -> Duration {
        cpu_time(self.pid)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.kill {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        }
        // Profilers write their output at exit: give them time.
        let patience = if self.wrapped {
            Duration::from_secs(600)
        } else {
            Duration::from_secs(10)
        };
        let start = Instant::now();
        while start.elapsed() < patience {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Tells the parent where this child listens, then exits when the parent
/// closes stdin (or dies).
pub(crate) fn announce(addr: SocketAddr) {
    println!("listening {addr} {}", std::process::id());
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
}

/// Raises the soft limit on open files to the hard limit: 5,000 relayed
/// sessions hold 10,000 sockets in the gateway.
pub(crate) fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the whole call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid `rlimit`, read only during the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return 1024;
    }
    limit.rlim_cur
}

/// The CPU time (user + system) of process `pid`, from its CPU-time clock
/// (nanosecond resolution); `/proc/<pid>/stat` (10 ms ticks) if that fails.
fn cpu_time(pid: u32) -> Duration {
    let mut clock: libc::clockid_t = 0;
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both out-pointers are valid and writable for the calls.
    let precise = unsafe {
        libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) == 0
            && libc::clock_gettime(clock, &mut now) == 0
    };
    if precise {
        return Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start with
    // the 3rd; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| -> u64 { fields.get(n - 3).and_then(|f| f.parse().ok()).unwrap_or(0) };
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let used = field(14) + field(15);
    Duration::from_nanos(used * 1_000_000_000 / ticks)
}

/// The number of online CPUs (not only those this process may use).
pub(crate) fn online_cpus() -> usize {
    // SAFETY: sysconf has no memory effects.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(online).unwrap_or(1).max(1)
}

/// Runs this process (all its threads to come) on `cpus` only.
pub(crate) fn pin(cpus: &[usize]) {
    // SAFETY: an all-zero cpu_set_t is a valid empty set; CPU_SET and
    // sched_setaffinity only touch the set passed to them.
    let pinned = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !pinned {
        eprintln!(
            "could not pin to CPUs {cpus:?}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// `--cpus 0,1` as an argument list.
pub(crate) fn cpus_argument(cpus: &[usize]) -> [String; 2] {
    let list: Vec<String> = cpus.iter().map(usize::to_string).collect();
    ["--cpus".to_owned(), list.join(",")]
}
