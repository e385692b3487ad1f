use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = caas::cli::Cli::parse();
    let result = caas::run(cli).await;
    caas::connect::close_all().await;
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            let text = caas::redact::redact(&format!("{err:#}"));
            eprintln!("error: {text}");
            ExitCode::from(2)
        }
    }
}
