//! `ipfs-accelerate`: run transformer models from the command line.
//!
//! Each subcommand lives in `commands/`; this file parses arguments, sets up
//! logging and turns any error into one clear line on stderr and exit code 1.

mod commands;
mod config;
mod model_ref;
mod progress;
mod runtime_dir;
mod table;
mod texts;

use clap::{Parser, Subcommand};

/// Hardware-accelerated transformer inference with content-addressed weights.
#[derive(Parser)]
#[command(name = "ipfs-accelerate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Embed(commands::embed::EmbedArgs),
    Similarity(commands::similarity::SimilarityArgs),
    Generate(commands::generate::GenerateArgs),
    Transcribe(commands::transcribe::TranscribeArgs),
    Classify(commands::classify::ClassifyArgs),
    Devices(commands::devices::DevicesArgs),
    Browsers(commands::browsers::BrowsersArgs),
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    #[command(subcommand)]
    Ipfs(commands::ipfs::IpfsCommand),
    #[command(subcommand)]
    Models(commands::models::ModelsCommand),
    Stats(commands::stats::StatsArgs),
    #[command(subcommand)]
    Pool(commands::pool::PoolCommand),
    Serve(commands::serve::ServeArgs),
}

fn main() {
    let runtime_dir = runtime_dir::ensure();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IPFS_ACCELERATE_LOG")
                // symphonia logs a failed format probe as an error; the audio
                // error the command prints already says what is wrong.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,symphonia_core=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Embed(args) => commands::embed::run(args),
        Command::Similarity(args) => commands::similarity::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Transcribe(args) => commands::transcribe::run(args),
        Command::Classify(args) => commands::classify::run(args),
        Command::Devices(args) => commands::devices::run(args),
        Command::Browsers(args) => commands::browsers::run(args),
        Command::Bench(cmd) => commands::bench::run(cmd),
        Command::Ipfs(cmd) => commands::ipfs::run(cmd),
        Command::Models(cmd) => commands::models::run(cmd),
        Command::Stats(args) => commands::stats::run(args),
        Command::Pool(cmd) => commands::pool::run(cmd),
        Command::Serve(args) => commands::serve::run(args),
    };
    if let Err(err) = result {
        // One line: the error and its causes, never a backtrace.
        let mut message = err.to_string();
        for cause in err.chain().skip(1) {
            let cause = cause.to_string();
            if !message.contains(&cause) {
                message.push_str(": ");
                message.push_str(&cause);
            }
        }
        eprintln!("error: {message}");
        // exit() skips destructors: remove the directory first.
        drop(runtime_dir);
        std::process::exit(1);
    }
}
