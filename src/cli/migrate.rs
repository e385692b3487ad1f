//! `caas migrate ...`: new, status, up, down, verify, repair, unlock.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Subcommand;

use super::args::OnErrorArg;
use super::live::TargetOpts;
use super::schema::{LintFormat, LintOutput};
use super::style::{self, Tone};
use super::Outcome;
use caas_core::config::Config;
use caas_core::connect::{ConnectOpts, Connection};
use caas_core::fleet;
use caas_core::migrate::down::DownOptions;
use caas_core::migrate::repair::{RepairOptions, RepairReport};
use caas_core::migrate::runner::{self, Fleetwide, RunStatus, TargetRun, UpOptions};
use caas_core::migrate::status::{self};
use caas_core::migrate::{self as mig, Migration};
use caas_core::spec::LoadedSpec;
use caas_core::tenancy::Target;

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Scaffold the next migration file (no database needed).
    New {
        /// Name, e.g. `normalize_phone` (letters, digits, `_`).
        name: String,
        /// tenant, platform, billing, analytics or security.
        #[arg(long, default_value = "tenant")]
        scope: String,
        /// Print the result as JSON (see docs/json-output.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// Check the migration files against the specs, offline (what `up` refuses before it
    /// connects). Exit 1 on errors.
    Lint {
        #[command(flatten)]
        output: LintOutput,
    },
    /// Applied, pending and failed migrations per target, with lock holders.
    Status {
        #[command(flatten)]
        targets: TargetOpts,
        /// Print the result as JSON (see docs/json-output.schema.json).
        #[arg(long)]
        json: bool,
        /// Exit 1 if anything is pending or failed.
        #[arg(long)]
        exit_code: bool,
    },
    /// Apply pending migrations on every target (a rerun retries only what is not applied).
    Up {
        #[command(flatten)]
        targets: TargetOpts,
        /// Stop at this version.
        #[arg(long)]
        to: Option<u32>,
        /// Print the steps per target with physical names; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t = OnErrorArg::Continue)]
        on_error: OnErrorArg,
        /// Stop starting new targets after this many failures.
        #[arg(long)]
        max_failures: Option<usize>,
        /// Seconds to wait for a target's lock held by another runner.
        #[arg(long, default_value_t = 30)]
        lock_timeout: u64,
        /// Pause between backfill batches (milliseconds), to limit load.
        #[arg(long, default_value_t = 0)]
        batch_pause_ms: u64,
        /// Lease length of a target's lock; a crashed runner's lock frees after this.
        #[arg(long, default_value_t = 15)]
        lease_seconds: u64,
        /// Print the result as JSON (see docs/json-output.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// Revert the newest applied migrations, only on targets that applied them.
    Down {
        #[command(flatten)]
        targets: TargetOpts,
        /// How many migrations to revert per target (default 1).
        #[arg(long, conflicts_with = "to")]
        steps: Option<usize>,
        /// Revert every migration above this version.
        #[arg(long)]
        to: Option<u32>,
        /// Print the down steps per target with physical names; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for a target's lock held by another runner.
        #[arg(long, default_value_t = 30)]
        lock_timeout: u64,
        /// Lease length of a target's lock; a crashed runner's lock frees after this.
        #[arg(long, default_value_t = 15)]
        lease_seconds: u64,
        /// Pause between backfill batches (milliseconds), to limit load.
        #[arg(long, default_value_t = 0)]
        batch_pause_ms: u64,
        /// Print the per-target report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check checksums and ordering against every ledger (for CI). Exit 1 on a problem.
    Verify {
        #[command(flatten)]
        targets: TargetOpts,
        /// Print the result as JSON (see docs/json-output.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// Accept edited migrations' new checksums, or clear failed entries, on purpose.
    Repair {
        #[command(flatten)]
        targets: TargetOpts,
        /// Record the current file's checksum for edited, applied migrations.
        #[arg(long)]
        accept_checksum: bool,
        /// Remove `failed` entries so they run again from the start (interrupted `running`
        /// ones are left for `up`, which resumes them).
        #[arg(long)]
        clear_failed: bool,
        /// Only this version.
        #[arg(long)]
        version: Option<u32>,
        /// Seconds to wait for a target's lock held by a runner before refusing that target
        /// (default: refuse at once).
        #[arg(long, default_value_t = 0)]
        lock_timeout: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mark versions up to --version as applied on targets whose data already has them,
    /// without running them (recorded `baselined`; `up` skips them, `down` leaves them).
    Baseline {
        #[command(flatten)]
        targets: TargetOpts,
        /// The newest version the deployment already has.
        #[arg(long)]
        version: u32,
        /// Say what would be recorded, writing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for a target's lock held by a runner before refusing that target.
        #[arg(long, default_value_t = 0)]
        lock_timeout: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Release expired locks of the selected targets; with --force --owner, evict a live one.
    Unlock {
        #[command(flatten)]
        targets: TargetOpts,
        /// Evict the live lease of the runner named by --owner (its next write fails).
        #[arg(long, requires = "owner")]
        force: bool,
        /// The owner to evict, as `caas migrate status` shows it.
        #[arg(long)]
        owner: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `caas migrate lint`: every finding of the migration files, in the chosen format. Specs
/// that do not load stop it with their own findings (`schema lint` shows them).
fn lint(config: &Config, format: LintFormat, deny_warnings: bool) -> Result<Outcome> {
    let loaded = caas_core::project::load(config)?;
    let specs: Vec<&caas_core::spec::CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    let (_, report) = mig::project::lint_project(config, &specs);
    let counts = (report.files, report.errors, report.warnings);
    super::schema::print_findings(
        "migrate lint",
        "migration files",
        &report,
        counts,
        &report.findings,
        format,
        deny_warnings,
    )
}

/// Specs and migrations, or the findings that stop everything before a connection.
pub(crate) fn load(config: &Config) -> Result<(Vec<LoadedSpec>, Vec<Migration>)> {
    let loaded = caas_core::project::load(config)?;
    let specs: Vec<&caas_core::spec::CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    let migrations = load_migrations(config, &specs)?;
    Ok((loaded, migrations))
}

/// The migration files, or the findings that stop everything before a connection.
pub(crate) fn load_migrations(
    config: &Config,
    specs: &[&caas_core::spec::CollectionSpec],
) -> Result<Vec<Migration>> {
    let (migrations, warnings) = mig::project::load_project(config, specs)?;
    for w in &warnings {
        eprintln!("{w}");
    }
    Ok(migrations)
}

pub async fn run(
    config: &Config,
    connect: &ConnectOpts,
    guard: &super::guard::GuardArgs,
    cmd: MigrateCommand,
) -> Result<Outcome> {
    if let MigrateCommand::New { name, scope, json } = &cmd {
        return new(config, name, scope, *json);
    }
    if let MigrateCommand::Lint { output } = &cmd {
        return lint(config, output.format(), output.deny_warnings);
    }
    let (loaded, migrations) = load(config)?;
    let specs: Vec<&caas_core::spec::CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    let conn = connect.connect(config).await?;
    let conn_ref = &conn;
    let targets_of = |t: &TargetOpts| {
        let sel = t.selection();
        async move { fleet::resolve(conn_ref, config, &sel).await }
    };
    // What every fleet-wide command shares; each adds the tenants it resolved.
    let base = Fleetwide {
        client: &conn.client,
        config,
        specs: &specs,
        tenants: &[],
        migrations: &migrations,
    };
    match cmd {
        MigrateCommand::New { .. } | MigrateCommand::Lint { .. } => unreachable!("handled above"),
        MigrateCommand::Status {
            targets,
            json,
            exit_code,
        } => {
            let fl = targets_of(&targets).await?;
            status(&conn, config, &fl.targets, &migrations, json, exit_code).await
        }
        MigrateCommand::Up {
            targets,
            to,
            dry_run,
            on_error,
            max_failures,
            lock_timeout,
            batch_pause_ms,
            lease_seconds,
            json,
        } => {
            let fl = targets_of(&targets).await?;
            status::refuse_partial_shared(&targets.selection(), &fl.tenants, config)?;
            let f = Fleetwide {
                tenants: &fl.tenants,
                ..base
            };
            let opts = UpOptions {
                to,
                dry_run,
                concurrency: targets.concurrency,
                on_error: on_error.into(),
                max_failures,
                lock_wait: Duration::from_secs(lock_timeout),
                lease: Duration::from_secs(lease_seconds.max(1)),
                batch_pause: Duration::from_millis(batch_pause_ms),
            };
            let runs = runner::up(&f, &fl.targets, &opts, &progress(json)).await?;
            report_runs(&runs, json, dry_run, "applied")
        }
        MigrateCommand::Down {
            targets,
            steps,
            to,
            dry_run,
            lock_timeout,
            lease_seconds,
            batch_pause_ms,
            json,
        } => {
            let fl = targets_of(&targets).await?;
            status::refuse_partial_shared(&targets.selection(), &fl.tenants, config)?;
            let f = Fleetwide {
                tenants: &fl.tenants,
                ..base
            };
            let opts = DownOptions {
                steps,
                to,
                dry_run,
                concurrency: targets.concurrency,
                lock_wait: Duration::from_secs(lock_timeout),
                lease: Duration::from_secs(lease_seconds.max(1)),
                batch_pause: Duration::from_millis(batch_pause_ms),
            };
            if !dry_run {
                // Reverting is irreversible data work: show what would be undone, confirm.
                let preview = DownOptions {
                    dry_run: true,
                    ..opts.clone()
                };
                let planned =
                    caas_core::migrate::down::down(&f, &fl.targets, &preview, &|_| {}).await?;
                let undo: Vec<String> = planned
                    .iter()
                    .filter(|r| !r.steps.is_empty())
                    .map(|r| format!("{}: {}", r.target, r.steps.join("; ")))
                    .collect();
                if !undo.is_empty() {
                    let what = format!("migrate down will revert {} target(s)", undo.len());
                    guard.confirm(config, &what, &undo)?;
                }
            }
            let runs =
                caas_core::migrate::down::down(&f, &fl.targets, &opts, &progress(json)).await?;
            report_runs(&runs, json, dry_run, "reverted")
        }
        MigrateCommand::Verify { targets, json } => {
            let fl = targets_of(&targets).await?;
            verify(&conn, config, &fl.targets, &migrations, json).await
        }
        MigrateCommand::Repair {
            targets,
            accept_checksum,
            clear_failed,
            version,
            lock_timeout,
            json,
        } => {
            if !accept_checksum && !clear_failed {
                bail!("say what to repair: --accept-checksum (edited migrations) and/or --clear-failed (failed entries)");
            }
            let fl = targets_of(&targets).await?;
            let f = Fleetwide {
                tenants: &fl.tenants,
                ..base
            };
            let opts = RepairOptions {
                accept_checksum,
                clear_failed,
                version,
                lock_wait: Duration::from_secs(lock_timeout),
                lease: caas_core::migrate::lock::LEASE,
            };
            let report = caas_core::migrate::repair::repair(&f, &fl.targets, &opts).await?;
            render_repair(&report, json)
        }
        MigrateCommand::Baseline {
            targets,
            version,
            dry_run,
            lock_timeout,
            json,
        } => {
            let fl = targets_of(&targets).await?;
            if !dry_run {
                let on: Vec<String> = fl.targets.iter().map(|t| t.to_string()).collect();
                let what =
                    format!("record versions up to V{version:04} as applied without running them");
                guard.confirm(config, &what, &on)?;
            }
            let f = Fleetwide {
                tenants: &fl.tenants,
                ..base
            };
            let opts = caas_core::migrate::baseline::BaselineOptions {
                version,
                dry_run,
                lock_wait: Duration::from_secs(lock_timeout),
                lease: caas_core::migrate::lock::LEASE,
            };
            let report = caas_core::migrate::baseline::baseline(&f, &fl.targets, &opts).await?;
            render_baseline(&report, version, dry_run, json)
        }
        MigrateCommand::Unlock {
            targets,
            force,
            owner,
            json,
        } => {
            let fl = targets_of(&targets).await?;
            let evict = owner.as_deref().filter(|_| force);
            if let Some(o) = evict {
                let on: Vec<String> = fl.targets.iter().map(|t| t.to_string()).collect();
                let what = format!("evict the live lease of `{o}` where it holds one");
                guard.confirm(config, &what, &on)?;
            }
            let report =
                caas_core::migrate::repair::unlock(&conn.client, config, &fl.targets, evict)
                    .await?;
            render_unlock(&report, json)
        }
    }
}

/// Progress lines on stderr, none with `--json`.
fn progress(json: bool) -> impl Fn(&str) + Sync {
    move |line: &str| {
        if !json && !super::quiet() {
            eprintln!("{line}");
        }
    }
}

fn render_unlock(report: &caas_core::migrate::lock::UnlockReport, json: bool) -> Result<Outcome> {
    if json {
        super::print_json("migrate unlock", report)?;
    } else {
        for (target, owner) in &report.released {
            println!("{target}: released the lease of {owner}");
        }
        println!("released {} lease(s)", report.released.len());
    }
    if !report.refused.is_empty() {
        let held: Vec<String> = report
            .refused
            .iter()
            .map(|l| format!("{}: held by {}", l.id, l.describe()))
            .collect();
        bail!(
            "{} live lease(s) left alone:\n  {}\na live runner holds them; to evict one on purpose, run `caas migrate unlock --force --owner <owner>` (its next write fails and it stops)",
            held.len(),
            held.join("\n  ")
        );
    }
    Ok(Outcome::Clean)
}

fn render_baseline(
    report: &[caas_core::migrate::baseline::TargetBaseline],
    version: u32,
    dry_run: bool,
    json: bool,
) -> Result<Outcome> {
    let refused: Vec<&str> = report.iter().filter_map(|t| t.refused.as_deref()).collect();
    if json {
        super::print_json(
            "migrate baseline",
            serde_json::json!({ "version": version, "dry_run": dry_run, "targets": report }),
        )?;
    } else {
        let (verb, done) = if dry_run {
            ("would record", "would be recorded")
        } else {
            ("recorded", "recorded")
        };
        for t in report.iter().filter(|t| t.refused.is_none()) {
            println!(
                "{}: {verb} {} as baselined{}",
                t.target,
                if t.baselined.is_empty() {
                    "nothing".to_string()
                } else {
                    versions(&t.baselined, ", ")
                },
                if t.already.is_empty() {
                    String::new()
                } else {
                    format!(" ({} already applied)", versions(&t.already, ", "))
                }
            );
        }
        let n: usize = report.iter().map(|t| t.baselined.len()).sum();
        println!(
            "{n} version(s) {done} as baselined on {} target(s)",
            report.len() - refused.len()
        );
    }
    if !refused.is_empty() {
        bail!(
            "{} target(s) refused, nothing written there:\n  {}",
            refused.len(),
            refused.join("\n  ")
        );
    }
    Ok(Outcome::Clean)
}

fn render_repair(report: &RepairReport, json: bool) -> Result<Outcome> {
    if json {
        super::print_json("migrate repair", report)?;
    } else {
        for i in &report.accepted {
            println!(
                "{}: accepted the new checksum of V{:04}__{}",
                i.target, i.version, i.name
            );
        }
        for i in &report.cleared {
            println!(
                "{}: cleared the failed entry of V{:04}__{}; it runs again from its first step",
                i.target, i.version, i.name
            );
        }
        for i in &report.interrupted {
            println!("{}: V{:04}__{} was interrupted (its runner is gone); left as is: `caas migrate up` resumes it from its checkpoint", i.target, i.version, i.name);
        }
        for i in &report.reverting {
            println!(
                "{}: V{:04}__{} is half reverted; left as is: `caas migrate down` finishes it",
                i.target, i.version, i.name
            );
        }
        let n = report.changed();
        println!(
            "{n} ledger entr{} repaired",
            if n == 1 { "y" } else { "ies" }
        );
    }
    if !report.refused.is_empty() {
        let held: Vec<String> = report
            .refused
            .iter()
            .map(|(t, h)| format!("{t}: held by {h}"))
            .collect();
        bail!(
            "{} target(s) are being migrated now; nothing was repaired there:\n  {}\nrerun repair when they finish",
            held.len(),
            held.join("\n  ")
        );
    }
    Ok(Outcome::Clean)
}

fn new(config: &Config, name: &str, scope: &str, json: bool) -> Result<Outcome> {
    let file = mig::source::new_file(&config.migrations_dir(), name, scope)?;
    if json {
        super::print_json("migrate new", serde_json::json!({ "file": file }))?;
    } else {
        println!("created {}", file.display());
    }
    Ok(Outcome::Clean)
}

async fn status(
    conn: &Connection,
    config: &Config,
    targets: &[Target],
    migrations: &[Migration],
    json: bool,
    exit_code: bool,
) -> Result<Outcome> {
    let st = status::fleet_status(&conn.client, config, targets, migrations).await?;
    if json {
        super::print_json("migrate status", &st)?;
    } else {
        println!(
            "{} target(s), {} migration file(s): {} up to date, {} behind, {} with failures",
            st.targets,
            st.migrations,
            st.targets - st.behind,
            st.behind,
            st.failed
        );
        let mut table = crate::render::table(
            [
                "target",
                "applied",
                "baselined",
                "pending",
                "failed",
                "latest",
                "lock",
            ]
            .map(String::from)
            .to_vec(),
        );
        for s in &st.states {
            table.add_row(vec![
                s.target.to_string(),
                s.applied.len().to_string(),
                match s.baselined.iter().max() {
                    Some(v) => format!("{} (to V{v:04})", s.baselined.len()),
                    None => "-".into(),
                },
                versions(&s.pending, ", "),
                s.failed
                    .iter()
                    .map(|f| format!("{}: {}", f.version, f.error))
                    .collect::<Vec<_>>()
                    .join("\n"),
                s.latest
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                lock_note(s).unwrap_or_default(),
            ]);
        }
        println!("{}", crate::render::fitted(table));
    }
    Ok(if exit_code && (st.behind > 0 || st.failed > 0) {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

/// The lock column: the live lease, or why a target without one is not done.
fn lock_note(s: &status::TargetStatus) -> Option<String> {
    let padded = |v: &[u32]| {
        v.iter()
            .map(|x| format!("{x:04}"))
            .collect::<Vec<_>>()
            .join(", V")
    };
    match &s.lock {
        Some(l) => Some(l.clone()),
        None if !s.running.is_empty() => Some(format!(
            "none: V{} interrupted (`caas migrate up` resumes it)",
            padded(&s.running)
        )),
        None if !s.reverting.is_empty() => Some(format!(
            "none: V{} half reverted (`caas migrate down` finishes it)",
            padded(&s.reverting)
        )),
        None => None,
    }
}

fn versions(v: &[u32], sep: &str) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

fn report_runs(runs: &[TargetRun], json: bool, dry_run: bool, verb: &str) -> Result<Outcome> {
    if json {
        let command = if verb == "applied" {
            "migrate up"
        } else {
            "migrate down"
        };
        super::print_json(command, serde_json::json!({ "targets": runs }))?;
    } else if dry_run {
        for r in runs.iter().filter(|r| !r.steps.is_empty()) {
            println!("target {}:", r.target);
            for s in &r.steps {
                println!("  {s}");
            }
        }
        println!(
            "dry run: {} of {} target(s) have pending migrations; nothing was changed",
            runs.iter().filter(|r| !r.steps.is_empty()).count(),
            runs.len()
        );
    } else {
        let mut table = crate::render::table(
            ["target", "outcome", "versions", "error"]
                .map(String::from)
                .to_vec(),
        );
        for r in runs {
            let outcome = match r.status {
                RunStatus::UpToDate => "up to date".to_string(),
                RunStatus::Applied => format!(
                    "{verb}{}",
                    if r.resumed {
                        " (resumed from checkpoint)"
                    } else {
                        ""
                    }
                ),
                RunStatus::Failed => "FAILED".into(),
                RunStatus::NotStarted => "not started".into(),
                RunStatus::Interrupted => "interrupted (checkpoint kept)".into(),
                RunStatus::DryRun => "dry run".into(),
                RunStatus::Skipped => "skipped (tenant suspended)".into(),
            };
            let tone = match r.status {
                RunStatus::Failed => Tone::Bad,
                RunStatus::NotStarted | RunStatus::Interrupted | RunStatus::Skipped => Tone::Warn,
                RunStatus::Applied => Tone::Good,
                RunStatus::UpToDate | RunStatus::DryRun => Tone::Plain,
            };
            let versions = r
                .applied
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            table.add_row(vec![
                style::cell(r.target.to_string(), Tone::Plain),
                style::cell(outcome, tone),
                style::cell(versions, Tone::Plain),
                style::cell(r.error.clone().unwrap_or_default(), Tone::Bad),
            ]);
        }
        println!("{}", crate::render::fitted(table));
        let n: usize = runs.iter().map(|r| r.applied.len()).sum();
        println!("{n} migration(s) {verb} across {} target(s)", runs.len());
    }
    let failed: Vec<String> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Failed)
        .map(|r| format!("{}: {}", r.target, r.error.clone().unwrap_or_default()))
        .collect();
    if caas_core::base::interrupt::requested() && failed.is_empty() {
        let stopped = runs
            .iter()
            .filter(|r| matches!(r.status, RunStatus::Interrupted | RunStatus::NotStarted))
            .count();
        eprintln!(
            "interrupted: {} target(s) done, {stopped} stopped or not started",
            runs.len() - stopped
        );
        return Ok(Outcome::Interrupted);
    }
    let not_started = runs
        .iter()
        .filter(|r| r.status == RunStatus::NotStarted)
        .count();
    if !failed.is_empty() || not_started > 0 {
        bail!(
            "{} target(s) failed{}:\n  {}",
            failed.len(),
            if not_started > 0 {
                format!(", {not_started} not started")
            } else {
                String::new()
            },
            failed.join("\n  ")
        );
    }
    Ok(Outcome::Clean)
}

async fn verify(
    conn: &Connection,
    config: &Config,
    targets: &[Target],
    migrations: &[Migration],
    json: bool,
) -> Result<Outcome> {
    let states = status::states(&conn.client, config, targets, migrations).await?;
    let problems = status::verify(&states);
    let baselined: Vec<serde_json::Value> = states
        .iter()
        .filter(|s| !s.baselined.is_empty())
        .map(|s| serde_json::json!({ "target": s.target.to_string(), "versions": s.baselined }))
        .collect();
    if json {
        super::print_json(
            "migrate verify",
            serde_json::json!({ "ok": problems.is_empty(), "migrations": migrations.len(), "targets": states.len(), "problems": problems, "baselined": baselined }),
        )?;
        return Ok(if problems.is_empty() {
            Outcome::Clean
        } else {
            Outcome::Found
        });
    }
    for b in &baselined {
        println!(
            "{}: {} baselined (recorded as done, never run by caas); their checksums are verified too",
            b["target"].as_str().unwrap_or(""),
            b["versions"]
        );
    }
    if problems.is_empty() {
        println!(
            "verified {} migration file(s) against {} target ledger(s): checksums and order match",
            migrations.len(),
            states.len()
        );
        Ok(Outcome::Clean)
    } else {
        for p in &problems {
            println!("{}", p.message);
        }
        println!(
            "{} problem(s); `caas migrate repair` accepts edits or clears failures on purpose",
            problems.len()
        );
        Ok(Outcome::Found)
    }
}
