//! `caas tenant move|moves|suspend|resume`: the tenant lifecycle (engine in
//! `caas_core::lifecycle`).

use anyhow::Result;
use clap::Args;

use super::args::TierArg;
use super::Outcome;
use caas_core::config::Config;
use caas_core::connect::ConnectOpts;
use caas_core::lifecycle::{self, Command, MoveOptions, Mover, Phase};

#[derive(Debug, Clone, Args)]
pub struct MoveArgs {
    /// The tenant to move.
    #[arg(required_unless_present = "finish_due")]
    pub id: Option<String>,
    /// The tier to move it to (any direction). Rerunning the same command continues an
    /// interrupted move.
    #[arg(long, required_unless_present_any = ["finish", "abort", "finish_due", "region"])]
    pub to: Option<TierArg>,
    /// The region to take the tenant to (a registry `region`, mapped to a zone by
    /// [sharding.zones]). Alone: the tenant's data moves into that region's zone where it
    /// is. With --to: the new target is placed there. On a replica set only the registry
    /// changes.
    #[arg(long, conflicts_with_all = ["abort", "finish_due"])]
    pub region: Option<String>,
    /// Fail (exit 2) unless the server is a sharded cluster (a mongos).
    #[arg(long)]
    pub require_sharded: bool,
    /// Remove the kept source of a flipped move now (with --to: at once, when the move
    /// flips), instead of after `lifecycle.keep_source_hours`.
    #[arg(long)]
    pub finish: bool,
    /// Undo a move that has not flipped yet: drop the copy, lift the fence.
    #[arg(long, conflicts_with_all = ["to", "finish"])]
    pub abort: bool,
    /// Remove the kept source of every flipped move whose grace period is over
    /// (`lifecycle.keep_source_hours`): for a scheduled job.
    #[arg(long, conflicts_with_all = ["id", "to", "finish", "abort"])]
    pub finish_due: bool,
    /// Documents per copied batch (each batch commits with its checkpoint).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Seconds to wait for the tenant's lease (and, at the cutover, the targets' migration leases).
    #[arg(long, default_value_t = 5)]
    pub lock_timeout: u64,
    /// Seconds a lease lasts without renewal.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lease_seconds: u64,
    /// Milliseconds between reads of the change stream during the copy (0: after every
    /// batch): to rehearse changes captured mid-copy.
    #[arg(long, default_value_t = 2000, hide = true)]
    pub read_changes_every: u64,
    /// Stop after this phase as if interrupted (copy, catchup): to rehearse resumption.
    #[arg(long, value_parser = ["copy", "catchup"], hide = true)]
    pub stop_after: Option<String>,
    /// Print the result as JSON (see docs/json-output.schema.json).
    #[arg(long)]
    pub json: bool,
}

pub async fn run_move(config: &Config, connect: &ConnectOpts, args: MoveArgs) -> Result<Outcome> {
    if let Some(id) = &args.id {
        caas_core::tenancy::check_tenant_id(id).map_err(anyhow::Error::msg)?;
    }
    if let Some(r) = &args.region {
        caas_core::tenancy::check_region(r).map_err(anyhow::Error::msg)?;
    }
    let (loaded, migrations) = super::migrate::load(config)?;
    let specs: Vec<&caas_core::spec::CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    let conn = connect.connect(config).await?;
    if args.require_sharded
        && !caas_core::inspect::cluster::is_sharded_cluster(&conn.client).await?
    {
        anyhow::bail!(
            "--require-sharded: the server is not a sharded cluster (hello.msg is not \"isdbgrid\"); nothing was written\n  fix: connect to a mongos, or drop --require-sharded"
        );
    }
    let cmd = match (args.to, args.abort, args.region.clone()) {
        (_, true, _) => Command::Abort,
        (Some(t), _, region) => Command::To {
            tier: t.into(),
            finish: args.finish,
            region,
        },
        (None, _, Some(_)) if args.finish => anyhow::bail!(
            "--region with --finish: --finish ends a move, --region starts one; run them one after the other"
        ),
        (None, _, Some(region)) => Command::Region(region),
        (None, _, None) => Command::Finish,
    };
    let quiet = args.json || super::quiet();
    let progress = |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let mover = Mover {
        conn: &conn,
        config,
        specs: &specs,
        migrations: &migrations,
        opts: MoveOptions {
            batch: args.batch as usize,
            lock_wait: std::time::Duration::from_secs(args.lock_timeout),
            lease: std::time::Duration::from_secs(args.lease_seconds),
            read_every: std::time::Duration::from_millis(args.read_changes_every),
            stop_after: args.stop_after.as_deref().map(|p| {
                if p == "copy" {
                    Phase::Copy
                } else {
                    Phase::Catchup
                }
            }),
            ..Default::default()
        },
        progress: &progress,
    };
    let Some(id) = &args.id else {
        return finish_due(&mover, args.json).await;
    };
    let report = mover.run(id, cmd).await?;
    if args.json {
        super::print_json("tenant move", serde_json::json!({ "move": report }))?;
        return Ok(Outcome::Clean);
    }
    println!(
        "tenant {}: {} -> {}, phase {}",
        report.tenant,
        report.from,
        report.to,
        serde_json::to_value(report.phase)?.as_str().unwrap_or("?")
    );
    if report.copied > 0 || report.changes_applied > 0 {
        println!(
            "  {} document(s) copied, {} change(s) applied, lag at the flip {} ms",
            report.copied, report.changes_applied, report.lag_ms
        );
    }
    for v in &report.verified {
        println!(
            "  verified {}: {} document(s), sha256 {}",
            v.collection,
            v.count,
            &v.digest[..16]
        );
    }
    if let Some(r) = &report.region {
        println!("  region: {r}");
    }
    if let Some(ms) = report.fence_ms.filter(|_| report.phase >= Phase::Flipped) {
        println!("  the tenant's writes were refused for {ms} ms");
    }
    for n in &report.notes {
        println!("  {n}");
    }
    Ok(Outcome::Clean)
}

/// `tenant move --finish-due`: every kept source past its grace period removed; exit 2 if
/// one could not be.
async fn finish_due(mover: &Mover<'_>, json: bool) -> Result<Outcome> {
    let done = mover.finish_due().await?;
    let failed = done.iter().filter(|(_, r)| r.is_err()).count();
    if json {
        let items: Vec<serde_json::Value> = done
            .iter()
            .map(|(tenant, r)| match r {
                Ok(report) => serde_json::json!({ "tenant": tenant, "move": report }),
                Err(e) => serde_json::json!({ "tenant": tenant, "error": format!("{e:#}") }),
            })
            .collect();
        super::print_json(
            "tenant move --finish-due",
            serde_json::json!({ "finished": items }),
        )?;
    } else {
        for (tenant, r) in &done {
            match r {
                Ok(report) => println!(
                    "tenant {tenant}: the kept source of its move {} -> {} is removed{}",
                    report.from,
                    report.to,
                    report
                        .notes
                        .iter()
                        .map(|n| format!("; {n}"))
                        .collect::<String>()
                ),
                Err(e) => println!("tenant {tenant}: not finished: {e:#}"),
            }
        }
        println!(
            "{} kept source(s) past lifecycle.keep_source_hours removed, {failed} failed",
            done.len() - failed
        );
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} move(s) could not be finished; rerun `caas tenant move --finish-due`"
        );
    }
    Ok(Outcome::Clean)
}

pub async fn run_moves(config: &Config, connect: &ConnectOpts, json: bool) -> Result<Outcome> {
    let conn = connect.connect(config).await?;
    let platform = conn.client.database(&config.databases.platform);
    let open = lifecycle::state::open(&platform).await?;
    let keep =
        std::time::Duration::from_secs(config.lifecycle.keep_source_hours.saturating_mul(3600));
    let until = |m: &lifecycle::state::MoveState| {
        lifecycle::state::source_due_at(m, keep).and_then(|t| t.try_to_rfc3339_string().ok())
    };
    if json {
        let moves: Vec<serde_json::Value> = open
            .iter()
            .map(|m| {
                serde_json::json!({
                    "tenant": m.tenant, "from": m.from_tier, "to": m.to_tier,
                    "from_target": m.from_target, "to_target": m.to_target, "phase": m.phase,
                    "copied": m.progress.iter().map(|p| p.copied).sum::<u64>(),
                    "changes_applied": m.changes_applied, "lag_ms": m.lag_ms,
                    "source_kept_until": until(m),
                })
            })
            .collect();
        super::print_json("tenant moves", serde_json::json!({ "moves": moves }))?;
        return Ok(Outcome::Clean);
    }
    for m in &open {
        let kept = until(m)
            .map(|t| format!("; old location kept until {t}"))
            .unwrap_or_default();
        println!("{}: {}{kept}", m.tenant, lifecycle::state::describe(m));
    }
    println!("{} move(s) in progress", open.len());
    Ok(Outcome::Clean)
}

pub async fn run_suspend(
    config: &Config,
    connect: &ConnectOpts,
    id: &str,
    suspend: bool,
    json: bool,
) -> Result<Outcome> {
    caas_core::tenancy::check_tenant_id(id).map_err(anyhow::Error::msg)?;
    let loaded = caas_core::project::load(config)?;
    let specs: Vec<&caas_core::spec::CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    let conn = connect.connect(config).await?;
    let changed = lifecycle::suspend::set_suspended(&conn, config, &specs, id, suspend).await?;
    let status = if suspend { "suspended" } else { "active" };
    if json {
        let name = if suspend {
            "tenant suspend"
        } else {
            "tenant resume"
        };
        super::print_json(
            name,
            serde_json::json!({ "tenant": id, "status": status, "changed": changed }),
        )?;
    } else if changed {
        println!(
            "tenant {id} is {status}{}",
            if suspend {
                ": its documents are read-only (the server refuses inserts and updates)"
            } else {
                ""
            }
        );
    } else {
        println!("tenant {id} was already {status}; nothing changed");
    }
    Ok(Outcome::Clean)
}
