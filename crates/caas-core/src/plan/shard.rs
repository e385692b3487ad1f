//! The sharding plan of a cluster: shard keys, zone ranges per tenant and placement by
//! region, diffed against what the config database says ([`ClusterState`]). Pure; each
//! step is the admin command `apply` runs and `plan --format mongosh` shows, classed as
//! the rest of the plan is, with what it costs where MongoDB documents a cost.

use bson::{doc, Document};
use serde::Serialize;

use super::Safety;
use crate::compile::shard::{tenant_range, CompiledShard};
use crate::inspect::cluster::{ClusterState, ZoneRange};

/// MongoDB runs at most this many user index builds at once per primary by default
/// (`maxNumActiveUserIndexBuilds`); builds past it queue on the shard.
pub const MAX_ACTIVE_USER_INDEX_BUILDS: usize = 3;

/// How many index builds `apply` may have in flight on a cluster: every target may sit on
/// one primary, so the cluster gets one primary's budget whatever `--concurrency` says.
pub fn index_build_budget(concurrency: usize) -> usize {
    concurrency.clamp(1, MAX_ACTIVE_USER_INDEX_BUILDS)
}

/// What one physical collection should be on the cluster.
#[derive(Debug, Clone)]
pub struct DesiredShard {
    pub database: String,
    pub collection: String,
    /// `None`: unsharded (and placed whole, by `zone`).
    pub shard: Option<CompiledShard>,
    /// The collection exists with documents (sharding it, or moving it, is data-dependent).
    pub has_data: bool,
    /// A Pro set's or Enterprise database's zone (its tenant's region).
    pub zone: Option<String>,
    /// Where tenants share the collection: each tenant's zone, by its region.
    pub tenant_zones: Vec<(String, String)>,
}

impl DesiredShard {
    pub fn namespace(&self) -> String {
        format!("{}.{}", self.database, self.collection)
    }

    /// A step on this collection is safe while it is empty, data-dependent once it is not.
    fn by_data(&self) -> Safety {
        if self.has_data {
            Safety::DataDependent
        } else {
            Safety::Safe
        }
    }
}

/// One sharding step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum ShardStep {
    ShardCollection {
        key: Document,
        unique: bool,
    },
    /// The new key extends the live one: metadata only.
    RefineShardKey {
        from: Document,
        key: Document,
    },
    /// Another key: the collection is rewritten.
    ReshardCollection {
        from: Document,
        key: Document,
    },
    /// `updateZoneKeyRange`; `replaces` names the zone the range had (a region change).
    ZoneRange {
        min: Document,
        max: Document,
        zone: String,
        replaces: Option<String>,
    },
    /// A zone range no tenant of this collection needs (dropped only with `--prune`).
    RemoveZoneRange {
        min: Document,
        max: Document,
        zone: String,
    },
    /// An unsharded collection onto a shard of its zone (8.0+).
    MoveCollection {
        to_shard: String,
        zone: String,
    },
    /// A step caas cannot take; what a person must do.
    NeedsOperator {
        reason: String,
    },
}

/// A sharding change to one namespace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardChange {
    pub namespace: String,
    pub safety: Safety,
    pub undeclared: bool,
    #[serde(flatten)]
    pub step: ShardStep,
    /// What it costs, as MongoDB documents it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<&'static str>,
}

const SHARD_COST: &str = "an index on the key must exist first (the plan builds it); the balancer then migrates chunks across shards in the background";
const REFINE_COST: &str = "metadata only (refineCollectionShardKey): needs an index on the new key; existing chunks keep their ranges until split";
const RESHARD_COST: &str = "rewrites every document (reshardCollection): each shard needs free storage for a copy of its part, writes are blocked up to 2 s at the commit, one resharding per cluster at a time";
const MOVE_COST: &str =
    "copies the collection to the shard (moveCollection): writes are blocked up to 2 s at the end";
const REZONE_COST: &str = "the tenant's chunks migrate to the new zone's shards in the background";

impl ShardChange {
    /// The admin commands this step runs, in order; none for a step that needs a person.
    /// A range that changes zone is removed, then added: MongoDB refuses a range that
    /// overlaps a live one in another zone (`RangeOverlapConflict`), its own bounds too.
    pub fn commands(&self) -> Vec<Document> {
        let ns = &self.namespace;
        if let ShardStep::ZoneRange {
            min,
            max,
            replaces: Some(_),
            ..
        } = &self.step
        {
            let remove = doc! { "updateZoneKeyRange": ns, "min": min.clone(), "max": max.clone(), "zone": bson::Bson::Null };
            return [remove].into_iter().chain(self.command()).collect();
        }
        self.command().into_iter().collect()
    }

    /// The last (for most steps the only) admin command of [`Self::commands`].
    fn command(&self) -> Option<Document> {
        let ns = &self.namespace;
        Some(match &self.step {
            ShardStep::ShardCollection { key, unique } => {
                doc! { "shardCollection": ns, "key": key.clone(), "unique": *unique }
            }
            ShardStep::RefineShardKey { key, .. } => {
                doc! { "refineCollectionShardKey": ns, "key": key.clone() }
            }
            ShardStep::ReshardCollection { key, .. } => {
                doc! { "reshardCollection": ns, "key": key.clone() }
            }
            ShardStep::ZoneRange { min, max, zone, .. } => {
                doc! { "updateZoneKeyRange": ns, "min": min.clone(), "max": max.clone(), "zone": zone }
            }
            ShardStep::RemoveZoneRange { min, max, .. } => {
                doc! { "updateZoneKeyRange": ns, "min": min.clone(), "max": max.clone(), "zone": bson::Bson::Null }
            }
            ShardStep::MoveCollection { to_shard, .. } => {
                doc! { "moveCollection": ns, "toShard": to_shard }
            }
            ShardStep::NeedsOperator { .. } => return None,
        })
    }

    /// One line for tables and logs.
    pub fn summary(&self) -> String {
        let j = |d: &Document| crate::compile::to_json(d).to_string();
        match &self.step {
            ShardStep::ShardCollection { key, unique } => {
                format!(
                    "shard on {}{}",
                    j(key),
                    if *unique { " (unique)" } else { "" }
                )
            }
            ShardStep::RefineShardKey { from, key } => {
                format!("refine shard key {} -> {}", j(from), j(key))
            }
            ShardStep::ReshardCollection { from, key } => {
                format!("reshard {} -> {}", j(from), j(key))
            }
            ShardStep::ZoneRange {
                min,
                zone,
                replaces,
                ..
            } => match replaces {
                Some(old) => format!("zone range {} moves {old} -> {zone}", j(min)),
                None => format!("zone range {} in {zone}", j(min)),
            },
            ShardStep::RemoveZoneRange { min, zone, .. } => {
                format!("undeclared zone range {} in {zone}", j(min))
            }
            ShardStep::MoveCollection { to_shard, zone } => {
                format!("move to shard {to_shard} (zone {zone})")
            }
            ShardStep::NeedsOperator { reason } => format!("needs an operator: {reason}"),
        }
    }
}

fn change(
    d: &DesiredShard,
    safety: Safety,
    step: ShardStep,
    cost: Option<&'static str>,
) -> ShardChange {
    ShardChange {
        namespace: d.namespace(),
        safety,
        undeclared: false,
        step,
        cost,
    }
}

/// The sharding changes that bring the cluster in line with `desired`, in order: keys
/// (after the plan's index steps), then zone ranges, then placement.
pub fn plan_sharding(desired: &[DesiredShard], cluster: &ClusterState) -> Vec<ShardChange> {
    let mut out = key_steps(desired, cluster);
    out.extend(zone_steps(desired, cluster));
    out.extend(placement_steps(desired, cluster));
    out
}

/// The shard-key part of [`plan_sharding`]: shard, refine, reshard.
pub fn key_steps(desired: &[DesiredShard], cluster: &ClusterState) -> Vec<ShardChange> {
    let mut out = Vec::new();
    for d in desired {
        key_changes(d, cluster, &mut out);
    }
    out
}

/// The zone-range part of [`plan_sharding`] (ranges no longer wanted are `undeclared`).
pub fn zone_steps(desired: &[DesiredShard], cluster: &ClusterState) -> Vec<ShardChange> {
    let mut out = Vec::new();
    for d in desired {
        zone_changes(d, cluster, &mut out);
    }
    out
}

/// The placement part of [`plan_sharding`]: unsharded collections onto their zone.
pub fn placement_steps(desired: &[DesiredShard], cluster: &ClusterState) -> Vec<ShardChange> {
    let mut out = Vec::new();
    for d in desired {
        placement_changes(d, cluster, &mut out);
    }
    out
}

fn key_changes(d: &DesiredShard, cluster: &ClusterState, out: &mut Vec<ShardChange>) {
    let ns = d.namespace();
    let live = cluster.sharded(&ns);
    match (&d.shard, live) {
        (None, None) => {}
        (None, Some(l)) => out.push(change(d, Safety::Destructive, ShardStep::NeedsOperator {
            reason: format!("sharded on the cluster by {} but the spec has no `shard`: MongoDB cannot unshard in place (unshardCollection, 8.0+, rewrites the collection); add the key to the spec, or unshard it by hand", crate::compile::to_json(&l.key)),
        }, None)),
        (Some(want), None) => {
            let safety = d.by_data();
            let cost = d.has_data.then_some(SHARD_COST);
            out.push(change(d, safety, ShardStep::ShardCollection { key: want.key.clone(), unique: want.unique }, cost));
        }
        (Some(want), Some(l)) if l.key == want.key && l.unique == want.unique => {}
        (Some(want), Some(l)) => {
            let extends = l.unique == want.unique
                && l.key.len() < want.key.len()
                && l.key.iter().zip(want.key.iter()).all(|(a, b)| a == b);
            let step = if extends {
                ShardStep::RefineShardKey { from: l.key.clone(), key: want.key.clone() }
            } else {
                ShardStep::ReshardCollection { from: l.key.clone(), key: want.key.clone() }
            };
            let (safety, cost) = if extends { (Safety::DataDependent, REFINE_COST) } else { (Safety::Destructive, RESHARD_COST) };
            out.push(change(d, safety, step, Some(cost)));
        }
    }
}

/// The zone ranges `d` needs: one per tenant where tenants share a key led by
/// `tenant_id`; the whole key range for a sharded Pro set or Enterprise collection.
fn wanted_ranges(d: &DesiredShard) -> Vec<(Document, Document, String)> {
    match &d.shard {
        Some(s) if s.per_tenant_ranges => d
            .tenant_zones
            .iter()
            .map(|(tenant, zone)| {
                let (min, max) = tenant_range(&s.key, tenant);
                (min, max, zone.clone())
            })
            .collect(),
        Some(s) => d
            .zone
            .iter()
            .map(|zone| {
                let min = s
                    .key
                    .keys()
                    .map(|k| (k.clone(), bson::Bson::MinKey))
                    .collect();
                let max = s
                    .key
                    .keys()
                    .map(|k| (k.clone(), bson::Bson::MaxKey))
                    .collect();
                (min, max, zone.clone())
            })
            .collect(),
        None => Vec::new(),
    }
}

fn zone_changes(d: &DesiredShard, cluster: &ClusterState, out: &mut Vec<ShardChange>) {
    let ns = d.namespace();
    let wanted = wanted_ranges(d);
    let live: Vec<_> = cluster
        .zone_ranges
        .iter()
        .filter(|r| r.namespace == ns)
        .collect();
    for (min, max, zone) in &wanted {
        if cluster.shards_in(zone).is_empty() {
            out.push(no_shard_in(d, zone));
            continue;
        }
        match live.iter().find(|r| &r.min == min) {
            Some(r) if &r.zone == zone && &r.max == max => {}
            Some(r) if &r.max != max => out.push(wider_range(d, r, max)),
            Some(r) => out.push(change(
                d,
                Safety::DataDependent,
                ShardStep::ZoneRange {
                    min: min.clone(),
                    max: max.clone(),
                    zone: zone.clone(),
                    replaces: Some(r.zone.clone()),
                },
                Some(REZONE_COST),
            )),
            None if let Some(r) = live
                .iter()
                .find(|r| super::bounds::overlaps((min, max), (&r.min, &r.max)) == Some(true)) =>
            {
                out.push(overlapping_range(d, r, min))
            }
            None => {
                let safety = d.by_data();
                out.push(change(
                    d,
                    safety,
                    ShardStep::ZoneRange {
                        min: min.clone(),
                        max: max.clone(),
                        zone: zone.clone(),
                        replaces: None,
                    },
                    d.has_data.then_some(REZONE_COST),
                ));
            }
        }
    }
    for r in live {
        if !wanted.iter().any(|(min, _, _)| &r.min == min) {
            let mut c = change(
                d,
                Safety::DataDependent,
                ShardStep::RemoveZoneRange {
                    min: r.min.clone(),
                    max: r.max.clone(),
                    zone: r.zone.clone(),
                },
                None,
            );
            c.undeclared = true;
            out.push(c);
        }
    }
}

/// A live range that starts where caas's would but ends elsewhere: it was made by hand and
/// covers keys caas's range does not (other tenants', in a shared collection), so
/// re-zoning it would move them too.
fn wider_range(d: &DesiredShard, live: &ZoneRange, max: &Document) -> ShardChange {
    let j = |d: &Document| crate::compile::to_json(d).to_string();
    let reason = format!(
        "the zone range from {} (zone `{}`) ends at {}, not at {}: it covers more keys than caas pins (in a shared collection, other tenants'); remove or split it by hand (sh.removeRangeFromZone), then rerun",
        j(&live.min), live.zone, j(&live.max), j(max)
    );
    change(
        d,
        Safety::DataDependent,
        ShardStep::NeedsOperator { reason },
        None,
    )
}

/// A live range (made by hand) that overlaps the one caas would add: MongoDB refuses the
/// new one (`RangeOverlapConflict`), so a person splits or removes the old first.
fn overlapping_range(d: &DesiredShard, live: &ZoneRange, min: &Document) -> ShardChange {
    let j = |d: &Document| crate::compile::to_json(d).to_string();
    let reason = format!(
        "the zone range from {} would overlap the range {} to {} in zone `{}`, which MongoDB refuses (RangeOverlapConflict); remove or split that range by hand (sh.removeRangeFromZone), then rerun",
        j(min), j(&live.min), j(&live.max), live.zone
    );
    change(
        d,
        Safety::DataDependent,
        ShardStep::NeedsOperator { reason },
        None,
    )
}

/// A zone `sharding.zones` maps a region to, with no shard in it: a person adds one.
fn no_shard_in(d: &DesiredShard, zone: &str) -> ShardChange {
    let reason = format!("no shard is in zone `{zone}` (sharding.zones maps a region to it): add one with sh.addShardToZone(<shard>, \"{zone}\")");
    change(
        d,
        Safety::DataDependent,
        ShardStep::NeedsOperator { reason },
        None,
    )
}

/// An unsharded Pro set or Enterprise collection goes whole to a shard of its zone.
fn placement_changes(d: &DesiredShard, cluster: &ClusterState, out: &mut Vec<ShardChange>) {
    let (None, Some(zone)) = (&d.shard, &d.zone) else {
        return;
    };
    let ns = d.namespace();
    let in_zone = cluster.shards_in(zone);
    let Some(first) = in_zone.first() else {
        out.push(no_shard_in(d, zone));
        return;
    };
    if cluster
        .shard_of(&d.database, &ns)
        .is_some_and(|s| in_zone.contains(&s))
    {
        return;
    }
    if cluster.major_version < 8 {
        out.push(change(d, Safety::DataDependent, ShardStep::NeedsOperator {
            reason: format!("before MongoDB 8.0 an unsharded collection lives on its database's primary shard: move `{}`'s primary into zone `{zone}` (movePrimary), or upgrade for moveCollection", d.database),
        }, None));
        return;
    }
    let safety = d.by_data();
    out.push(change(
        d,
        safety,
        ShardStep::MoveCollection {
            to_shard: (*first).to_owned(),
            zone: zone.clone(),
        },
        d.has_data.then_some(MOVE_COST),
    ));
}
