//! The `collector` binary: parses the command line, sets up logging, runs the command.
//! Everything else lives in the library (`collector::cli`).

use std::io::Write;

use clap::Parser;
use collector::cli::{self, Cli};

/// mimalloc instead of glibc's malloc: the ingest path allocates per field and frees on
/// other threads; measured in the README's Benchmarks (throughput and peak RSS).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let log = collector::logging::init(&cli.log_format);
    // Named threads: a whole-system profile (`deploy/flamegraph`) tells the collector's
    // runtime from the load generator's and PostgreSQL's by this name.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("collector-rt")
        .build();
    let code = match runtime {
        Ok(runtime) => match runtime.block_on(cli::run(cli)) {
            Ok(code) => code,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "error: {}", cli::error_chain(&e));
                1
            }
        },
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: cannot start the runtime: {e}");
            1
        }
    };
    // Flush the log queue; `exit` runs no destructors.
    drop(log);
    std::process::exit(code);
}
