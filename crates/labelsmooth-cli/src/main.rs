//! The `labelsmooth` command.

mod alloc;
mod args;
mod arrays;
mod bench;
mod compare;
mod demo;
mod distill;
mod models;
mod plots;
mod progress;
mod report;
mod sweep;
mod tools;
mod train;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::args::set_threads;
use labelsmooth_burn::device::Backend;

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
    /// Train one model with label smoothing and evaluate it on a stratified held-out split.
    ///
    /// Example: labelsmooth train --data digits --model mlp --smoothing 0.1 --out runs/digits
    Train(train::TrainArgs),
    /// Apply a saved model (a folder written by `train --out` or `import`) to new data, labelled
    /// or not: one row per sample with the predicted class and a probability per class.
    ///
    /// Example: labelsmooth predict --model runs/digits --data csv:new.csv --out predictions.csv
    Predict(models::PredictArgs),
    /// Measure a saved model on labelled data: accuracy, NLL, Brier, ECE/MCE/RMSCE, per-class
    /// precision/recall/F1, the confusion matrix and the reliability diagram; with
    /// --fit-temperature, fit T on this data and save it in the model folder.
    ///
    /// Example: labelsmooth evaluate --model runs/digits --data csv:test.csv --out runs/eval --fit-temperature
    Evaluate(models::EvaluateArgs),
    /// Import weights made elsewhere into a model folder: a torchvision MobileNetV2 state_dict
    /// (.pth or .safetensors), ready for predict, evaluate or fine-tuning (train --init).
    ///
    /// Example: labelsmooth import --from mobilenet_v2.pth --model mobilenet-v2 --class-names imagenet.txt --out models/mnv2
    Import(models::ImportArgs),
    /// Cross-validated search of the smoothing factor: per factor, mean ± std over stratified
    /// folds of accuracy, NLL and ECE, and the best factor.
    ///
    /// Example: labelsmooth sweep --data digits --model mlp --smoothing 0,0.05,0.1,0.2 --folds 5 --out runs/sweep --shard 0/4
    Sweep(sweep::SweepArgs),
    /// Combine the folders of a sharded sweep into one result and report.
    ///
    /// Example: labelsmooth merge runs/shard0 runs/shard1 --out runs/sweep
    Merge(sweep::MergeArgs),
    /// Regularizers compared with cross-validation: none, L2, dropout,
    /// label smoothing, confidence penalty, and combinations.
    ///
    /// Example: labelsmooth compare --data digits --model mlp --regularizers none,l2,smoothing,smoothing+dropout
    Compare(compare::CompareArgs),
    /// Knowledge distillation from teachers trained with label smoothing (Müller et al. 2019,
    /// section 5): per teacher smoothing factor, the teacher, students distilled from it at each
    /// temperature, and a student trained on labels smoothed alone, cross-validated.
    ///
    /// Example: labelsmooth distill --data digits --teacher-model mlp --student-hidden 32 --smoothing 0,0.1,0.2 --temperatures 1,2,4 --out runs/distill
    #[command(
        mut_arg("model", |a| a.long("teacher-model").help("The teacher's model family")),
        mut_arg("hidden", |a| a
            .long("teacher-hidden")
            .help("Hidden layer sizes of an MLP teacher, input side first (default: 128)"))
    )]
    Distill(distill::DistillArgs),
    /// The whole story on the bundled digits: a cross-validated sweep of the smoothing factor,
    /// a comparison of regularizers, calibration with and without smoothing and after temperature
    /// scaling, every figure (PNG and SVG) and one offline HTML report.
    ///
    /// Example: labelsmooth demo --out labelsmooth-demo
    Demo(demo::DemoArgs),
    /// Calibration of any model's predictions: accuracy, NLL, Brier, ECE, MCE, RMS calibration
    /// error and the reliability bins; with --fit-temperature, the fitted T and the metrics after.
    ///
    /// NLL: mean −log p(label); exact (log-softmax in float64) from --logits, and from --probs
    /// with p clipped below at 1e-15 (the output says so). Brier: mean over rows of
    /// Σ_j (p_j − onehot_j)²; with two classes also brier_binary, mean (P(1) − y)², which is
    /// scikit-learn's brier_score_loss (half of Brier). ECE, MCE, RMSCE: the bin-size-weighted
    /// mean, the largest and the root-mean-square gap between mean confidence and accuracy over
    /// bins of the top-label confidence (torchmetrics' multiclass calibration error); with two
    /// classes also ece_binary, over bins of P(1) against the fraction of label 1 (torchmetrics'
    /// binary calibration error).
    ///
    /// Example: labelsmooth calibrate --logits val_logits.npy --labels val_labels.csv --fit-temperature
    Calibrate(tools::CalibrateArgs),
    /// Smoothed targets: class ids (or 0/1 label rows) on stdin, smoothed rows as CSV on stdout.
    ///
    /// Example: printf '0\n2\n' | labelsmooth smooth --alpha 0.1 --classes 3
    Smooth(tools::SmoothArgs),
    /// Benchmarks (measurements, not tests): the loss kernel, training throughput, one training
    /// step, and the fused linear + loss against the unfused path.
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
        /// cpu: the fused kernel of the core; wgpu: the CubeCL kernel and Burn's tensor
        /// operations on the GPU (binaries built with `--features wgpu`).
        #[arg(long, default_value = "cpu", value_parser = args::parse_device)]
        device: Backend,
        /// Print `[{"n", "k", "median_ms", "gbps", "copy_gbps", ...}]` on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Training throughput (samples/s per epoch) of the reference nets: MLP 64-128-10 on 2000
    /// samples, the 2-conv CNN on 4096 images 28×28, Embedding(10000,16)-LSTM(64)-Dense(32)-Dense(2)
    /// on 2048 sequences of length 100; batch 64, Adam, smoothing 0.1. Also (not by default)
    /// MobileNetV2 width 1 on 128 RGB images 96×96, batch 32: mobilenet-v2 (every layer) and
    /// mobilenet-v2-frozen (the classifier on a frozen backbone).
    ///
    /// Example: labelsmooth bench train --model mlp --json
    Train {
        /// Which nets (repeat or comma-separate): mlp, cnn, lstm, mobilenet-v2,
        /// mobilenet-v2-frozen.
        #[arg(long, value_delimiter = ',', default_value = "mlp,cnn,lstm")]
        model: Vec<String>,
        /// Epochs timed after one warm-up epoch (the median is reported).
        #[arg(long, default_value_t = 15)]
        epochs: usize,
        /// Where to train: cpu or wgpu (binaries built with `--features wgpu`).
        #[arg(long, default_value = "cpu", value_parser = args::parse_device)]
        device: Backend,
        /// Threads (default: every core).
        #[arg(long)]
        threads: Option<std::num::NonZeroUsize>,
        /// Print `[{"model", "samples_per_s", ...}]` on stdout.
        #[arg(long)]
        json: bool,
    },
    /// One training step of a linear output layer over a large vocabulary, with the loss computed
    /// by the fused kernel and by Burn tensor operations.
    ///
    /// Example: labelsmooth bench step --batch 256 --hidden 256 --vocab 32000
    Step {
        /// Rows per step.
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// Inputs of the output layer.
        #[arg(long, default_value_t = 256)]
        hidden: usize,
        /// Classes.
        #[arg(long, default_value_t = 32000)]
        vocab: usize,
        /// Timed steps (the median is reported).
        #[arg(long, default_value_t = 7)]
        reps: usize,
        /// Threads (default: every core).
        #[arg(long)]
        threads: Option<std::num::NonZeroUsize>,
        /// Print JSON on stdout.
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
        /// Where to run: cpu (the core) or a GPU backend (through Burn, with the CubeCL kernel).
        #[arg(long, default_value = "cpu", value_parser = args::parse_device)]
        device: Backend,
        /// Threads (default: every core).
        #[arg(long)]
        threads: Option<std::num::NonZeroUsize>,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train::train(args)?,
        Command::Predict(args) => models::predict(args)?,
        Command::Evaluate(args) => models::evaluate(args)?,
        Command::Import(args) => models::import(args)?,
        Command::Sweep(args) => sweep::sweep(args)?,
        Command::Merge(args) => sweep::merge(args)?,
        Command::Compare(args) => compare::compare(args)?,
        Command::Demo(args) => demo::demo(args)?,
        Command::Distill(args) => distill::distill(args)?,
        Command::Calibrate(args) => tools::calibrate(args)?,
        Command::Smooth(args) => tools::smooth(args)?,
        Command::Bench { what } => match what {
            BenchCommand::Loss {
                shapes,
                reps,
                threads,
                copy_bytes,
                device,
                json,
            } => {
                set_threads(threads)?;
                let rows = if device.is_cpu() {
                    bench::loss(&shapes, reps, copy_bytes)?
                } else {
                    bench::loss_on_device(&shapes, reps, device)?
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    println!(
                        "smoothed cross-entropy fwd+bwd, alpha 0.1, mean; {} threads, {}",
                        rayon::current_num_threads(),
                        labelsmooth::simd_level()
                    );
                    if let Some(name) = rows.first().and_then(|r| r.adapter.as_deref()) {
                        println!("device: {device} on {name}");
                    }
                    println!(
                        "{:>7} x {:>7} {:>10} {:>10} {:>8} {:>10} {:>7}",
                        "n", "k", "path", "median ms", "GB/s", "copy GB/s", "% copy"
                    );
                    for r in &rows {
                        println!(
                            "{:>7} x {:>7} {:>10} {:>10.2} {:>8.2} {:>10} {:>7}",
                            r.n,
                            r.k,
                            r.path,
                            r.median_ms,
                            r.gbps,
                            r.copy_gbps.map_or("-".into(), |c| format!("{c:.2}")),
                            r.fraction_of_copy
                                .map_or("-".into(), |f| format!("{:.0}%", 100.0 * f))
                        );
                    }
                }
            }
            BenchCommand::Train {
                model,
                epochs,
                device,
                threads,
                json,
            } => {
                set_threads(threads)?;
                let rows = bench::train(&model, epochs.max(1), device)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    println!(
                        "training throughput, batch 64, Adam, smoothing 0.1; {} threads",
                        rayon::current_num_threads()
                    );
                    for r in &rows {
                        println!(
                            "{:>5} {:>10.0} samples/s  (median epoch {:.1} ms)",
                            r.model, r.samples_per_s, r.median_epoch_ms
                        );
                    }
                }
            }
            BenchCommand::Step {
                batch,
                hidden,
                vocab,
                reps,
                threads,
                json,
            } => {
                set_threads(threads)?;
                let rows = bench::step(batch, hidden, vocab, reps)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    println!(
                        "training step, linear {hidden} -> {vocab}, batch {batch}, smoothing 0.1; {} threads",
                        rayon::current_num_threads()
                    );
                    for r in &rows {
                        println!("{:>10} {:>9.1} ms", r.loss_path, r.median_ms);
                    }
                }
            }
            BenchCommand::Linear {
                n,
                hidden,
                vocab,
                reps,
                block_rows,
                device,
                threads,
                json,
            } => {
                set_threads(threads)?;
                let block_rows = block_rows.map(|b| b.get());
                let rows = if device.is_cpu() {
                    bench::linear(n, hidden, vocab, reps, block_rows)?
                } else {
                    bench::linear_on_device((n, hidden, vocab), reps, block_rows, device)?
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    println!(
                        "linear + smoothed cross-entropy, n {n}, h {hidden}, v {vocab}; {device}, {} threads",
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
    alloc::keep_freed_memory();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
