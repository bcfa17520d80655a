//! The `stylize-video` command: parses the options, builds the job, runs it with a progress
//! display, and reports errors in one line. The work is the library's (`stylize_video`).

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::Cli;

fn main() -> ExitCode {
    stylize_video::net::memory::reuse_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // One line: what clap says is wrong and the values it would take, without its
            // usage line and pointer to --help.
            let message = e.render().to_string();
            let said: Vec<&str> =
                message.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:")).collect();
            eprintln!("stylize-video: {}", if said.is_empty() { "invalid arguments".into() } else { said.join(" ") });
            return ExitCode::from(2);
        }
    };
    let quiet = cli.quiet;
    match cli.job() {
        Ok(job) => cli::run::run(job, quiet),
        Err(e) => {
            eprintln!("stylize-video: error: {e}");
            ExitCode::from(2)
        }
    }
}
