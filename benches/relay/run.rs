//! The measurements, in one run: every workload on the direct path and
//! through each gateway variant, the paths taking turns so that the
//! machine's other load hits them alike.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::client::{self, Session};
use crate::gateway::{PROVIDER, VARIANTS, Variant};
use crate::peer;
use crate::process::{self, GATEWAY_PREFIX, Process};
use crate::report::{Kind, Report, Target, ratio};

/// What to run, from the command line.
pub(crate) struct Options {
    /// A tenth of the work (for profiling and smoke tests).
    quick: bool,
    /// Only these workloads (`echo`, `flood`, `setup`, `first`, `paced`, `memory`).
    only: Option<Vec<String>>,
    /// Only these paths besides the direct one (gateway variants, `example`).
    paths: Option<Vec<String>>,
    /// Leave CPU placement to the scheduler.
    no_pin: bool,
}

impl Options {
    /// `--quick`, `--no-pin`, `--only=echo,flood,setup,first,paced,memory`
    /// and `--paths=layer,example`; without `--bench`, always quick.
    pub(crate) fn from_args(args: &[String]) -> Self {
        Self {
            // `cargo bench` passes `--bench`; `cargo test --benches` does
            // not, and gets the quick run as a smoke test.
            quick: args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench"),
            no_pin: args.iter().any(|a| a == "--no-pin"),
            only: args
                .iter()
                .find_map(|a| a.strip_prefix("--only="))
                .map(|list| list.split(',').map(str::to_owned).collect()),
            paths: args
                .iter()
                .find_map(|a| a.strip_prefix("--paths="))
                .map(|list| list.split(',').map(str::to_owned).collect()),
        }
    }

    fn wants_path(&self, name: &str) -> bool {
        self.paths
            .as_ref()
            .is_none_or(|paths| paths.iter().any(|p| p == name))
    }

    fn wants(&self, workload: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|w| w == workload))
    }
}

/// How much work each measurement does.
struct Scale {
    repeats: usize,
    warmup: usize,
    echo_trips: usize,
    echo_sessions: usize,
    echo_session_trips: usize,
    flood_sessions: usize,
    flood_events: usize,
    flood_size: usize,
    setups: usize,
    idle: [usize; 2],
    big_sessions: usize,
    big_size: usize,
    first_repeats: usize,
    first_sessions: usize,
    paced_repeats: usize,
    paced_sessions: usize,
    far_setups: usize,
}

impl Scale {
    fn new(quick: bool) -> Self {
        let full = Scale {
            repeats: 10,
            warmup: 200,
            echo_trips: 2_000,
            echo_sessions: 50,
            echo_session_trips: 200,
            flood_sessions: 4,
            flood_events: 20_000,
            flood_size: 1_024,
            setups: 200,
            idle: [1_000, 5_000],
            big_sessions: 100,
            big_size: 1 << 20,
            first_repeats: 3,
            first_sessions: 100,
            paced_repeats: 5,
            paced_sessions: 10,
            far_setups: 200,
        };
        if !quick {
            return full;
        }
        Scale {
            repeats: 1,
            warmup: 20,
            echo_trips: full.echo_trips / 10,
            echo_session_trips: full.echo_session_trips / 10,
            flood_events: full.flood_events / 10,
            setups: full.setups / 10,
            idle: [100, 500],
            big_sessions: 10,
            first_repeats: 1,
            first_sessions: 10,
            paced_repeats: 1,
            far_setups: 20,
            ..full
        }
    }
}

/// Where the processes run. Pinned (on two CPUs or more), the client load
/// runs on the first CPU and the upstream on the last, as if each were on a
/// machine of its own, and the gateway may use them all; without pinning,
/// the scheduler sometimes puts client and upstream on one CPU, where their
/// ping-pong is faster than it can be between two machines.
#[derive(Clone, Copy)]
struct Placement {
    pinned_cpus: Option<usize>,
}

impl Placement {
    fn new(options: &Options) -> Self {
        let cpus = process::online_cpus();
        Self {
            pinned_cpus: (!options.no_pin && cpus >= 2).then_some(cpus),
        }
    }

    /// Pins this process, the client load.
    fn pin_client(self) {
        if self.pinned_cpus.is_some() {
            process::pin(&[0]);
        }
    }

    fn upstream_args(self) -> Vec<String> {
        self.pinned_cpus
            .map(|cpus| process::cpus_argument(&[cpus - 1]).to_vec())
            .unwrap_or_default()
    }

    fn gateway_args(self) -> Vec<String> {
        self.pinned_cpus
            .map(|cpus| process::cpus_argument(&(0..cpus).collect::<Vec<_>>()).to_vec())
            .unwrap_or_default()
    }

    fn describe(self) -> String {
        match self.pinned_cpus {
            Some(cpus) => format!(
                "client on CPU 0, upstream on CPU {last}, gateway on CPUs 0-{last}",
                last = cpus - 1
            ),
            None => "CPU placement left to the scheduler".to_owned(),
        }
    }
}

/// One way to reach the upstream.
struct Path {
    name: String,
    url: String,
    gateway: Option<Process>,
    /// The variant a gateway of the bench's own runs.
    variant: Option<&'static Variant>,
}

impl Path {
    fn direct(upstream: SocketAddr) -> Self {
        Self {
            name: "direct".into(),
            url: format!("ws://{upstream}/v1/realtime?model=any"),
            gateway: None,
            variant: None,
        }
    }

    fn through(variant: &'static Variant, upstream: SocketAddr, placement: Placement) -> Self {
        let gateway = start_gateway(variant, upstream, placement);
        Self {
            name: variant.name.into(),
            url: gateway_url(&gateway),
            gateway: Some(gateway),
            variant: Some(variant),
        }
    }

    /// The gateway example as it ships, if it is built.
    fn example(upstream: SocketAddr) -> Option<Self> {
        let gateway = Process::spawn_gateway_example(upstream)?;
        Some(Self {
            name: "example".into(),
            url: format!(
                "ws://{}/v1/realtime?model=openai/gpt-realtime",
                gateway.addr
            ),
            gateway: Some(gateway),
            variant: None,
        })
    }

    /// The gateway's CPU time so far (none for the direct path).
    fn cpu(&self) -> Option<Duration> {
        self.gateway.as_ref().map(Process::cpu)
    }
}

fn start_gateway(variant: &Variant, upstream: SocketAddr, placement: Placement) -> Process {
    let mut args = vec![
        "--role".to_owned(),
        "gateway".to_owned(),
        "--variant".to_owned(),
        variant.name.to_owned(),
        "--upstream".to_owned(),
        upstream.to_string(),
    ];
    args.extend(placement.gateway_args());
    let prefix = std::env::var(GATEWAY_PREFIX).ok();
    Process::spawn(&args, prefix.as_deref())
}

fn gateway_url(gateway: &Process) -> String {
    format!(
        "ws://{}/v1/realtime?model={PROVIDER}/gpt-realtime",
        gateway.addr
    )
}

/// The paths in the order they take their turn in `repeat`: the order
/// alternates so that neither always runs first.
fn in_turn(paths: &[Path], repeat: usize) -> Vec<(usize, &Path)> {
    let mut order: Vec<_> = paths.iter().enumerate().collect();
    if repeat % 2 == 1 {
        order.reverse();
    }
    order
}

/// CPU time per `count` things.
fn cpu_per(cpu: Option<Duration>, count: usize) -> Option<f64> {
    cpu.map(|cpu| cpu.as_secs_f64() / count as f64)
}

/// CPU time the gateway and the upstream spent during each path's turns.
struct CpuUse {
    gateway: Vec<Option<Duration>>,
    upstream: Vec<Duration>,
}

impl CpuUse {
    fn new(columns: usize) -> Self {
        Self {
            gateway: vec![None; columns],
            upstream: vec![Duration::ZERO; columns],
        }
    }

    /// Runs `work`, the turn of `paths[i]`, adding what the processes spent meanwhile.
    async fn measure<T>(
        &mut self,
        i: usize,
        path: &Path,
        upstream: &Process,
        work: impl Future<Output = T>,
    ) -> T {
        let (gateway, upstream_before) = (path.cpu(), upstream.cpu());
        let output = work.await;
        self.gateway[i] = add(self.gateway[i], delta(gateway, path.cpu()));
        self.upstream[i] += upstream.cpu().saturating_sub(upstream_before);
        output
    }

    /// Rows of gateway and upstream CPU time, each per `(count, thing)`.
    fn rows(&self, report: &mut Report, gateway: (usize, &str), upstream: (usize, &str)) {
        report.row(
            format!("gateway CPU per {}", gateway.1),
            Kind::Cpu,
            self.gateway
                .iter()
                .map(|c| cpu_per(*c, gateway.0))
                .collect(),
        );
        report.row(
            format!("upstream CPU per {}", upstream.1),
            Kind::Cpu,
            self.upstream
                .iter()
                .map(|c| cpu_per(Some(*c), upstream.0))
                .collect(),
        );
    }
}

/// What the targets are judged on, per gateway variant.
#[derive(Default, Clone)]
struct Findings {
    echo_one_p50: Option<f64>,
    echo_many_p50: Option<f64>,
    flood_share: Option<f64>,
    flood_cpu: Option<f64>,
    setup_p50: Option<f64>,
    idle_kib: Option<f64>,
}

/// Runs everything and prints the table.
pub(crate) fn main(options: &Options) {
    let fd_limit = process::raise_fd_limit();
    let scale = Scale::new(options.quick);
    let placement = Placement::new(options);
    placement.pin_client();
    let mut upstream_args = vec!["--role".to_owned(), "upstream".to_owned()];
    upstream_args.extend(placement.upstream_args());
    let upstream = Process::spawn(&upstream_args, None);
    let mut paths = vec![Path::direct(upstream.addr)];
    paths.extend(
        VARIANTS
            .iter()
            .filter(|v| options.wants_path(v.name))
            .map(|v| Path::through(v, upstream.addr, placement)),
    );
    if options.wants_path("example") {
        match Path::example(upstream.addr) {
            Some(path) => paths.push(path),
            None => eprintln!(
                "no `example` column: build it with `cargo build --release --example gateway` \
                 (or set {})",
                process::GATEWAY_EXAMPLE
            ),
        }
    }

    println!("{}", header(&scale, options.quick, placement));
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut report = Report::new(paths.iter().map(|p| p.name.clone()).collect());
    let mut findings = vec![Findings::default(); paths.len()];
    let mut far = None;
    runtime.block_on(async {
        if options.wants("echo") {
            echo_one(&paths, &upstream, &scale, &mut report, &mut findings).await;
            echo_many(&paths, &upstream, &scale, &mut report, &mut findings).await;
        }
        if options.wants("flood") {
            flood(&paths, &upstream, &scale, &mut report, &mut findings).await;
        }
        if options.wants("setup") {
            setup(&paths, &upstream, &scale, &mut report, &mut findings).await;
        }
        if options.wants("first") {
            first_answer(&paths, &upstream, &scale, &mut report).await;
        }
        if options.wants("paced") {
            paced(&paths, &upstream, &scale, &mut report).await;
        }
        if options.wants("memory") {
            let at = (upstream.addr, placement);
            memory(&paths, at, &scale, fd_limit, &mut report, &mut findings).await;
        }
        if options.wants("far") {
            let started = Instant::now();
            far = Some(crate::far::setup(scale.far_setups).await);
            progress("far provider setup", started);
        }
    });
    for (path, found) in paths.iter().zip(&findings).skip(1) {
        judge(&mut report, &path.name, found, &scale);
    }
    print!("{}", report.render());
    if let Some(far) = far {
        print!("\n{}", far.render());
    }
    println!("\n(whole run: {:.0} s)", started.elapsed().as_secs_f64());
}

fn header(scale: &Scale, quick: bool, placement: Placement) -> String {
    let cores = process::online_cpus();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "tower-realtime {} relay benchmark{}: {cores} cores, Linux {}, loopback\n\
         direct: client -> upstream; {}: client -> gateway (RealtimeLayer in hyper, \
         multi-threaded tokio) -> upstream\n\
         layer, tap: hyper-util, sockets tuned by the layer; untuned: hyper-util, TCP_NODELAY \
         only, kernel-sized buffers; axum: plain axum::serve (Nagle on); example: the gateway \
         example's release binary as it ships (axum::serve, its listener tuned, logs discarded)\n\
         {}\n\
         each workload runs {} times per path, the paths taking turns; \
         ratio = gateway / direct, added = gateway - direct\n",
        env!("CARGO_PKG_VERSION"),
        match (quick, cfg!(debug_assertions)) {
            (_, true) => " (debug build, quick: a smoke test, not figures to compare)",
            (true, false) => " (--quick)",
            (false, false) => "",
        },
        kernel.trim(),
        VARIANTS
            .iter()
            .map(|v| v.name)
            .collect::<Vec<_>>()
            .join(", "),
        placement.describe(),
        scale.repeats,
    )
}

fn progress(what: &str, started: Instant) {
    eprintln!("  {what}: {:.1} s", started.elapsed().as_secs_f64());
}

/// Opens one session per path.
async fn open_each(paths: &[Path], per_path: usize) -> Vec<Vec<Session>> {
    let mut sessions = Vec::with_capacity(paths.len());
    for path in paths {
        sessions.push(client::open_many(&path.url, per_path, 8).await);
    }
    sessions
}

async fn close_each(sessions: Vec<Vec<Session>>) {
    for session in sessions.into_iter().flatten() {
        client::close(session).await;
    }
}

async fn echo_one(
    paths: &[Path],
    upstream: &Process,
    scale: &Scale,
    report: &mut Report,
    findings: &mut [Findings],
) {
    let started = Instant::now();
    let event = peer::event("input_audio_buffer.append", 200);
    let mut sessions = open_each(paths, 1).await;
    for session in &mut sessions {
        client::round_trips(&mut session[0], &event, scale.warmup, &mut Vec::new()).await;
    }
    let mut samples = vec![Vec::with_capacity(scale.echo_trips); paths.len()];
    let mut cpu = CpuUse::new(paths.len());
    for repeat in 0..scale.repeats {
        for (i, path) in in_turn(paths, repeat) {
            let trips = client::round_trips(
                &mut sessions[i][0],
                &event,
                scale.echo_trips,
                &mut samples[i],
            );
            cpu.measure(i, path, upstream, trips).await;
        }
    }
    close_each(sessions).await;
    report.title(format!(
        "echo, 1 session x {} sequential round trips of a 200 B text event",
        scale.echo_trips
    ));
    report.percentiles(&mut samples);
    let trips = scale.echo_trips * scale.repeats;
    cpu.rows(report, (2 * trips, "relayed message"), (trips, "echo"));
    for (found, sample) in findings.iter_mut().zip(&samples).skip(1) {
        found.echo_one_p50 = Some(p50_ratio(sample, &samples[0]));
    }
    progress("echo, 1 session", started);
}

async fn echo_many(
    paths: &[Path],
    upstream: &Process,
    scale: &Scale,
    report: &mut Report,
    findings: &mut [Findings],
) {
    let started = Instant::now();
    let event = peer::event("input_audio_buffer.append", 200);
    let mut sessions = open_each(paths, scale.echo_sessions).await;
    for session in &mut sessions {
        client::round_trips_together(session, &event, scale.warmup / 10).await;
    }
    let mut samples = vec![Vec::new(); paths.len()];
    let mut cpu = CpuUse::new(paths.len());
    for repeat in 0..scale.repeats {
        for (i, path) in in_turn(paths, repeat) {
            let trips =
                client::round_trips_together(&mut sessions[i], &event, scale.echo_session_trips);
            samples[i].extend(cpu.measure(i, path, upstream, trips).await);
        }
    }
    close_each(sessions).await;
    report.title(format!(
        "echo, {} sessions x {} round trips at once",
        scale.echo_sessions, scale.echo_session_trips
    ));
    report.percentiles(&mut samples);
    let trips = scale.echo_sessions * scale.echo_session_trips * scale.repeats;
    cpu.rows(report, (2 * trips, "relayed message"), (trips, "echo"));
    for (found, sample) in findings.iter_mut().zip(&samples).skip(1) {
        found.echo_many_p50 = Some(p50_ratio(sample, &samples[0]));
    }
    progress("echo, many sessions", started);
}

async fn flood(
    paths: &[Path],
    upstream: &Process,
    scale: &Scale,
    report: &mut Report,
    findings: &mut [Findings],
) {
    let started = Instant::now();
    let mut sessions = open_each(paths, scale.flood_sessions).await;
    for session in &mut sessions {
        client::flood(session, scale.flood_events / 20, scale.flood_size).await;
    }
    let mut elapsed = vec![Duration::ZERO; paths.len()];
    let mut cpu = CpuUse::new(paths.len());
    for repeat in 0..scale.repeats {
        for (i, path) in in_turn(paths, repeat) {
            let flood = client::flood(&mut sessions[i], scale.flood_events, scale.flood_size);
            elapsed[i] += cpu.measure(i, path, upstream, flood).await;
        }
    }
    close_each(sessions).await;
    let events = scale.flood_sessions * scale.flood_events * scale.repeats;
    let per_second: Vec<f64> = elapsed
        .iter()
        .map(|e| events as f64 / e.as_secs_f64())
        .collect();
    report.title(format!(
        "flood, {} sessions x {} events of {} B from the upstream",
        scale.flood_sessions, scale.flood_events, scale.flood_size
    ));
    report.row(
        "events",
        Kind::Rate("msg/s"),
        per_second.iter().map(|r| Some(*r)).collect(),
    );
    report.row(
        "payload",
        Kind::Rate("MB/s"),
        per_second
            .iter()
            .map(|r| Some(r * scale.flood_size as f64 / 1e6))
            .collect(),
    );
    cpu.rows(report, (events, "relayed event"), (events, "event sent"));
    for i in 1..paths.len() {
        findings[i].flood_share = Some(per_second[i] / per_second[0]);
        findings[i].flood_cpu = cpu_per(cpu.gateway[i], events);
    }
    progress("flood", started);
}

async fn setup(
    paths: &[Path],
    upstream: &Process,
    scale: &Scale,
    report: &mut Report,
    findings: &mut [Findings],
) {
    let started = Instant::now();
    for path in paths {
        for _ in 0..scale.warmup / 10 {
            client::close(client::open(&path.url).await.0).await;
        }
    }
    let mut samples = vec![Vec::with_capacity(scale.setups); paths.len()];
    let mut cpu = CpuUse::new(paths.len());
    for repeat in 0..scale.repeats {
        for (i, path) in in_turn(paths, repeat) {
            let sample = &mut samples[i];
            let setups = async {
                for _ in 0..scale.setups {
                    let (session, took) = client::open(&path.url).await;
                    sample.push(took);
                    client::close(session).await;
                }
            };
            cpu.measure(i, path, upstream, setups).await;
        }
    }
    report.title(format!(
        "session setup, {} sequential connects until the first upstream event \
         (CPU: open and close)",
        scale.setups
    ));
    report.percentiles(&mut samples);
    let sessions = scale.setups * scale.repeats;
    cpu.rows(report, (sessions, "session"), (sessions, "session"));
    for (found, sample) in findings.iter_mut().zip(&samples).skip(1) {
        found.setup_p50 = Some(p50_ratio(sample, &samples[0]));
    }
    progress("session setup", started);
}

/// Sessions that talk at once: connect, send the first event right after
/// the handshake, wait for its echo, close; one session after the other.
async fn first_answer(paths: &[Path], upstream: &Process, scale: &Scale, report: &mut Report) {
    let started = Instant::now();
    let event = peer::event("input_audio_buffer.append", 200);
    for path in paths {
        for _ in 0..scale.warmup / 20 {
            client::close(client::open_and_ask(&path.url, &event).await.0).await;
        }
    }
    let mut samples = vec![Vec::new(); paths.len()];
    let mut elapsed = vec![Duration::ZERO; paths.len()];
    let mut cpu = CpuUse::new(paths.len());
    for repeat in 0..scale.first_repeats {
        for (i, path) in in_turn(paths, repeat) {
            let sample = &mut samples[i];
            let sessions = async {
                let turn = Instant::now();
                for _ in 0..scale.first_sessions {
                    let (session, took) = client::open_and_ask(&path.url, &event).await;
                    sample.push(took);
                    client::close(session).await;
                }
                turn.elapsed()
            };
            elapsed[i] += cpu.measure(i, path, upstream, sessions).await;
        }
    }
    report.title(format!(
        "connect + first round trip, {} sequential sessions: the first 200 B event sent right \
         after the handshake, time until its echo",
        scale.first_sessions
    ));
    report.percentiles(&mut samples);
    let sessions = scale.first_sessions * scale.first_repeats;
    report.row(
        "sessions (connect, first answer, close)",
        Kind::Rate("session/s"),
        elapsed
            .iter()
            .map(|e| Some(sessions as f64 / e.as_secs_f64()))
            .collect(),
    );
    progress("connect + first round trip", started);
}

/// A live answer: 50 audio deltas of 200 B, one every 20 ms, on several
/// sessions at once; the delay of each from the upstream's send to the
/// client (the `added` column is what the gateway adds per delta).
async fn paced(paths: &[Path], upstream: &Process, scale: &Scale, report: &mut Report) {
    const DELTAS: usize = 50;
    const SIZE: usize = 200;
    const EVERY: Duration = Duration::from_millis(20);
    let started = Instant::now();
    let mut samples = vec![Vec::new(); paths.len()];
    let mut cpu = CpuUse::new(paths.len());
    for repeat in 0..scale.paced_repeats {
        for (i, path) in in_turn(paths, repeat) {
            // Fresh sessions each turn: sessions left unread between turns
            // would miss the gateway's keepalive pings.
            let mut sessions = client::open_many(&path.url, scale.paced_sessions, 8).await;
            let deltas = client::paced_together(&mut sessions, DELTAS, SIZE, EVERY);
            samples[i].extend(cpu.measure(i, path, upstream, deltas).await);
            for session in sessions {
                client::close(session).await;
            }
        }
    }
    report.title(format!(
        "paced deltas, {} sessions x {DELTAS} events of {SIZE} B every 20 ms: delay from the \
         upstream's send to the client",
        scale.paced_sessions
    ));
    report.percentiles(&mut samples);
    progress("paced deltas", started);
}

/// Resident memory of fresh gateway processes holding idle sessions, and
/// after one big message each way.
async fn memory(
    paths: &[Path],
    (upstream, placement): (SocketAddr, Placement),
    scale: &Scale,
    fd_limit: u64,
    report: &mut Report,
    findings: &mut [Findings],
) {
    let started = Instant::now();
    // Each relayed session holds two sockets in the gateway.
    let affordable = usize::try_from(fd_limit.saturating_sub(200) / 2).unwrap_or(usize::MAX);
    let idle = scale.idle.map(|n| n.min(affordable));
    let columns = paths.len();
    let mut base = vec![None; columns];
    let mut at = vec![vec![None; columns]; idle.len()];
    let mut total = vec![None; columns];
    let mut big = vec![None; columns];
    for (column, path) in paths.iter().enumerate() {
        let Some(variant) = path.variant else {
            continue;
        };
        let gateway = warm_gateway(variant, upstream, placement).await;
        let url = gateway_url(&gateway);
        let baseline = gateway.rss_kib();
        base[column] = Some(baseline as f64);
        let mut open = Vec::new();
        for (step, &count) in idle.iter().enumerate() {
            open.extend(client::open_many(&url, count - open.len(), 32).await);
            let rss = settled_rss(&gateway).await;
            at[step][column] = Some(rss.saturating_sub(baseline) as f64 / count as f64);
            total[column] = Some(rss as f64);
        }
        findings[column].idle_kib = at[idle.len() - 1][column];
        drop(open);
        drop(gateway);

        let gateway = warm_gateway(variant, upstream, placement).await;
        let url = gateway_url(&gateway);
        let mut sessions = client::open_many(&url, scale.big_sessions, 32).await;
        let before = settled_rss(&gateway).await;
        let small = peer::event("input_audio_buffer.append", 200);
        for session in &mut sessions {
            client::big_round_trip(session, scale.big_size).await;
            client::round_trips(session, &small, 10, &mut Vec::new()).await;
        }
        let after = settled_rss(&gateway).await;
        big[column] = Some(after.saturating_sub(before) as f64 / scale.big_sessions as f64);
    }
    report.title("memory of the gateway process (RSS from /proc/<pid>/status)");
    report.row("RSS with no session", Kind::Kib, base);
    for (count, values) in idle.iter().zip(at) {
        report.row(format!("per idle session, {count} open"), Kind::Kib, values);
    }
    report.row(
        format!("RSS with {} idle sessions", idle[1]),
        Kind::Kib,
        total,
    );
    report.row(
        format!(
            "per session after a {} MiB message each way",
            scale.big_size >> 20
        ),
        Kind::Kib,
        big,
    );
    if idle != scale.idle {
        report.title(format!(
            "  (open files limited to {fd_limit}: {} sessions instead of {})",
            idle[1], scale.idle[1]
        ));
    }
    progress("memory", started);
}

/// A fresh gateway that has served and closed a few sessions.
async fn warm_gateway(variant: &Variant, upstream: SocketAddr, placement: Placement) -> Process {
    let gateway = start_gateway(variant, upstream, placement);
    let url = gateway_url(&gateway);
    for session in client::open_many(&url, 64, 16).await {
        client::close(session).await;
    }
    settled_rss(&gateway).await;
    gateway
}

/// The gateway's RSS once it has had a moment to finish what it was doing.
async fn settled_rss(gateway: &Process) -> u64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    gateway.rss_kib()
}

fn judge(report: &mut Report, column: &str, found: &Findings, scale: &Scale) {
    let mut target = |what,
                      measured: Option<f64>,
                      shown: &dyn Fn(f64) -> String,
                      goal,
                      met: &dyn Fn(f64) -> bool| {
        if let Some(value) = measured {
            report.target(Target {
                column: column.to_owned(),
                what,
                measured: shown(value),
                goal,
                met: met(value),
            });
        }
    };
    target(
        "echo p50, 1 session (gateway / direct)",
        found.echo_one_p50,
        &ratio,
        "<= 1.6x",
        &|v| v <= 1.6,
    );
    target(
        "echo p50, 50 sessions (gateway / direct)",
        found.echo_many_p50,
        &ratio,
        "<= 1.5x",
        &|v| v <= 1.5,
    );
    target(
        "flood throughput (gateway / direct)",
        found.flood_share,
        &|v| format!("{:.1}%", v * 100.0),
        ">= 40%",
        &|v| v >= 0.4,
    );
    target(
        "gateway CPU per relayed 1 KB event",
        found.flood_cpu,
        &|v| format!("{:.2} µs", v * 1e6),
        "<= 1.5 µs",
        &|v| v <= 1.5e-6,
    );
    target(
        "session setup p50 (gateway / direct)",
        found.setup_p50,
        &ratio,
        "<= 2x",
        &|v| v <= 2.0,
    );
    let idle = if scale.idle[1] == 5_000 {
        "RSS per idle session at 5,000 sessions"
    } else {
        "RSS per idle session (reduced count)"
    };
    target(
        idle,
        found.idle_kib,
        &|v| format!("{v:.1} KiB"),
        "<= 20 KiB",
        &|v| v <= 20.0,
    );
}

fn p50_ratio(sample: &[Duration], direct: &[Duration]) -> f64 {
    let p50 = |s: &[Duration]| crate::report::percentile(s, 0.5).as_secs_f64();
    p50(sample) / p50(direct)
}

fn delta(before: Option<Duration>, after: Option<Duration>) -> Option<Duration> {
    Some(after?.saturating_sub(before?))
}

fn add(sum: Option<Duration>, more: Option<Duration>) -> Option<Duration> {
    match (sum, more) {
        (Some(a), Some(b)) => Some(a + b),
        (None, b) => b,
        (a, None) => a,
    }
}
