//! The `labelsmooth` command.

mod alloc;
mod bench;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// Label smoothing as a measured regularizer.
#[derive(Parser)]
#[command(name = "labelsmooth", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmarks of the loss kernels (not a test: prints measurements).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

/// Shapes N×K, as given to `--shapes`.
type Shapes = Vec<(usize, usize)>;

#[derive(Subcommand)]
enum BenchCommand {
    /// Smoothed cross-entropy forward + backward (α = 0.1, mean) on logits ~ N(0, 3²), with the
    /// machine's copy bandwidth measured in the same run.
    ///
    /// Example: labelsmooth bench loss --shapes 8192x1000,4096x32000 --json
    Loss {
        /// Shapes N×K to time.
        #[arg(long, default_value = "8192x1000,4096x32000,512x128256", value_parser = bench::parse_shapes)]
        shapes: Shapes,
        /// Timed repetitions per shape (the median is reported).
        #[arg(long, default_value_t = 7)]
        reps: usize,
        /// Threads (default: every core).
        #[arg(long)]
        threads: Option<std::num::NonZeroUsize>,
        /// Bytes of the array copied to measure memory bandwidth.
        #[arg(long, default_value_t = 256 << 20)]
        copy_bytes: usize,
        /// Print `[{"n", "k", "median_ms", "gbps", "copy_gbps", ...}]` on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Fused linear + smoothed cross-entropy against the unfused path: time and peak memory.
    ///
    /// Example: labelsmooth bench linear --n 4096 --hidden 1024 --vocab 32000
    Linear {
        /// Rows (tokens).
        #[arg(long, default_value_t = 4096)]
        n: usize,
        /// Hidden size.
        #[arg(long, default_value_t = 1024)]
        hidden: usize,
        /// Vocabulary size.
        #[arg(long, default_value_t = 32000)]
        vocab: usize,
        /// Timed repetitions (the median is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Rows per block of the fused path (default: about 4 M logits per block).
        #[arg(long)]
        block_rows: Option<std::num::NonZeroUsize>,
        /// Threads (default: every core).
        #[arg(long)]
        threads: Option<std::num::NonZeroUsize>,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn set_threads(threads: Option<std::num::NonZeroUsize>) -> Result<()> {
    if let Some(t) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t.get())
            .build_global()?;
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Bench { what } => match what {
            BenchCommand::Loss {
                shapes,
                reps,
                threads,
                copy_bytes,
                json,
            } => {
                set_threads(threads)?;
                let rows = bench::loss(&shapes, reps, copy_bytes)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    println!(
                        "smoothed cross-entropy fwd+bwd, alpha 0.1, mean; {} threads, {}",
                        rayon::current_num_threads(),
                        labelsmooth::simd_level()
                    );
                    println!(
                        "{:>7} x {:>7} {:>10} {:>8} {:>10} {:>7}",
                        "n", "k", "median ms", "GB/s", "copy GB/s", "% copy"
                    );
                    for r in &rows {
                        println!(
                            "{:>7} x {:>7} {:>10.2} {:>8.2} {:>10.2} {:>6.0}%",
                            r.n,
                            r.k,
                            r.median_ms,
                            r.gbps,
                            r.copy_gbps,
                            100.0 * r.fraction_of_copy
                        );
                    }
                }
            }
            BenchCommand::Linear {
                n,
                hidden,
                vocab,
                reps,
                block_rows,
                threads,
                json,
            } => {
                set_threads(threads)?;
                let rows = bench::linear(n, hidden, vocab, reps, block_rows.map(|b| b.get()))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    println!(
                        "linear + smoothed cross-entropy, n {n}, h {hidden}, v {vocab}; {} threads",
                        rayon::current_num_threads()
                    );
                    for r in &rows {
                        println!(
                            "{:>8} {:>10.1} ms  peak +{:>8.1} MB",
                            r.path, r.median_ms, r.peak_extra_mb
                        );
                    }
                }
            }
        },
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
