//! The command line: argument definitions and dispatch. Commands load config and specs,
//! call the engine, and render what it returns.

mod adopt;
pub mod args;
mod docs;
mod guard;
mod lifecycle;
mod live;
mod migrate;
mod offboard;
mod roles;
mod schema;
mod seed;
mod sharding;
mod shell;
pub mod style;
mod tenant;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use caas_core::config::Config;
use caas_core::connect::ConnectOpts;

/// The version of every `--json` shape (docs/json-output.schema.json). Raised when a shape
/// changes in a way a reader could trip over.
pub const JSON_VERSION: u64 = 1;

/// Print a command's `--json` output: `{"version": 1, "command": "...", ...body}`. One
/// shape per command, whether or not anything changed.
pub fn print_json(command: &str, body: impl serde::Serialize) -> Result<()> {
    let mut out = serde_json::Map::new();
    out.insert("version".into(), JSON_VERSION.into());
    out.insert("command".into(), command.into());
    match serde_json::to_value(body)? {
        serde_json::Value::Object(fields) => out.extend(fields),
        other => {
            out.insert("result".into(), other);
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::Value::Object(out))?
    );
    Ok(())
}

/// Exit status after an interrupt, as shells report SIGINT (128 + 2).
pub const EXIT_INTERRUPTED: u8 = 130;

/// How a command ended when it could do its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Success, or "in sync": exit 0.
    Clean,
    /// The check found something (drift, lint findings, pending migrations): exit 1.
    Found,
    /// Stopped at a safe point after Ctrl-C: exit 130.
    Interrupted,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Clean => ExitCode::SUCCESS,
            Outcome::Found => ExitCode::from(1),
            Outcome::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
        }
    }
}

const EXIT_CODES: &str = "\
Exit codes:
  0  success; in sync; no findings
  1  the check found something: lint findings, drift, pending or failed migrations
  2  caas could not do its job: bad input, bad config, no connection";

/// MongoDB schemas as code for multi-tenant SaaS platforms.
#[derive(Debug, Parser)]
#[command(
    name = "caas",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CAAS_COMMIT"), ")"),
    about,
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub project: ProjectOpts,
    #[command(flatten)]
    pub connect: args::ConnectArgs,
    #[command(flatten)]
    pub guard: guard::GuardArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// How much caas says on stderr.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Say more on stderr: -v what caas does per target (leases, steps, applies), -vv per
    /// database read and batch. RUST_LOG (e.g. `RUST_LOG=caas_core=debug`) overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only results, warnings and errors: no progress lines or bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Progress as JSON lines on stderr instead of text: one event per target and step
    /// (start, done with outcome and duration in ms), for CI dashboards.
    #[arg(long, value_enum, global = true, default_value_t = Progress::Text)]
    pub progress: Progress,
    /// Colour in tables: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, value_enum, global = true, default_value_t = style::ColorChoice::Auto)]
    pub color: style::ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    Text,
    Json,
}

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether progress output is off (`--quiet`).
pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

impl OutputArgs {
    /// Set up logging (tracing on stderr) and the quiet switch, once, before any command.
    pub fn init(&self) {
        style::init(self.color);
        // JSON progress replaces the text progress lines (not warnings or results).
        let json = self.progress == Progress::Json;
        QUIET.store(self.quiet || json, std::sync::atomic::Ordering::Relaxed);
        if json {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("caas=info,caas_core=info"));
            let _ = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_target(false)
                .with_writer(std::io::stderr)
                .with_env_filter(filter)
                .try_init();
            return;
        }
        let level = match (self.quiet, self.verbose) {
            (true, _) => "error",
            (false, 0) => "warn",
            (false, 1) => "info",
            (false, 2) => "debug",
            _ => "trace",
        };
        let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("caas={level},caas_core={level}"))
        });
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            )
            .without_time()
            .compact()
            .try_init();
    }
}

/// Which project to work on.
#[derive(Debug, Clone, Args)]
pub struct ProjectOpts {
    /// Where to look for the project: caas.toml in this folder or the nearest one above it
    /// (as git and cargo look). Default: the current folder.
    #[arg(short = 'C', long = "project-dir", global = true, default_value = ".")]
    pub project_dir: PathBuf,
    /// Config file, relative to the project directory. Default: caas.toml.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

impl ProjectOpts {
    pub fn load(&self) -> Result<Config> {
        Config::discover(&self.project_dir, self.config.as_deref())
            .context("loading the project config")
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a project: caas.toml, example specs per domain, migrations/, seeds/, editor
    /// schemas and an example CI job. Refuses to overwrite an existing project.
    #[command(after_help = EXIT_CODES)]
    Init(InitArgs),
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
    /// Shell completion script for bash, zsh, fish, elvish or powershell.
    Completions(shell::CompletionsArgs),
    /// The man page (or, with --out, one page per command).
    Man(shell::ManArgs),
    /// The tenant registry (saas_clients).
    #[command(subcommand, after_help = EXIT_CODES)]
    Tenant(tenant::TenantCommand),
}

#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// The folder to start the project in (created if missing). Default: the current folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// No example specs or seed file: only the tenant registry's spec, for a project that
    /// `caas schema pull` fills from an existing deployment.
    #[arg(long)]
    pub no_examples: bool,
}

fn init(args: InitArgs) -> Result<Outcome> {
    let written = caas_core::scaffold::write(&args.dir, !args.no_examples)?;
    if !quiet() {
        for path in &written {
            println!("created {}", path.display());
        }
    }
    let cd = if args.dir == std::path::Path::new(".") {
        String::new()
    } else {
        format!("cd {} && ", args.dir.display())
    };
    println!("project ready; next: `{cd}caas schema lint`, then `caas schema pull` to adopt an existing deployment or `caas schema plan` to create one");
    Ok(Outcome::Clean)
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> Result<Outcome> {
    let connect = ConnectOpts::from(cli.connect);
    match cli.command {
        Command::Schema(cmd) => schema::run(&cli.project, &connect, &cli.guard, cmd).await,
        Command::Docs(args) => docs::run(&cli.project.load()?, args),
        Command::Migrate(cmd) => {
            migrate::run(&cli.project.load()?, &connect, &cli.guard, cmd).await
        }
        Command::Roles(cmd) => roles::run(&cli.project.load()?, &connect, &cli.guard, cmd).await,
        Command::Seed(args) => seed::run(&cli.project.load()?, &connect, &cli.guard, args).await,
        Command::Tenant(cmd) => tenant::run(&cli.project.load()?, &connect, &cli.guard, cmd).await,
        Command::Init(args) => init(args),
        Command::Completions(args) => shell::completions(args),
        Command::Man(args) => shell::man(args),
    }
}

/// Listen for Ctrl-C (SIGINT) for the rest of the process: the first asks the engine to
/// stop at its next safe point, the second exits at once.
pub fn listen_for_interrupt() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        caas_core::base::interrupt::request();
        eprintln!(
            "\ninterrupted: stopping at the next safe point (press Ctrl-C again to quit at once)"
        );
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("quitting now; leases held expire by themselves");
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
}
