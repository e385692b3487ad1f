//! Confirmation before destructive or irreversible work (`apply --allow-destructive` or
//! `--prune` with such changes, `migrate down`, `seed --reset`, `migrate unlock --force`,
//! `roles apply --prune`): caas shows what it will do, then
//! - in production (`[connection] production = true`, or `CAAS_ENVIRONMENT=production`)
//!   refuses unless given `--yes` and `--environment production`;
//! - elsewhere, with `--yes`, goes on;
//! - on a terminal, asks (y/N);
//! - in a script without `--yes`, refuses and says to pass it.
//!
//! Refusals are errors (exit 2) and happen before anything is written.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Result};
use clap::Args;

use caas_core::config::Config;

/// Environment variable that marks production, like `[connection] production = true`.
pub const ENV_MARKER: &str = "CAAS_ENVIRONMENT";

#[derive(Debug, Clone, Default, Args)]
pub struct GuardArgs {
    /// Confirm destructive or irreversible work without asking (for scripts and CI).
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Acknowledge the environment you mean (`--environment production` is required, with
    /// --yes, for destructive work in production).
    #[arg(long, global = true, value_name = "NAME")]
    pub environment: Option<String>,
}

/// Whether the project or the process is marked production.
pub fn is_production(config: &Config) -> bool {
    config.connection.production
        || std::env::var(ENV_MARKER).is_ok_and(|v| v.eq_ignore_ascii_case("production"))
}

fn marker(config: &Config) -> &'static str {
    if config.connection.production {
        "`[connection] production = true` in caas.toml"
    } else {
        "CAAS_ENVIRONMENT=production"
    }
}

impl GuardArgs {
    /// Show `what` and its `details` (one line each), then go on only as the rules above say.
    pub fn confirm(&self, config: &Config, what: &str, details: &[String]) -> Result<()> {
        let production = is_production(config);
        let acknowledged = self
            .environment
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case("production"));
        let confirmed = self.yes && (acknowledged || !production);
        // With --quiet and a confirmation already given, say nothing; otherwise show it.
        if !(confirmed && super::quiet()) {
            show(what, details)?;
        }
        if production {
            if confirmed {
                return Ok(());
            }
            bail!(
                "refused: this environment is marked production ({}); nothing was changed. Rerun with --yes --environment production if you mean it",
                marker(config)
            );
        }
        if self.yes {
            return Ok(());
        }
        if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
            let mut err = std::io::stderr().lock();
            write!(err, "Proceed? [y/N] ")?;
            err.flush()?;
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
                return Ok(());
            }
            bail!("cancelled; nothing was changed");
        }
        bail!("refused: this is destructive and there is no terminal to ask on; nothing was changed. Pass --yes to confirm in a script")
    }
}

/// What a destructive command will do, on stderr (at most 50 lines of detail).
fn show(what: &str, details: &[String]) -> Result<()> {
    let mut err = std::io::stderr().lock();
    writeln!(err, "{what}:")?;
    for d in details.iter().take(50) {
        writeln!(err, "  {d}")?;
    }
    if details.len() > 50 {
        writeln!(err, "  ... and {} more", details.len() - 50)?;
    }
    Ok(())
}
