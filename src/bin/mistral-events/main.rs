//! `mistral-events`: stream Mistral chats as typed events from a shell, run
//! the offline simulator, or replay a captured stream.
//!
//! ```text
//! mistral-events chat "Say hi"                 # answer on stdout
//! mistral-events chat --events jsonl "Say hi"  # every event as JSON lines
//! mistral-events sim --port 8080               # the simulator
//! mistral-events replay body.sse               # a captured SSE body
//! ```
//!
//! Exit status: 0 after `complete`, 1 after `error`, 2 for a usage error,
//! 130 when interrupted.

mod args;
mod chat;
mod output;
mod sim;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::{Cli, Command};

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The call completed.
    Complete,
    /// The call ended in an error.
    Failed,
    /// The command line or configuration was wrong.
    Usage,
    /// Ctrl-C.
    Interrupted,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(match exit {
            Exit::Complete => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Interrupted => 130,
        })
    }
}

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with status 2.
    let cli = Cli::parse();
    init_logging();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mistral-events: cannot start the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let exit = runtime.block_on(async move {
        match cli.command {
            Command::Chat(args) => chat::chat(args).await,
            Command::Replay(args) => chat::replay(args).await,
            Command::Sim(args) => sim::sim(args).await,
        }
    });
    // A write stuck on a stalled stdout must not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    exit.into()
}

/// Logs go to stderr; `RUST_LOG` picks what is shown (default: warnings).
/// Colours only on a terminal.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
