//! The command line: argument definitions and dispatch. Commands load config and specs,
//! call the engine, and render what it returns.

mod docs;
mod live;
mod migrate;
mod roles;
mod schema;
mod seed;
mod tenant;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::Outcome;

const EXIT_CODES: &str = "\
Exit codes:
  0  success; in sync; no findings
  1  the check found something: lint findings, drift, pending or failed migrations
  2  caas could not do its job: bad input, bad config, no connection";

/// MongoDB schemas as code for multi-tenant SaaS platforms.
#[derive(Debug, Parser)]
#[command(name = "caas", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub project: ProjectOpts,
    #[command(flatten)]
    pub connect: crate::connect::ConnectOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Which project to work on.
#[derive(Debug, Clone, Args)]
pub struct ProjectOpts {
    /// Project directory (holds caas.toml, schemas/, migrations/).
    #[arg(short = 'C', long = "project-dir", global = true, default_value = ".")]
    pub project_dir: PathBuf,
    /// Config file, relative to the project directory. Default: caas.toml.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

impl ProjectOpts {
    pub fn load(&self) -> Result<Config> {
        Config::load(&self.project_dir, self.config.as_deref())
            .context("loading the project config")
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Collection specs: lint, compile, and the spec format's JSON Schema.
    #[command(subcommand, after_help = EXIT_CODES)]
    Schema(schema::SchemaCommand),
    /// Markdown documentation of every collection, generated from the specs.
    #[command(after_help = EXIT_CODES)]
    Docs(docs::DocsArgs),
    /// Versioned migrations over every target of every tier.
    #[command(subcommand, after_help = EXIT_CODES)]
    Migrate(migrate::MigrateCommand),
    /// MongoDB roles per owning service, generated from the specs.
    #[command(subcommand, after_help = EXIT_CODES)]
    Roles(roles::RolesCommand),
    /// Load demo data for every collection and tier (never into production without --force).
    #[command(after_help = EXIT_CODES)]
    Seed(seed::SeedArgs),
    /// The tenant registry (saas_clients).
    #[command(subcommand, after_help = EXIT_CODES)]
    Tenant(tenant::TenantCommand),
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Schema(cmd) => schema::run(&cli.project, &cli.connect, cmd).await,
        Command::Docs(args) => docs::run(&cli.project.load()?, args),
        Command::Migrate(cmd) => migrate::run(&cli.project.load()?, &cli.connect, cmd).await,
        Command::Roles(cmd) => roles::run(&cli.project.load()?, &cli.connect, cmd).await,
        Command::Seed(args) => seed::run(&cli.project.load()?, &cli.connect, args).await,
        Command::Tenant(cmd) => tenant::run(&cli.project.load()?, &cli.connect, cmd).await,
    }
}
