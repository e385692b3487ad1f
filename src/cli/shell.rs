//! `caas completions <shell>` and `caas man`: generated from the same clap definitions as
//! the command line itself, so they cannot drift from it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Outcome};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for: bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (caas.1, caas-schema.1, caas-schema-lint.1, ...) into this
    /// folder instead of printing the top page.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Print the completion script for `shell` (e.g. `caas completions bash > /etc/bash_completion.d/caas`).
pub fn completions(args: CompletionsArgs) -> Result<Outcome> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "caas", &mut out);
    out.flush()?;
    Ok(Outcome::Clean)
}

/// Print the man page, or write every page into a folder.
pub fn man(args: ManArgs) -> Result<Outcome> {
    let cmd = Cli::command();
    match args.out {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            let pages = std::fs::read_dir(&dir)?.count();
            eprintln!("wrote {pages} man page(s) into {}", dir.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            out.flush()?;
        }
    }
    Ok(Outcome::Clean)
}
