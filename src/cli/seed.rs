//! `caas seed`: demo data for every collection and tier.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::args::{self, TierArg};
use super::Outcome;
use caas_core::config::Config;
use caas_core::connect::ConnectOpts;
use caas_core::seed::fixtures::SeedFile;
use caas_core::seed::{self, SeedOptions};

/// The environment variable that marks a production environment (as `[connection] production`).

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Only this demo tenant (repeatable).
    #[arg(long = "tenant")]
    pub tenants: Vec<String>,
    /// Only demo tenants of this tier (repeatable).
    #[arg(long = "tier")]
    pub tiers: Vec<TierArg>,
    /// Multiply users, conversations and messages per tenant (load tests).
    #[arg(long, default_value_t = 1)]
    pub scale: u32,
    /// Same value, same data: ids, names and timestamps are derived from it.
    #[arg(long, default_value_t = 42)]
    pub seed_value: u64,
    /// Remove the demo data earlier runs created, and nothing else.
    #[arg(long)]
    pub reset: bool,
    /// Show which demo tenants and how many documents per collection a run would write;
    /// connect to nothing, write nothing.
    #[arg(long, conflicts_with = "reset")]
    pub dry_run: bool,
    /// Run even against an environment marked production.
    #[arg(long)]
    pub force: bool,
    /// Collections inserted into at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds to wait for another seed (they run one at a time) before giving up.
    #[arg(long, default_value_t = 60)]
    pub lock_timeout: u64,
    /// Lease length of the seed lock; a killed seed's lock frees after this.
    #[arg(long, default_value_t = 15)]
    pub lease_seconds: u64,
    /// Print the result as JSON (see docs/json-output.schema.json).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(
    config: &Config,
    connect: &ConnectOpts,
    guard: &super::guard::GuardArgs,
    args: SeedArgs,
) -> Result<Outcome> {
    if super::guard::is_production(config) && !args.force {
        bail!(
            "this environment is marked production ({}); seeding writes demo tenants and data. Rerun with --force if you really mean it",
            if config.connection.production { "`[connection] production = true` in caas.toml" } else { "CAAS_ENVIRONMENT=production" }
        );
    }
    if args.reset {
        guard.confirm(
            config,
            "seed --reset removes what earlier seed runs wrote",
            &[
                "their documents (those a migration has taken over since are kept)".into(),
                "every demo tenant: registry entry, Pro collection set, Enterprise database".into(),
            ],
        )?;
    }
    let loaded = caas_core::project::load(config)?;
    let specs: Vec<&caas_core::spec::CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    let file = SeedFile::load(&config.root).map_err(|f| {
        anyhow::anyhow!(
            "{} problem(s) in the seed file; nothing was written:\n{}",
            f.len(),
            f.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    if args.dry_run {
        return dry_run(config, &specs, &file, &args);
    }
    let conn = connect.connect(config).await?;
    // Seeds run one at a time: a lease in the platform database fences the registry
    // entries and the run manifest they write.
    let platform = conn.client.database(&config.databases.platform);
    let (lease, session) = caas_core::migrate::runner::lease_target(
        &conn.client,
        &platform,
        "seed",
        std::time::Duration::from_secs(args.lock_timeout),
        std::time::Duration::from_secs(args.lease_seconds.max(1)),
    )
    .await?;
    let result = seed_locked(
        config,
        &conn,
        &specs,
        &file,
        &args,
        lease.fence(),
        &mut *session.lock().await,
    )
    .await;
    let released = lease.release().await;
    let outcome = result?;
    released?;
    Ok(outcome)
}

/// Everything `seed` does once it holds the seed lease.
async fn seed_locked(
    config: &Config,
    conn: &caas_core::connect::Connection,
    specs: &[&caas_core::spec::CollectionSpec],
    file: &SeedFile,
    args: &SeedArgs,
    fence: &caas_core::migrate::lock::Fence,
    session: &mut mongodb::ClientSession,
) -> Result<Outcome> {
    if args.reset {
        let migrations = super::migrate::load_migrations(config, specs)?;
        let rows = seed::reset(
            &conn.client,
            config,
            specs,
            file,
            &migrations,
            fence,
            session,
        )
        .await?;
        let total: u64 = rows.iter().map(|r| r.inserted).sum();
        if args.json {
            super::print_json(
                "seed --reset",
                serde_json::json!({ "deleted": total, "collections": rows.iter().map(|r| serde_json::json!({ "namespace": r.namespace, "deleted": r.inserted, "kept": r.unchanged, "why_kept": r.errors })).collect::<Vec<_>>() }),
            )?;
        } else {
            for r in &rows {
                for why in &r.errors {
                    println!("{why}");
                }
            }
            println!("removed {total} seeded document(s) from {} collection(s), and the demo tenants' targets", rows.iter().filter(|r| r.inserted > 0).count());
        }
        return Ok(Outcome::Clean);
    }
    let opts = SeedOptions {
        seed_value: args.seed_value,
        scale: args.scale.max(1),
        tenants: args.tenants.clone(),
        tiers: args::tiers(&args.tiers),
        concurrency: args.concurrency,
    };
    let mut tenants = seed::selected(file, &opts)?;
    // A suspended tenant is read-only: seed leaves it alone and says so.
    let registered =
        caas_core::fleet::registry::list(&conn.client.database(&config.databases.platform), config)
            .await?;
    tenants.retain(|t| {
        let suspended = registered.iter().any(|r| r.id == t.id && r.status == "suspended");
        if suspended && !args.json && !super::quiet() {
            eprintln!("seed: skipping tenant {} (suspended, read-only); `caas tenant resume {}` to seed it", t.id, t.id);
        }
        !suspended
    });
    let added = seed::register(&conn.client, config, &tenants, fence, session).await?;
    seed::prepare_targets(conn, config, specs, &tenants, args.concurrency).await?;
    let rerun = seed::record_run(&conn.client, config, &opts, &tenants, fence, session).await?;
    let plan_ids = seed::plan_ids(&conn.client, config, specs).await?;
    let batches = seed::batches(config, specs, file, &tenants, &opts, &plan_ids, true)?;
    let total: u64 = batches.iter().map(|b| b.docs.len() as u64).sum();
    let bar = if std::io::stderr().is_terminal() && !args.json && !super::quiet() {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} documents {per_sec}")
                .expect("template")
                .progress_chars("=> "),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let done = AtomicU64::new(0);
    let rows = seed::insert(&conn.client, batches, args.concurrency, rerun, &|n| {
        bar.inc(n);
        done.fetch_add(n, Ordering::Relaxed);
    })
    .await;
    bar.finish_and_clear();
    let (inserted, unchanged, failed) = rows.iter().fold((0, 0, 0), |(a, b, c), r| {
        (a + r.inserted, b + r.unchanged, c + r.failed)
    });
    if args.json {
        super::print_json(
            "seed",
            serde_json::json!({ "tenants_registered": added, "inserted": inserted, "unchanged": unchanged, "failed": failed, "collections": rows }),
        )?;
    } else {
        let mut table = crate::render::table(
            ["target", "collection", "inserted", "unchanged", "failed"]
                .map(String::from)
                .to_vec(),
        );
        for r in &rows {
            table.add_row(vec![
                r.target.clone(),
                r.namespace.clone(),
                r.inserted.to_string(),
                r.unchanged.to_string(),
                r.failed.to_string(),
            ]);
        }
        println!("{}", crate::render::fitted(table));
        for r in rows.iter().filter(|r| !r.errors.is_empty()) {
            for e in &r.errors {
                println!("rejected: {e}");
            }
        }
        println!("{inserted} inserted, {unchanged} unchanged, {failed} rejected; {added} demo tenant(s) registered (seed value {}, scale {})", opts.seed_value, opts.scale);
    }
    if failed > 0 {
        bail!("{failed} document(s) were rejected by the validators; see `rejected:` above");
    }
    Ok(Outcome::Clean)
}

/// `seed --dry-run`: the same tenants and documents a run would write (ids and contents are
/// derived from the seed value, so this is exact), counted per collection; nothing is read
/// from or written to a server.
fn dry_run(
    config: &Config,
    specs: &[&caas_core::spec::CollectionSpec],
    file: &SeedFile,
    args: &SeedArgs,
) -> Result<Outcome> {
    let opts = SeedOptions {
        seed_value: args.seed_value,
        scale: args.scale.max(1),
        tenants: args.tenants.clone(),
        tiers: args::tiers(&args.tiers),
        concurrency: args.concurrency,
    };
    let tenants = seed::selected(file, &opts)?;
    let batches = seed::batches(
        config,
        specs,
        file,
        &tenants,
        &opts,
        &Default::default(),
        false,
    )?;
    let rows: Vec<serde_json::Value> = batches
        .iter()
        .map(|b| {
            serde_json::json!({
                "target": b.target.to_string(),
                "namespace": format!("{}.{}", b.placement.database, b.placement.collection),
                "documents": b.docs.len(),
            })
        })
        .collect();
    let total: usize = batches.iter().map(|b| b.docs.len()).sum();
    let ids: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
    if args.json {
        return super::print_json(
            "seed --dry-run",
            serde_json::json!({ "tenants": ids, "documents": total, "collections": rows }),
        )
        .map(|()| Outcome::Clean);
    }
    println!(
        "dry run: would register {} demo tenant(s) ({}) and insert {total} document(s) into {} collection(s); nothing was written",
        ids.len(),
        ids.join(", "),
        rows.len()
    );
    Ok(Outcome::Clean)
}
