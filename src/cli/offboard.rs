//! `caas tenant export|remove|import`: offboarding and restoring a tenant (engine in
//! `caas_core::lifecycle::{export, offboard, restore}`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::args::TierArg;
use super::guard::GuardArgs;
use super::Outcome;
use caas_core::config::Config;
use caas_core::connect::ConnectOpts;
use caas_core::lifecycle::export::{self, Manifest};
use caas_core::lifecycle::offboard::{self, Keep};
use caas_core::lifecycle::restore::{self, ImportOptions};
use caas_core::spec::CollectionSpec;

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    pub id: String,
    /// A new (or empty) folder for the export.
    #[arg(long)]
    pub out: PathBuf,
    /// Print the result as JSON (see docs/json-output.schema.json).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RemoveArgs {
    pub id: String,
    /// Export the tenant into this folder first (a rerun reuses a finished export).
    #[arg(long, conflicts_with = "no_export")]
    pub export: Option<PathBuf>,
    /// Delete without an export.
    #[arg(long)]
    pub no_export: bool,
    /// Seconds to wait for the tenant's lease.
    #[arg(long, default_value_t = 5)]
    pub lock_timeout: u64,
    /// Print the result as JSON (see docs/json-output.schema.json).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The export folder (`caas tenant export --out`).
    pub dir: PathBuf,
    /// Import under another tenant id.
    #[arg(long = "as")]
    pub as_id: Option<String>,
    /// Import into another tier than the exported one.
    #[arg(long)]
    pub tier: Option<TierArg>,
    /// Import into another region than the exported one (on a sharded cluster, the data
    /// is placed in the region's zone before any document is written).
    #[arg(long)]
    pub region: Option<String>,
    /// Keep the accepted documents when some are rejected (default: nothing is kept).
    #[arg(long)]
    pub allow_partial: bool,
    /// Seconds to wait for the tenant's lease.
    #[arg(long, default_value_t = 5)]
    pub lock_timeout: u64,
    /// Print the result as JSON (see docs/json-output.schema.json).
    #[arg(long)]
    pub json: bool,
}

/// A bar over one collection at a time, on a terminal only.
fn bar(json: bool) -> ProgressBar {
    if std::io::stderr().is_terminal() && !json && !super::quiet() {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} {per_sec}")
                .expect("template")
                .progress_chars("=> "),
        );
        b
    } else {
        ProgressBar::hidden()
    }
}

fn specs_of(config: &Config) -> Result<Vec<caas_core::spec::LoadedSpec>> {
    Ok(caas_core::project::load(config)?)
}

fn print_files(m: &Manifest) {
    for f in &m.files {
        println!(
            "  {}: {} document(s), {} (sha256 {})",
            f.collection,
            f.count,
            f.file,
            &f.sha256[..16]
        );
    }
}

pub async fn run_export(
    config: &Config,
    connect: &ConnectOpts,
    args: ExportArgs,
) -> Result<Outcome> {
    caas_core::tenancy::check_tenant_id(&args.id).map_err(anyhow::Error::msg)?;
    let loaded = specs_of(config)?;
    let specs: Vec<&CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    let conn = connect.connect(config).await?;
    let t = export::live_tenant(&conn, config, &args.id).await?;
    let b = bar(args.json);
    let progress = |c: &str, done: u64, total: u64| {
        b.set_message(c.to_owned());
        b.set_length(total);
        b.set_position(done);
    };
    let consistent = t.status == "suspended";
    let m = export::export(&conn, config, &specs, &t, &args.out, consistent, &progress).await?;
    b.finish_and_clear();
    if args.json {
        super::print_json("tenant export", serde_json::json!({ "export": m }))?;
        return Ok(Outcome::Clean);
    }
    let n: u64 = m.files.iter().map(|f| f.count).sum();
    println!(
        "exported tenant {} ({}, {}): {n} document(s) in {} file(s) to {}",
        m.tenant,
        m.tier,
        m.target,
        m.files.len(),
        args.out.display()
    );
    print_files(&m);
    if !consistent {
        println!("  the tenant was writable while it was read: each collection is as of its own moment (`caas tenant suspend` first for one moment)");
    }
    Ok(Outcome::Clean)
}

pub async fn run_remove(
    config: &Config,
    connect: &ConnectOpts,
    guard: &GuardArgs,
    args: RemoveArgs,
) -> Result<Outcome> {
    caas_core::tenancy::check_tenant_id(&args.id).map_err(anyhow::Error::msg)?;
    let keep = match (&args.export, args.no_export) {
        (Some(dir), _) => Keep::Export(dir),
        (None, true) => Keep::Nothing,
        (None, false) => bail!(
            "refused: removing tenant `{}` deletes its data; pass --export DIR to keep a copy first, or --no-export to delete without one",
            args.id
        ),
    };
    let loaded = specs_of(config)?;
    let specs: Vec<&CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    let conn = connect.connect(config).await?;
    let t = export::live_tenant(&conn, config, &args.id).await?;
    let (target, homes) = export::homes(config, &specs, &t.id, t.tier);
    let details: Vec<String> = homes
        .iter()
        .map(|(_, ns)| {
            if ns.shared {
                format!("delete tenant `{}`'s documents from {}", t.id, ns.label())
            } else {
                format!("drop {}", ns.label())
            }
        })
        .collect();
    guard.confirm(
        config,
        &format!(
            "remove tenant {} ({}, {target}) and mark it churned",
            t.id, t.tier
        ),
        &details,
    )?;
    let b = bar(args.json);
    let progress = |c: &str, done: u64, total: u64| {
        b.set_message(c.to_owned());
        b.set_length(total);
        b.set_position(done);
    };
    let lock_wait = Duration::from_secs(args.lock_timeout);
    let r = offboard::remove(&conn, config, &specs, &args.id, keep, lock_wait, &progress).await?;
    b.finish_and_clear();
    if args.json {
        super::print_json("tenant remove", serde_json::json!({ "removed": r }))?;
        return Ok(Outcome::Clean);
    }
    if let Some(m) = &r.export {
        let reused = if r.export_reused {
            " (the export an earlier run finished)"
        } else {
            ""
        };
        println!(
            "exported tenant {} to {}{reused}",
            r.tenant,
            args.export
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        );
        print_files(m);
    }
    println!(
        "removed tenant {} ({}): {} document(s) deleted from shared collections, {} dropped; the registry entry is kept as churned",
        r.tenant,
        r.target,
        r.deleted,
        if r.dropped.is_empty() { "nothing".to_owned() } else { r.dropped.join(", ") }
    );
    Ok(Outcome::Clean)
}

pub async fn run_import(
    config: &Config,
    connect: &ConnectOpts,
    args: ImportArgs,
) -> Result<Outcome> {
    if let Some(id) = &args.as_id {
        caas_core::tenancy::check_tenant_id(id).map_err(anyhow::Error::msg)?;
    }
    let (loaded, migrations) = super::migrate::load(config)?;
    let specs: Vec<&CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    let conn = connect.connect(config).await?;
    let opts = ImportOptions {
        as_id: args.as_id.clone(),
        tier: args.tier.map(Into::into),
        region: args.region.clone(),
        allow_partial: args.allow_partial,
    };
    let b = bar(args.json);
    let progress = |c: &str, done: u64, total: u64| {
        b.set_message(c.to_owned());
        b.set_length(total);
        b.set_position(done);
    };
    let lock_wait = Duration::from_secs(args.lock_timeout);
    let r = restore::import(
        &conn,
        config,
        &specs,
        &migrations,
        &args.dir,
        &opts,
        lock_wait,
        &progress,
    )
    .await?;
    b.finish_and_clear();
    let rejected: u64 = r.collections.iter().map(|c| c.rejected).sum();
    let unequal = r
        .collections
        .iter()
        .filter(|c| !c.digest_equal && c.rejected == 0)
        .count();
    if args.json {
        super::print_json("tenant import", serde_json::json!({ "import": r }))?;
    } else {
        for j in &r.rejects {
            println!(
                "{}:{}: rejected {} ({}): {}",
                args.dir.join(&j.file).display(),
                j.line,
                j.id.as_deref().unwrap_or("?"),
                j.collection,
                j.reason
            );
        }
        for c in &r.collections {
            println!(
                "  {} -> {}: {} of {} document(s){}, digest {}",
                c.collection,
                c.namespace,
                c.inserted,
                c.count,
                if c.rejected > 0 {
                    format!(", {} rejected", c.rejected)
                } else {
                    String::new()
                },
                if c.digest_equal {
                    "equal to the export's"
                } else {
                    "differs from the export's"
                }
            );
        }
        if r.written {
            println!(
                "imported tenant {} as {} ({}, {}); ledger versions {:?}",
                r.from_tenant, r.tenant, r.tier, r.target, r.ledger_versions
            );
        } else {
            println!(
                "nothing imported: {rejected} document(s) rejected by the current specs, so everything written was removed and the registry restored; fix the documents or the specs, or pass --allow-partial"
            );
        }
    }
    if !r.written || rejected > 0 || unequal > 0 {
        return Ok(Outcome::Found);
    }
    Ok(Outcome::Clean)
}
