//! What the relay costs against a direct connection, measured side by side
//! in one run:
//!
//! ```sh
//! cargo bench --bench relay                    # the whole table, ~15 s of measuring
//! cargo bench --bench relay -- --quick         # a tenth of the work
//! cargo bench --bench relay -- --only=echo,flood,setup,first,paced,memory,far
//! cargo bench --bench relay -- --paths=layer,axum,example
//! cargo bench --bench relay -- --no-pin        # no CPU placement
//! ```
//!
//! The `example` column runs the gateway example's release build
//! (`cargo build --release --all-features --example gateway`), as it ships.
//!
//! `cargo test --benches` runs it quick, as a smoke test.
//!
//! The binary plays three roles, each in its own process so that the
//! gateway's memory and CPU are its own: this process is the client load and
//! runs the measurements; it starts itself again as the scripted upstream
//! (`--role upstream`) and as one gateway per variant (`--role gateway`). The
//! direct path connects the same client to the same upstream.
//!
//! On two or more CPUs the client load runs on the first CPU and the
//! upstream on the last, as if on two other machines; the gateway may use
//! every CPU. `--no-pin` leaves placement to the scheduler.
//!
//! `RELAY_BENCH_GATEWAY_PREFIX` runs every gateway under a command, e.g.
//! `valgrind --tool=callgrind` or `perf record -g --`.

#[path = "relay/client.rs"]
mod client;
#[path = "relay/far.rs"]
mod far;
#[path = "relay/gateway.rs"]
mod gateway;
#[path = "common/gateway_example.rs"]
mod gateway_example;
#[path = "relay/peer.rs"]
mod peer;
#[path = "relay/process.rs"]
mod process;
#[path = "relay/report.rs"]
mod report;
#[path = "relay/run.rs"]
mod run;
#[path = "relay/upstream.rs"]
mod upstream;

fn main() {
    process::raise_fd_limit();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    if let Some(cpus) = value("--cpus") {
        let cpus: Vec<usize> = cpus.split(',').filter_map(|c| c.parse().ok()).collect();
        process::pin(&cpus);
    }
    match value("--role") {
        None => run::main(&run::Options::from_args(&args)),
        Some("upstream") => upstream::main(),
        Some("gateway") => gateway::main(
            value("--variant").expect("--variant"),
            value("--upstream")
                .and_then(|a| a.parse().ok())
                .expect("--upstream ADDRESS"),
        ),
        Some(other) => panic!("unknown role `{other}`"),
    }
}
