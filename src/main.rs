//! The `caas` binary: the command line over the `caas-core` engine.

mod cli;
mod render;

use std::process::ExitCode;

use clap::Parser;

/// Exit status of a process ended by SIGPIPE, as shells report it (128 + 13).
const BROKEN_PIPE: i32 = 141;

/// No panic reaches a user as a backtrace. A closed stdout (`caas tenant list | head -1`)
/// ends the command quietly, as other Unix tools do; any other panic is one line asking for
/// a bug report, with exit 2 ("the tool could not do its job").
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if message.contains("Broken pipe") || message.contains("failed printing to stdout") {
            std::process::exit(BROKEN_PIPE);
        }
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: caas hit a bug and stopped ({}{place}); please report it with the command you ran",
            caas_core::base::redact::redact(&message)
        );
        std::process::exit(2);
    }));
}

#[tokio::main]
async fn main() -> ExitCode {
    install_panic_hook();
    cli::listen_for_interrupt();
    let cli = cli::Cli::parse();
    cli.output.init();
    let result = cli::run(cli).await;
    caas_core::connect::close_all().await;
    let interrupted = caas_core::base::interrupt::requested();
    match result {
        Ok(_) if interrupted => {
            eprintln!("interrupted: what is reported above as done is committed; rerun the same command to do the rest");
            ExitCode::from(cli::EXIT_INTERRUPTED)
        }
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            let text = caas_core::base::redact::redact(&format!("{err:#}"));
            eprintln!("error: {text}");
            if interrupted {
                eprintln!("interrupted: what is committed stays committed; rerun the same command to do the rest");
                return ExitCode::from(cli::EXIT_INTERRUPTED);
            }
            ExitCode::from(2)
        }
    }
}
