//! `moe`: one command for Mixture-of-Experts checkpoints — generate or chat (`run`), an
//! OpenAI-compatible server (`serve`), throughput (`bench`) and what a checkpoint is and needs
//! (`inspect`). Every subcommand uses the shipped demo model when no `--model` is given.

mod bench;
mod common;
mod inspect;
mod logprobs;
mod output;
mod run;
mod sequence;
mod serve;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Run, serve, benchmark and inspect Mixture-of-Experts checkpoints on the CPU.
#[derive(Parser, Debug)]
#[command(name = "moe", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate text from a prompt (or chat with --chat), streaming it to stdout.
    Run(run::RunArgs),
    /// Serve an OpenAI-compatible API (/v1/completions, /v1/chat/completions) with continuous batching.
    Serve(serve::ServeArgs),
    /// Prefill and decode throughput (tokens/s) of a checkpoint.
    Bench(bench::BenchArgs),
    /// What a checkpoint is: family, parameters, weight formats, cache and memory needs, support.
    Inspect(inspect::InspectArgs),
    /// Print a shell completion script (e.g. `moe completions bash > /etc/bash_completion.d/moe`).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => match run::run(a) {
            Ok(()) | Err(output::Stopped::ReaderGone) => Ok(()),
            Err(output::Stopped::Failed(e)) => Err(e),
        },
        Command::Serve(a) => serve::serve(a),
        Command::Bench(a) => bench::bench(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics when its writer fails (e.g. a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "moe", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script).map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn unknown_flags_are_errors() {
        let e = Cli::try_parse_from(["moe", "run", "--no-such-flag"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
        let e = Cli::try_parse_from(["moe", "serve", "--port", "eighty"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
    }
}
