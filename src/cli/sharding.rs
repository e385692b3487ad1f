//! Sharding in `schema plan|diff|apply`: the once-per-run note on a replica set,
//! `--require-sharded`, and the cluster's steps rendered beside the targets' changes.

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use super::style::Tone;
use caas_core::config::Config;
use caas_core::connect::Connection;
use caas_core::fleet::sharding::{self, Sharding, ShardingApplied};
use caas_core::fleet::Fleet;
use caas_core::plan::shard::ShardChange;
use caas_core::spec::CollectionSpec;

#[derive(Debug, Clone, Args)]
pub struct ShardingOpts {
    /// Fail (exit 2) unless the server is a sharded cluster (a mongos).
    #[arg(long)]
    pub require_sharded: bool,
}

/// Where sharding stands; on a replica set, the note (once) or, with `--require-sharded`,
/// the error.
pub async fn check(
    conn: &Connection,
    config: &Config,
    fleet: &Fleet,
    specs: &[&CollectionSpec],
    opts: &ShardingOpts,
) -> Result<Sharding> {
    let s = sharding::plan_fleet(conn, config, fleet, specs).await?;
    if opts.require_sharded && !matches!(s, Sharding::Cluster { .. }) {
        anyhow::bail!(
            "--require-sharded: the server is not a sharded cluster (hello.msg is not \"isdbgrid\")\n  fix: connect to a mongos, or drop --require-sharded"
        );
    }
    if let Some(note) = s.not_applicable_note() {
        if !super::quiet() {
            eprintln!("note: {note}");
        }
    }
    Ok(s)
}

/// The cluster's steps, for JSON output; `None` when sharding is unused.
pub fn json(s: &Sharding) -> Option<Value> {
    match s {
        Sharding::Unused => None,
        Sharding::NotACluster { collections, zones } => {
            Some(json!({ "cluster": false, "collections": collections, "zones": zones }))
        }
        Sharding::Cluster { state, changes } => Some(json!({
            "cluster": true, "shards": state.shards.len(), "changes": changes,
        })),
    }
}

/// The cluster's steps as diff rows.
pub fn drift_rows(s: &Sharding) -> Vec<&ShardChange> {
    match s {
        Sharding::Cluster { changes, .. } => changes.iter().collect(),
        _ => Vec::new(),
    }
}

/// The table of the cluster's steps (nothing off a cluster).
pub fn print_table(s: &Sharding, verb: &str) {
    let Sharding::Cluster { state, changes } = s else {
        return;
    };
    if changes.is_empty() {
        println!(
            "sharding: in sync ({} shard(s), {} sharded collection(s))",
            state.shards.len(),
            state.collections.len()
        );
        return;
    }
    println!(
        "sharding ({} shard(s)): {} step(s) {verb}",
        state.shards.len(),
        changes.len()
    );
    let mut table = crate::render::table(
        ["namespace", "step", "class", "cost"]
            .map(String::from)
            .to_vec(),
    );
    for c in changes {
        let class = if c.undeclared {
            format!("{} (undeclared, --prune)", c.safety.as_str())
        } else {
            c.safety.as_str().to_string()
        };
        let tone = super::style::class_tone(&class);
        table.add_row(vec![
            super::style::cell(c.namespace.clone(), Tone::Plain),
            super::style::cell(c.summary(), Tone::Plain),
            super::style::cell(class, tone),
            super::style::cell(c.cost.unwrap_or("").to_string(), Tone::Plain),
        ]);
    }
    println!("{}\n", crate::render::fitted(table));
}

/// What an apply did on the cluster; whether anything failed or is inconsistent.
pub fn print_applied(a: &ShardingApplied) -> bool {
    for c in &a.done {
        println!("sharding: {}: {}", c.namespace, c.summary());
    }
    for (c, why) in &a.skipped {
        println!("sharding: {}: {} not run ({why})", c.namespace, c.summary());
    }
    if let Some((c, e)) = &a.failed {
        println!("sharding: {}: {} failed: {e}", c.namespace, c.summary());
    }
    for i in &a.inconsistencies {
        println!(
            "drift: {} on {}{}: {}",
            i.kind,
            i.namespace.as_deref().unwrap_or("the cluster"),
            if i.shards.is_empty() {
                String::new()
            } else {
                format!(" (shards {})", i.shards.join(", "))
            },
            i.description
        );
    }
    a.failed.is_some() || !a.inconsistencies.is_empty()
}
