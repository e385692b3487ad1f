//! `caas schema plan|apply|diff`: the live side. Loads specs, resolves the fleet, plans,
//! and renders; `apply` executes through the engine.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::args::{self, TierArg};
use super::style::Tone;
use super::Outcome;
use caas_core::apply::{ApplyOptions, Status, TargetReport};
use caas_core::config::Config;
use caas_core::connect::{ConnectOpts, Connection};
use caas_core::fleet;
use caas_core::fleet::registry::Selection;
use caas_core::fleet::sharding::Sharding;
use caas_core::plan::{Safety, TargetPlan};

use super::sharding::ShardingOpts;

/// Which targets a run covers.
#[derive(Debug, Clone, Args)]
pub struct TargetOpts {
    /// Only this tenant's target (repeatable).
    #[arg(long = "tenant")]
    pub tenants: Vec<String>,
    /// Only this tier's targets (repeatable).
    #[arg(long = "tier")]
    pub tiers: Vec<TierArg>,
    /// Targets worked on at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

impl TargetOpts {
    pub fn selection(&self) -> Selection {
        Selection {
            tenants: self.tenants.clone(),
            tiers: args::tiers(&self.tiers),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Table,
    Json,
    /// A mongosh script a DBA can review and run.
    Mongosh,
}

/// Warn when the databases caas manages would hold more collections and indexes than the
/// configured budget (estimated without compiling, so it costs nothing at any fleet size).
fn warn_capacity(config: &Config, specs: &[&caas_core::spec::CollectionSpec], estimate: usize) {
    if estimate as u64 > config.connection.namespace_budget {
        eprintln!(
            "warning: about {estimate} collections and indexes in the databases caas manages once the specs are applied, over the budget of {} (connection.namespace_budget); MongoDB Atlas advises about 10,000 for mid tiers. Pro collection sets add {} per tenant.",
            config.connection.namespace_budget,
            specs
                .iter()
                .filter(|s| s.domain == caas_core::spec::Domain::Saas)
                .map(|s| 1 + s.indexes.len())
                .sum::<usize>()
        );
    }
}

/// The specs, a connection and the registry: what `plan`, `diff` and `apply` start from.
async fn open_fleet(
    config: &Config,
    connect: &ConnectOpts,
    targets: &TargetOpts,
) -> Result<(Vec<caas_core::spec::LoadedSpec>, Connection, fleet::Fleet)> {
    let loaded = caas_core::project::load(config)?;
    let conn = connect.connect(config).await?;
    let fleet = fleet::resolve(&conn, config, &targets.selection()).await?;
    let specs: Vec<&caas_core::spec::CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    fleet::check_shared_names(config, &fleet, &specs).map_err(anyhow::Error::msg)?;
    Ok((loaded, conn, fleet))
}

/// Read and plan at once (what `plan` and `diff` do): each target's plan goes to `each` as
/// soon as its databases are read. Sharding is checked first (a `--require-sharded` run
/// off a cluster prints nothing else). Returns how many targets there were, and sharding.
async fn stream_plans(
    config: &Config,
    connect: &ConnectOpts,
    targets: &TargetOpts,
    sharding: &ShardingOpts,
    each: &mut dyn FnMut(TargetPlan),
) -> Result<(usize, Sharding)> {
    let (loaded, conn, fleet) = open_fleet(config, connect, targets).await?;
    let specs: Vec<&caas_core::spec::CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    let sharded = super::sharding::check(&conn, config, &fleet, &specs, sharding).await?;
    let streamed =
        fleet::plan_streamed(&conn, config, &fleet, &specs, targets.concurrency, each).await?;
    warn_capacity(config, &specs, streamed.namespaces_after);
    Ok((streamed.targets, sharded))
}

pub async fn plan(
    config: &Config,
    connect: &ConnectOpts,
    targets: &TargetOpts,
    format: PlanFormat,
    prune: bool,
    sharding: &ShardingOpts,
) -> Result<Outcome> {
    let mut summary = PlanSummary::default();
    let mut first = true;
    match format {
        PlanFormat::Json => print!(
            "{{\n\"version\": {},\n\"command\": \"schema plan\",\n\"targets\": [",
            super::JSON_VERSION
        ),
        PlanFormat::Mongosh => print!("{}", caas_core::plan::MONGOSH_HEADER),
        PlanFormat::Table => {}
    }
    let mut failed = None;
    let mut print = |p: TargetPlan| match format {
        PlanFormat::Json => match serde_json::to_string_pretty(&p) {
            Ok(text) => {
                print!("{}\n{text}", if first { "" } else { "," });
                first = false;
            }
            Err(e) => failed = Some(e),
        },
        PlanFormat::Mongosh => print!("{}", caas_core::plan::mongosh_target(&p, prune)),
        PlanFormat::Table => summary.add(&p),
    };
    let (_, sharded) = stream_plans(config, connect, targets, sharding, &mut print).await?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    match format {
        PlanFormat::Json => match super::sharding::json(&sharded) {
            Some(v) => println!(
                "\n],\n\"sharding\": {}\n}}",
                serde_json::to_string_pretty(&v)?
            ),
            None => println!("\n]\n}}"),
        },
        PlanFormat::Mongosh => {
            if let Sharding::Cluster { changes, .. } = &sharded {
                print!("{}", caas_core::plan::mongosh_sharding(changes, prune));
            }
        }
        PlanFormat::Table => {
            summary.finish();
            super::sharding::print_table(&sharded, "would run");
        }
    }
    Ok(Outcome::Clean)
}

pub async fn diff(
    config: &Config,
    connect: &ConnectOpts,
    targets: &TargetOpts,
    json: bool,
    exit_code: bool,
    sharding: &ShardingOpts,
) -> Result<Outcome> {
    let (mut drift, mut drifting, mut rows) = (0usize, 0usize, Vec::new());
    let mut print = |p: TargetPlan| {
        if !p.changes.is_empty() {
            drifting += 1;
        }
        let mut table =
            crate::render::table(["namespace", "drift", "class"].map(String::from).to_vec());
        for c in &p.changes {
            drift += 1;
            if json {
                rows.push(serde_json::json!({
                    "target": p.target.to_string(), "database": c.database, "collection": c.collection,
                    "drift": c.summary(), "class": c.safety.as_str(), "undeclared": c.undeclared,
                }));
            } else {
                let class = if c.undeclared {
                    format!("{} (undeclared)", c.safety.as_str())
                } else {
                    c.safety.as_str().to_string()
                };
                let tone = super::style::class_tone(&class);
                table.add_row(vec![
                    super::style::cell(format!("{}.{}", c.database, c.collection), Tone::Plain),
                    super::style::cell(c.summary(), Tone::Plain),
                    super::style::cell(class, tone),
                ]);
            }
        }
        if !json && !p.changes.is_empty() {
            println!("target {}: {} difference(s)", p.target, p.changes.len());
            println!("{}", crate::render::fitted(table));
        }
    };
    let (total, sharded) = stream_plans(config, connect, targets, sharding, &mut print).await?;
    for c in super::sharding::drift_rows(&sharded) {
        drift += 1;
        rows.push(serde_json::json!({
            "target": "cluster", "database": c.namespace.split_once('.').map_or("", |(d, _)| d),
            "collection": c.namespace.split_once('.').map_or("", |(_, c)| c),
            "drift": c.summary(), "class": c.safety.as_str(), "undeclared": c.undeclared,
        }));
    }
    if !json {
        super::sharding::print_table(&sharded, "differ");
    }
    if json {
        let mut body =
            serde_json::json!({ "in_sync": drift == 0, "targets": total, "drift": rows });
        if let Some(v) = super::sharding::json(&sharded) {
            body["sharding"] = v;
        }
        super::print_json("schema diff", body)?;
    } else if drift == 0 {
        println!("in sync: {total} target(s) match the specs");
    } else {
        println!("drift: {drift} difference(s) in {drifting} of {total} target(s)");
    }
    Ok(if exit_code && drift > 0 {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

/// The table form of `schema plan`, printed one target at a time.
#[derive(Default)]
struct PlanSummary {
    /// Changes by class: safe, data-dependent, destructive, undeclared.
    counts: [usize; 4],
    changed: usize,
    targets: usize,
}

impl PlanSummary {
    fn add(&mut self, p: &TargetPlan) {
        self.targets += 1;
        if p.changes.is_empty() {
            return;
        }
        self.changed += 1;
        println!("target {}: {} change(s)", p.target, p.changes.len());
        let mut table =
            crate::render::table(vec!["namespace".into(), "change".into(), "class".into()]);
        for c in &p.changes {
            let class = if c.undeclared {
                format!("{} (undeclared, --prune)", c.safety.as_str())
            } else {
                c.safety.as_str().to_string()
            };
            self.counts[if c.undeclared { 3 } else { c.safety as usize }] += 1;
            let tone = super::style::class_tone(&class);
            table.add_row(vec![
                super::style::cell(format!("{}.{}", c.database, c.collection), Tone::Plain),
                super::style::cell(c.summary(), Tone::Plain),
                super::style::cell(class, tone),
            ]);
        }
        println!("{}\n", crate::render::fitted(table));
    }

    fn finish(self) {
        if self.changed == 0 {
            println!("no changes: {} target(s) match the specs", self.targets);
        } else {
            println!(
                "{} of {} target(s) would change: {} safe, {} data-dependent, {} destructive, {} undeclared",
                self.changed,
                self.targets,
                self.counts[Safety::Safe as usize],
                self.counts[Safety::DataDependent as usize],
                self.counts[Safety::Destructive as usize],
                self.counts[3]
            );
        }
    }
}

/// Flags of `schema apply`.
#[derive(Debug, Clone, Args)]
pub struct ApplyFlags {
    /// Run destructive changes (index rebuilds; with --prune, drops).
    #[arg(long)]
    pub allow_destructive: bool,
    /// Drop live indexes and collections that no spec declares (needs --allow-destructive).
    #[arg(long)]
    pub prune: bool,
    /// Tighten validators even when existing documents fail them.
    #[arg(long)]
    pub allow_invalid_docs: bool,
    /// Stop starting new targets after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Print the result as JSON (see docs/json-output.schema.json).
    #[arg(long)]
    pub json: bool,
}

pub async fn apply(
    config: &Config,
    connect: &ConnectOpts,
    targets: &TargetOpts,
    flags: &ApplyFlags,
    sharding: &ShardingOpts,
    guard: &super::guard::GuardArgs,
) -> Result<Outcome> {
    let (loaded, conn, fleet) = open_fleet(config, connect, targets).await?;
    let specs: Vec<&caas_core::spec::CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    let sharded = super::sharding::check(&conn, config, &fleet, &specs, sharding).await?;
    let cluster = matches!(sharded, Sharding::Cluster { .. });
    // On a cluster every target may sit on one primary: one primary's index-build budget.
    let concurrency = if cluster {
        caas_core::plan::shard::index_build_budget(targets.concurrency)
    } else {
        targets.concurrency
    };
    let prepared = fleet::apply::prepare(&conn, config, &fleet, &specs, concurrency).await?;
    warn_capacity(config, &specs, prepared.streamed.namespaces_after);
    let changed = prepared.changed();
    let shard_steps = super::sharding::drift_rows(&sharded).len();
    if changed == 0 && shard_steps > 0 {
        return apply_sharding(&conn, config, &fleet, &specs, flags, sharding).await;
    }
    if changed == 0 && !flags.json {
        println!(
            "no changes: {} target(s) match the specs",
            fleet.targets.len()
        );
        return Ok(Outcome::Clean);
    }
    let opts = ApplyOptions {
        allow_destructive: flags.allow_destructive,
        prune: flags.prune,
        allow_invalid_docs: flags.allow_invalid_docs,
        fail_fast: flags.fail_fast,
        concurrency,
    };
    let risky: Vec<String> = prepared
        .to_confirm(opts)
        .iter()
        .map(|(t, c)| format!("{t}: {}.{}: {}", c.database, c.collection, c.summary()))
        .collect();
    if !risky.is_empty() {
        let what = format!("{} destructive change(s) will run", risky.len());
        guard.confirm(config, &what, &risky)?;
    }
    let total = prepared.changed() as u64;
    let tty = std::io::stderr().is_terminal() && !flags.json && !super::quiet();
    let bar = if tty {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} targets {msg}")
                .expect("template")
                .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        b
    } else {
        ProgressBar::hidden()
    };
    let done = std::sync::atomic::AtomicU64::new(0);
    let on_done = |r: &TargetReport| {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if tty {
            bar.set_message(format!("{} {}", r.target, status_word(r)));
            bar.inc(1);
        } else if !flags.json && !super::quiet() {
            eprintln!("[{n}/{total}] {} {}", r.target, status_word(r));
        }
    };
    let reports =
        fleet::apply::apply(&conn, config, &fleet, &specs, prepared, opts, &on_done).await;
    bar.finish_and_clear();
    if flags.json {
        super::print_json(
            "schema apply",
            serde_json::json!({ "changed": changed, "targets": reports }),
        )?;
    } else {
        print_reports(&reports);
    }
    if caas_core::base::interrupt::requested()
        && !reports.iter().any(|r| r.status == Status::Failed)
    {
        let not_started = reports
            .iter()
            .filter(|r| r.status == Status::NotStarted)
            .count();
        eprintln!(
            "interrupted: {} target(s) applied, {not_started} not started",
            reports.len() - not_started
        );
        return Ok(Outcome::Interrupted);
    }
    let failed = reports
        .iter()
        .any(|r| matches!(r.status, Status::Failed | Status::NotStarted));
    let incomplete = reports.iter().any(|r| r.status == Status::Incomplete);
    if cluster && !failed {
        // The collections and indexes exist now: plan the cluster again, then shard.
        apply_sharding(&conn, config, &fleet, &specs, flags, sharding).await?;
    }
    if failed {
        anyhow::bail!(
            "{} target(s) failed; see the report above",
            reports
                .iter()
                .filter(|r| r.status == Status::Failed)
                .count()
        );
    }
    Ok(if incomplete {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

/// The cluster's sharding steps, planned from the current state and run in order.
async fn apply_sharding(
    conn: &Connection,
    config: &Config,
    fleet: &fleet::Fleet,
    specs: &[&caas_core::spec::CollectionSpec],
    flags: &ApplyFlags,
    sharding: &ShardingOpts,
) -> Result<Outcome> {
    let Sharding::Cluster { changes, .. } =
        super::sharding::check(conn, config, fleet, specs, sharding).await?
    else {
        return Ok(Outcome::Clean);
    };
    let applied =
        fleet::sharding::apply_cluster(conn, changes, flags.allow_destructive, flags.prune).await?;
    if super::sharding::print_applied(&applied) {
        anyhow::bail!("the cluster's sharding did not complete; see the lines above");
    }
    Ok(if applied.skipped.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Found
    })
}

fn status_word(r: &TargetReport) -> String {
    match r.status {
        Status::NoChanges => "no changes".into(),
        Status::Applied => format!("applied {} change(s)", r.applied.len()),
        Status::Incomplete => format!("applied {}, held back {}", r.applied.len(), r.skipped.len()),
        Status::Failed => "FAILED".into(),
        Status::NotStarted if caas_core::base::interrupt::requested() => {
            "not started (interrupted)".into()
        }
        Status::NotStarted => "not started (--fail-fast)".into(),
    }
}

fn print_reports(reports: &[TargetReport]) {
    let mut table = crate::render::table(vec!["target".into(), "outcome".into(), "detail".into()]);
    for r in reports {
        let detail = match (&r.error, r.skipped.is_empty()) {
            (Some(e), _) => e.clone(),
            (None, false) => r
                .skipped
                .iter()
                .map(|s| format!("{}: {} ({})", s.namespace, s.change, s.reason))
                .collect::<Vec<_>>()
                .join("\n"),
            (None, true) => String::new(),
        };
        let tone = match r.status {
            Status::Failed => Tone::Bad,
            Status::Incomplete | Status::NotStarted => Tone::Warn,
            Status::Applied => Tone::Good,
            Status::NoChanges => Tone::Plain,
        };
        table.add_row(vec![
            super::style::cell(r.target.to_string(), Tone::Plain),
            super::style::cell(status_word(r), tone),
            super::style::cell(detail, Tone::Plain),
        ]);
    }
    println!("{}", crate::render::fitted(table));
    let applied: usize = reports.iter().map(|r| r.applied.len()).sum();
    let failed = reports
        .iter()
        .filter(|r| r.status == Status::Failed)
        .count();
    println!(
        "{applied} change(s) applied on {} target(s); {failed} failed",
        reports.len()
    );
}
