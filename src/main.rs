use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = caas::cli::Cli::parse();
    match caas::run(cli).await {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            let text = caas::redact::redact(&format!("{err:#}"));
            eprintln!("error: {text}");
            ExitCode::from(2)
        }
    }
}
