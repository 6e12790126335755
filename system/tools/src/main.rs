//! `auction-tools`: the benchmark and the fault audit (see the crate documentation).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The benchmark measures the product's processes as they run: with the allocator they use.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tools for the people who build the auction platform: the benchmark and the fault audit.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measures every path (PlaceBid, hot auction, latency to a second replica and to MariaDB,
    /// each sink, replay) beside this machine's limits, against Apache Kafka; writes a table and
    /// JSON.
    Bench(Box<auction_tools::bench::BenchArgs>),
    /// The fault audit: places bids through two replicas while sinks crash and restart, a
    /// replica restarts and the broker fails; then checks that every acknowledged bid is in
    /// every sink exactly once. Exits 1 when the books do not balance.
    Audit(auction_tools::audit::AuditArgs),
    /// One sink of the fault audit, in a process of its own (started by `audit`).
    #[command(hide = true)]
    AuditSink(auction_tools::audit::AuditSinkArgs),
    /// One bid-service replica of the fault audit, in a process of its own (started by `audit`).
    #[command(hide = true)]
    AuditReplica(auction_tools::audit::AuditReplicaArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => auction_tools::bench::main(*args).await,
        Command::AuditSink(args) => {
            auction_process::init_logging(false);
            auction_process::exit_with(
                "auction-tools audit-sink",
                auction_tools::audit::run_sink(args).await,
            )
        }
        Command::AuditReplica(args) => {
            auction_process::init_logging(false);
            auction_process::exit_with(
                "auction-tools audit-replica",
                auction_tools::audit::run_replica(args).await,
            )
        }
        Command::Audit(args) => {
            auction_process::init_logging(false);
            match auction_tools::audit::run(args).await {
                Ok(report) => {
                    println!("{report}");
                    if report.holds() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("auction-tools audit: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
