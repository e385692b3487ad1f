//! Sharding across the fleet: what each target's collections should be on a cluster (keys
//! from the specs, zones from the tenants' regions), the cluster's plan, and its apply.
//! On a replica set the settings do not apply: the run says so once and goes on.

use anyhow::{Context, Result};

use super::Fleet;
use crate::compile::shard::{compile_shard, layout_of};
use crate::config::Config;
use crate::connect::Connection;
use crate::fleet::registry::Tenant;
use crate::inspect::cluster::{self, ClusterState, Inconsistency};
use crate::plan::shard::{
    key_steps, placement_steps, plan_sharding, zone_steps, DesiredShard, ShardChange, ShardStep,
};
use crate::plan::Safety;
use crate::spec::CollectionSpec;
use crate::tenancy::{Layout, Target, TargetKind};

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

/// The steps that put one tenant where its tier and region say (pure; `has_data` tells
/// which namespaces hold documents). On its own target (a Pro set, an Enterprise
/// database): the zone ranges and placement of its collections, and their shard keys too
/// when `creating` it (empty, before a move's copy; a key change of a live target is
/// `schema apply`'s). On the shared target: only the tenant's own zone range of each
/// collection sharded per tenant; the shared keys and other tenants' ranges are `schema
/// apply`'s. A range the tenant's region (or tier) no longer wants is removed: it bounds
/// this tenant's documents alone, so it is the tenant's, not undeclared. A tenant with no
/// region (or one without a zone) gets its old pins removed and nothing new: the balancer
/// places it. Steps that need a person come out as `NeedsOperator`.
pub fn tenant_steps(
    config: &Config,
    specs: &[&CollectionSpec],
    tenant: &Tenant,
    cluster: &ClusterState,
    has_data: &dyn Fn(&str) -> bool,
    creating: bool,
) -> Vec<ShardChange> {
    let target = Target::for_tenant(&tenant.id, tenant.tier, config.tiers.layout(tenant.tier));
    let shared = target.kind == TargetKind::Shared;
    let fleet = Fleet {
        tenants: vec![tenant.clone()],
        targets: vec![target],
        retired: vec![],
    };
    let mut want = desired(config, &fleet, specs);
    for d in &mut want {
        d.has_data = has_data(&d.namespace());
    }
    let mut out = if creating && !shared {
        key_steps(&want, cluster)
    } else {
        Vec::new()
    };
    for mut c in zone_steps(&want, cluster) {
        let own = match &c.step {
            ShardStep::ZoneRange { min, max, .. } | ShardStep::RemoveZoneRange { min, max, .. } => {
                !shared || bounds_tenant(min, max, &tenant.id)
            }
            _ => true,
        };
        if own {
            c.undeclared = false;
            out.push(c);
        }
    }
    out.extend(placement_steps(&want, cluster));
    out
}

/// On a cluster, the steps that place `tenant` (see [`tenant_steps`]) as the cluster stands
/// now; refused whole, before any of them runs, when one needs a person (a zone without a
/// shard, a cluster before 8.0, a hand-made range): where a tenant's data lives is a
/// promise, not a preference. `None` on a replica set (one `hello`).
pub async fn plan_tenant(
    conn: &Connection,
    config: &Config,
    specs: &[&CollectionSpec],
    tenant: &Tenant,
    creating: bool,
) -> Result<Option<Vec<ShardChange>>> {
    if !cluster::is_sharded_cluster(&conn.client).await? {
        return Ok(None);
    }
    let state = cluster::read_cluster(&conn.client).await?;
    // A target being created is empty; a live tenant's data is taken to be there.
    let steps = tenant_steps(config, specs, tenant, &state, &|_| !creating, creating);
    let blocked: Vec<String> = steps
        .iter()
        .filter(|s| s.commands().is_empty())
        .map(|s| format!("  {}: {}", s.namespace, s.summary()))
        .collect();
    if !blocked.is_empty() {
        anyhow::bail!(
            "tenant `{}` cannot be placed in the zone of region `{}`; nothing was written for it:\n{}",
            tenant.id,
            tenant.region.as_deref().unwrap_or("-"),
            blocked.join("\n")
        );
    }
    Ok(Some(steps))
}

/// Whether a zone range covers one tenant's documents only: both bounds carry its id.
fn bounds_tenant(min: &bson::Document, max: &bson::Document, tenant: &str) -> bool {
    min.get_str("tenant_id") == Ok(tenant) && max.get_str("tenant_id") == Ok(tenant)
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
        let commands = c.commands();
        let why = if commands.is_empty() {
            Some("needs an operator".to_string())
        } else if c.undeclared && !(prune && allow_destructive) {
            Some("undeclared: only --prune --allow-destructive removes it".into())
        } else if c.safety == Safety::Destructive && !allow_destructive {
            Some("destructive: rerun with --allow-destructive".into())
        } else {
            None
        };
        if let Some(why) = why {
            out.skipped.push((c, why));
            continue;
        }
        let mut failed = None;
        for cmd in commands {
            if let Err(e) = admin.run_command(cmd).await {
                failed = Some(crate::base::driver::describe(&e));
                break;
            }
        }
        if let Some(e) = failed {
            out.failed = Some((c, e));
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
    use crate::tenancy::Tier;

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

    /// A two-zone cluster as its config database holds it (MongoDB manual, "Config
    /// Database": `config.shards` `{_id, host, state, tags}`, `config.collections` `{_id,
    /// uuid, key, unique}`, `config.tags` `{ns, min, max, tag}`, `config.databases` `{_id,
    /// primary}`), with `caas_shared.users` sharded and two tenants' ranges on it.
    fn cluster(tags: Vec<bson::Document>) -> ClusterState {
        use bson::doc;
        let docs = cluster::ConfigDocs {
            shards: vec![
                doc! { "_id": "shard-eu", "host": "eu/eu1:27018", "state": 1, "tags": ["EU"] },
                doc! { "_id": "shard-us", "host": "us/us1:27018", "state": 1, "tags": ["US"] },
            ],
            collections: vec![
                doc! { "_id": "caas_shared.users", "uuid": bson::Binary::from_uuid(bson::Uuid::new()), "key": { "tenant_id": 1, "_id": 1 }, "unique": false },
            ],
            tags,
            databases: vec![
                doc! { "_id": "caas_shared", "primary": "shard-us" },
                doc! { "_id": "caas_bank", "primary": "shard-us" },
            ],
            chunks: Vec::new(),
        };
        ClusterState::from_config(&docs, 8).expect("config documents parse")
    }

    fn range(ns: &str, min_tenant: &str, max_tenant: &str, zone: &str) -> bson::Document {
        bson::doc! { "_id": bson::oid::ObjectId::new(), "ns": ns, "min": { "tenant_id": min_tenant, "_id": bson::Bson::MinKey }, "max": { "tenant_id": max_tenant, "_id": bson::Bson::MaxKey }, "tag": zone }
    }

    fn zones() -> Config {
        Config::parse(
            "[sharding.zones]\neu-central = \"EU\"\nus-east = \"US\"\n",
            std::path::Path::new("caas.toml"),
        )
        .unwrap()
    }

    fn spec(text: &str) -> CollectionSpec {
        let doc = crate::base::yaml::parse(text).unwrap();
        crate::base::files::decode(&doc).unwrap()
    }

    fn users() -> CollectionSpec {
        spec("collection: users\ndomain: saas\nshard: {}\nfields:\n  email: { type: string, required: true }\n")
    }

    fn steps(
        t: &Tenant,
        specs: &[&CollectionSpec],
        c: &ClusterState,
        data: bool,
        creating: bool,
    ) -> Vec<String> {
        tenant_steps(&zones(), specs, t, c, &|_| data, creating)
            .iter()
            .map(|c| format!("{} {} {}", c.namespace, c.safety.as_str(), c.summary()))
            .collect()
    }

    #[test]
    fn a_shared_tenant_gets_its_own_range_and_nothing_of_its_neighbours() {
        let users = users();
        // `acme2` pinned to US, and a hand-made range that starts at acme but ends in
        // another tenant's keys: neither is acme's to change.
        let c = cluster(vec![
            range("caas_shared.users", "acme2", "acme2", "US"),
            range("caas_shared.users", "acme", "zed", "US"),
        ]);
        let acme = tenant("acme", Tier::Free, "eu-central");
        let got = steps(&acme, &[&users], &c, true, true);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains("needs an operator") && got[0].contains("other tenants'"),
            "a range wider than acme's is not re-zoned; acme2's is untouched: {got:?}"
        );
        let c = cluster(vec![range("caas_shared.users", "acme2", "acme2", "US")]);
        assert_eq!(
            steps(&acme, &[&users], &c, true, false),
            [
                r#"caas_shared.users data-dependent zone range {"tenant_id":"acme","_id":{"$minKey":1}} in EU"#
            ],
            "no shard key step on the shared collections: they are schema apply's"
        );
    }

    #[test]
    fn a_region_change_re_pins_a_shared_range_and_moves_a_pro_set() {
        let users = users();
        let c = cluster(vec![range("caas_shared.users", "acme", "acme", "EU")]);
        let moved = tenant("acme", Tier::Starter, "us-east");
        assert_eq!(
            steps(&moved, &[&users], &c, true, false),
            [
                r#"caas_shared.users data-dependent zone range {"tenant_id":"acme","_id":{"$minKey":1}} moves EU -> US"#
            ]
        );
        // The same range, the tenant now without a zone: its pin goes (the range is its own).
        let unzoned = tenant("acme", Tier::Starter, "ap-southeast");
        let got = tenant_steps(&zones(), &[&users], &unzoned, &c, &|_| true, false);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(matches!(got[0].step, ShardStep::RemoveZoneRange { .. }));
        assert!(
            !got[0].undeclared,
            "the tenant's own range: removed without --prune"
        );

        // A Pro set (unsharded: `users` shards in the shared layout only) goes whole to a
        // shard of its new zone; 8.0's moveCollection copies it online.
        let pro = tenant("acme", Tier::Pro, "eu-central");
        assert_eq!(
            steps(&pro, &[&users], &c, true, false),
            ["caas_shared.acme_users data-dependent move to shard shard-eu (zone EU)"]
        );
    }

    #[test]
    fn a_new_target_is_sharded_and_placed_before_the_copy() {
        let sets = spec("collection: events\ndomain: saas\nshard: { layouts: [collection_set, database] }\nfields:\n  kind: { type: string, required: true }\n");
        let c = cluster(vec![]);
        let bank = tenant("bank", Tier::Enterprise, "eu-central");
        assert_eq!(
            steps(&bank, &[&sets], &c, false, true),
            [
                r#"caas_bank.events safe shard on {"_id":1}"#,
                r#"caas_bank.events safe zone range {"_id":{"$minKey":1}} in EU"#,
            ]
        );
        assert_eq!(
            steps(&bank, &[&sets], &c, false, false),
            [r#"caas_bank.events safe zone range {"_id":{"$minKey":1}} in EU"#],
            "a live target's key is not the move's to change"
        );
        // A region whose zone has no shard: a person must add one first.
        let config = Config::parse(
            "[sharding.zones]\nap-southeast = \"AP\"\n",
            std::path::Path::new("caas.toml"),
        )
        .unwrap();
        let ap = tenant("bank", Tier::Enterprise, "ap-southeast");
        let got = tenant_steps(&config, &[&users()], &ap, &c, &|_| false, true);
        assert!(
            got.iter().all(|c| c.commands().is_empty()) && !got.is_empty(),
            "{got:#?}"
        );
    }

    #[test]
    fn leaving_a_side_releases_only_the_tenants_ranges() {
        let users = users();
        let c = cluster(vec![
            range("caas_shared.users", "acme", "acme", "EU"),
            range("caas_shared.users", "beta", "beta", "EU"),
        ]);
        let leaving = Tenant::for_test("acme", Tier::Free, None);
        let got = tenant_steps(&zones(), &[&users], &leaving, &c, &|_| true, false);
        assert_eq!(got.len(), 1, "{got:#?}");
        let cmd = got[0].commands().pop().unwrap();
        assert_eq!(
            cmd.get_document("min").unwrap().get_str("tenant_id"),
            Ok("acme")
        );
        assert_eq!(
            cmd.get("zone"),
            Some(&bson::Bson::Null),
            "updateZoneKeyRange with zone null removes it"
        );
    }
}
