//! The `stylize-video` command: parses the options, builds the job, runs it with a progress
//! display, and reports errors (ours in one line; clap's as clap writes them). The work is the
//! library's (`stylize_video`).

mod cli;

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use cli::args::Cli;

fn main() -> ExitCode {
    stylize_video::net::memory::reuse_freed_memory();
    // clap's own errors whole (what is wrong, the possible values, "did you mean", the usage
    // line), with its exit status 2; --help and --version on stdout.
    let matches = Cli::command().try_get_matches().unwrap_or_else(|e| e.exit());
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cli.given = matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect();
    let quiet = cli.quiet;
    match cli.job() {
        Ok(job) => cli::run::run(job, quiet),
        Err(e) => {
            eprintln!("stylize-video: error: {e}");
            ExitCode::from(2)
        }
    }
}
