//! Sharding across the fleet: what each target's collections should be on a cluster (keys
//! from the specs, zones from the tenants' regions), the cluster's plan, and its apply.
//! On a replica set the settings do not apply: the run says so once and goes on.

use anyhow::{Context, Result};

use super::Fleet;
use crate::compile::shard::{compile_shard, layout_of};
use crate::config::Config;
use crate::connect::Connection;
use crate::inspect::cluster::{self, ClusterState, Inconsistency};
use crate::plan::shard::{plan_sharding, DesiredShard, ShardChange};
use crate::plan::Safety;
use crate::spec::CollectionSpec;
use crate::tenancy::{Layout, TargetKind};

/// What sharding means for this run.
#[derive(Debug)]
pub enum Sharding {
    /// No spec shards a collection and no zone is configured: nothing to say.
    Unused,
    /// The server is not a mongos; `collections` specs carry shard settings and `zones`
    /// regions map to zones: ignored.
    NotACluster { collections: usize, zones: usize },
    /// A sharded cluster and its plan.
    Cluster {
        state: Box<ClusterState>,
        changes: Vec<ShardChange>,
    },
}

impl Sharding {
    /// The line a replica-set run prints once (not per target).
    pub fn not_applicable_note(&self) -> Option<String> {
        match self {
            Sharding::NotACluster { collections, zones } => {
                let mut what = Vec::new();
                if *collections > 0 {
                    what.push(format!(
                        "the shard settings of {collections} collection spec(s)"
                    ));
                }
                if *zones > 0 {
                    what.push(format!("the {zones} region(s) of [sharding.zones]"));
                }
                Some(format!(
                    "{} do not apply: the server is not a sharded cluster (hello.msg is not \"isdbgrid\"); ignored (--require-sharded makes this an error)",
                    what.join(" and ")
                ))
            }
            _ => None,
        }
    }
}

/// Specs that shard something.
pub fn sharded_specs(specs: &[&CollectionSpec]) -> usize {
    specs.iter().filter(|s| s.shard.is_some()).count()
}

/// Where sharding stands for the fleet: one `hello`, and on a mongos the config database
/// and one count per collection the plan may shard or move.
pub async fn plan_fleet(
    conn: &Connection,
    config: &Config,
    fleet: &Fleet,
    specs: &[&CollectionSpec],
) -> Result<Sharding> {
    let used = sharded_specs(specs);
    if !cluster::is_sharded_cluster(&conn.client).await? {
        if used == 0 && config.sharding.zones.is_empty() {
            return Ok(Sharding::Unused);
        }
        return Ok(Sharding::NotACluster {
            collections: used,
            zones: config.sharding.zones.len(),
        });
    }
    let state = cluster::read_cluster(&conn.client).await?;
    let mut desired = desired(config, fleet, specs);
    for d in &mut desired {
        d.has_data = conn
            .client
            .database(&d.database)
            .collection::<bson::Document>(&d.collection)
            .estimated_document_count()
            .await
            .with_context(|| format!("counting {}", d.namespace()))?
            > 0;
    }
    let changes = plan_sharding(&desired, &state);
    Ok(Sharding::Cluster {
        state: Box::new(state),
        changes,
    })
}

/// What every target's collections should be on a cluster (pure; `has_data` false).
pub fn desired(config: &Config, fleet: &Fleet, specs: &[&CollectionSpec]) -> Vec<DesiredShard> {
    let zone_of = |region: &Option<String>| {
        region
            .as_ref()
            .and_then(|r| config.sharding.zones.get(r))
            .cloned()
    };
    let shared_zones: Vec<(String, String)> = fleet
        .tenants
        .iter()
        .filter(|t| config.tiers.layout(t.tier) == Layout::Shared)
        .filter_map(|t| zone_of(&t.region).map(|z| (t.id.clone(), z)))
        .collect();
    let mut out = Vec::new();
    for target in &fleet.targets {
        let zone = target
            .tenant()
            .and_then(|id| fleet.tenants.iter().find(|t| t.id == id))
            .and_then(|t| zone_of(&t.region));
        for spec in specs.iter().filter(|s| target.holds(*s)) {
            let placement = target.place(*spec, &config.databases);
            let shard = compile_shard(spec, &placement, layout_of(&target.kind));
            if shard.is_none() && zone.is_none() {
                continue;
            }
            let tenant_zones = match (&target.kind, &shard) {
                (TargetKind::Shared, Some(s)) if s.per_tenant_ranges => shared_zones.clone(),
                _ => Vec::new(),
            };
            out.push(DesiredShard {
                database: placement.database,
                collection: placement.collection,
                shard,
                has_data: false,
                zone: zone.clone(),
                tenant_zones,
            });
        }
    }
    out
}

/// What became of the sharding steps of one apply, and the cluster's consistency after.
#[derive(Debug)]
pub struct ShardingApplied {
    pub done: Vec<ShardChange>,
    /// Steps not run: destructive ones without `--allow-destructive`, undeclared ones
    /// without `--prune`, and those that need a person.
    pub skipped: Vec<(ShardChange, String)>,
    pub failed: Option<(ShardChange, String)>,
    pub inconsistencies: Vec<Inconsistency>,
}

/// Run the cluster's sharding steps in order (after the collections and indexes exist),
/// stopping at the first failure, then `checkMetadataConsistency` with `checkIndexes`.
pub async fn apply_cluster(
    conn: &Connection,
    changes: Vec<ShardChange>,
    allow_destructive: bool,
    prune: bool,
) -> Result<ShardingApplied> {
    let admin = conn.client.database("admin");
    let mut out = ShardingApplied {
        done: Vec::new(),
        skipped: Vec::new(),
        failed: None,
        inconsistencies: Vec::new(),
    };
    for c in changes {
        let why = match c.command() {
            None => Some("needs an operator".to_string()),
            Some(_) if c.undeclared && !(prune && allow_destructive) => {
                Some("undeclared: only --prune --allow-destructive removes it".into())
            }
            Some(_) if c.safety == Safety::Destructive && !allow_destructive => {
                Some("destructive: rerun with --allow-destructive".into())
            }
            Some(_) => None,
        };
        if let Some(why) = why {
            out.skipped.push((c, why));
            continue;
        }
        let cmd = c.command().expect("checked");
        if let Err(e) = admin.run_command(cmd).await {
            out.failed = Some((c, crate::base::driver::describe(&e)));
            break;
        }
        out.done.push(c);
    }
    out.inconsistencies = cluster::check_consistency(&conn.client).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::registry::Tenant;
    use crate::tenancy::{Target, Tier};

    fn tenant(id: &str, tier: Tier, region: &str) -> Tenant {
        Tenant::for_test(id, tier, Some(region))
    }

    #[test]
    fn shared_tenants_get_their_regions_zone_and_per_tenant_targets_their_own() {
        let config = Config::parse(
            "[sharding.zones]\neu-central = \"EU\"\nus-east = \"US\"\n",
            std::path::Path::new("caas.toml"),
        )
        .unwrap();
        let doc = crate::base::yaml::parse("collection: users\ndomain: saas\nshard: {}\nfields:\n  email: { type: string, required: true }\n").unwrap();
        let spec: CollectionSpec = crate::base::files::decode(&doc).unwrap();
        let fleet = Fleet {
            tenants: vec![
                tenant("free1", Tier::Free, "eu-central"),
                tenant("start1", Tier::Starter, "ap-southeast"),
                tenant("bank", Tier::Enterprise, "us-east"),
            ],
            targets: vec![
                Target::shared(),
                Target::for_tenant("bank", Tier::Enterprise, Layout::Database),
            ],
            retired: vec![],
        };
        let got = desired(&config, &fleet, &[&spec]);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!(got[0].namespace(), "caas_shared.users");
        assert_eq!(
            got[0].tenant_zones,
            [("free1".to_string(), "EU".to_string())],
            "a region without a zone is left to the balancer"
        );
        assert_eq!(got[1].namespace(), "caas_bank.users");
        assert!(
            got[1].shard.is_none(),
            "an Enterprise database is placed, not sharded, by default"
        );
        assert_eq!(got[1].zone.as_deref(), Some("US"));
    }
}
