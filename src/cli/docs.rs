//! `caas docs [--out DIR] [--check]`: Markdown documentation generated from the specs.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::Outcome;
use caas_core::config::Config;

#[derive(Debug, Clone, Args)]
pub struct DocsArgs {
    /// Output folder, relative to the project. Default: docs/schema.
    #[arg(long, default_value = "docs/schema")]
    pub out: PathBuf,
    /// Write nothing; exit 1 if the committed docs differ from the specs (for CI).
    #[arg(long)]
    pub check: bool,
    /// Print the result as JSON (see docs/json-output.schema.json).
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: &Config, args: DocsArgs) -> Result<Outcome> {
    let loaded = caas_core::project::load(config)?;
    let specs: Vec<&caas_core::spec::CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    let pages = caas_core::docs::render(&specs, config);
    let dir = config.root.join(&args.out);
    if args.check {
        let stale = caas_core::docs::stale(&dir, &pages);
        if args.json {
            super::print_json(
                "docs --check",
                serde_json::json!({ "up_to_date": stale.is_empty(), "dir": dir, "pages": pages.len(), "stale": stale }),
            )?;
            return Ok(if stale.is_empty() {
                Outcome::Clean
            } else {
                Outcome::Found
            });
        }
        if stale.is_empty() {
            println!("{} is up to date ({} pages)", dir.display(), pages.len());
            return Ok(Outcome::Clean);
        }
        for s in &stale {
            println!("{}: {s}", dir.display());
        }
        println!(
            "the docs are stale; run `caas docs` and commit {}",
            dir.display()
        );
        return Ok(Outcome::Found);
    }
    caas_core::docs::write(&dir, &pages)?;
    if args.json {
        super::print_json(
            "docs",
            serde_json::json!({ "dir": dir, "pages": pages.len() }),
        )?;
    } else {
        println!("wrote {} pages to {}", pages.len(), dir.display());
    }
    Ok(Outcome::Clean)
}
