//! What a move does, decided without a server: which physical collections hold the
//! tenant's documents before and after, which versions its new target's ledger must hold,
//! and the reasons a move is refused before anything is written.

use std::collections::BTreeMap;

use bson::{doc, Document};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::migrate::ledger::{Entry, EntryStatus};
use crate::spec::CollectionSpec;
use crate::tenancy::{Layout, Target, Tier};

/// One logical collection of the tenant: where its documents are, where they go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    /// The logical name (`users`).
    pub collection: String,
    pub from: Namespace,
    pub to: Namespace,
}

/// A physical collection and the filter that selects the tenant's documents in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub database: String,
    pub collection: String,
    /// Several tenants share it: the tenant's documents are `{tenant_id: X}`.
    pub shared: bool,
}

impl Namespace {
    pub fn label(&self) -> String {
        format!("{}.{}", self.database, self.collection)
    }

    /// The tenant's documents here.
    pub fn filter(&self, tenant: &str) -> Document {
        if self.shared {
            doc! { "tenant_id": tenant }
        } else {
            doc! {}
        }
    }
}

/// The physical side of a move: from one target to another.
#[derive(Debug, Clone)]
pub struct Route {
    pub tenant: String,
    pub from_tier: Tier,
    pub to_tier: Tier,
    pub from: Target,
    pub to: Target,
    /// Empty when both tiers share a layout: the move is a registry change only.
    pub pairs: Vec<Pair>,
}

impl Route {
    /// Both tiers keep the tenant in the same place (free <-> starter).
    pub fn registry_only(&self) -> bool {
        self.from == self.to
    }

    /// The new target is one the tenant has alone (a Pro set or an Enterprise database).
    pub fn to_dedicated(&self) -> bool {
        self.to.tenant().is_some()
    }
}

/// The route of tenant `tenant` from `from` to `to`, or why there is none.
pub fn route(
    config: &Config,
    specs: &[&CollectionSpec],
    tenant: &str,
    from: Tier,
    to: Tier,
) -> Result<Route, String> {
    if from == to {
        return Err(format!(
            "tenant `{tenant}` is already {to}; nothing to move (`caas tenant list` shows every tenant's tier)"
        ));
    }
    let (lf, lt) = (config.tiers.layout(from), config.tiers.layout(to));
    let source = Target::for_tenant(tenant, from, lf);
    let dest = Target::for_tenant(tenant, to, lt);
    let dbs = &config.databases;
    let mut pairs = Vec::new();
    if source != dest {
        for s in specs.iter().filter(|s| dest.holds(*s)) {
            if !s.is_tenant_scoped() && (lf == Layout::Shared || lt == Layout::Shared) {
                return Err(format!(
                    "`{}` is a saas collection without tenant_id (tenant_scoped: false): in the shared tier its documents are nobody's in particular, so caas cannot tell which of them move with tenant `{tenant}`; give it tenant_id or move it by hand",
                    s.collection
                ));
            }
            let (p, q) = (source.place(*s, dbs), dest.place(*s, dbs));
            pairs.push(Pair {
                collection: s.collection.clone(),
                from: Namespace {
                    database: p.database,
                    collection: p.collection,
                    shared: p.shared_by_tenants,
                },
                to: Namespace {
                    database: q.database,
                    collection: q.collection,
                    shared: q.shared_by_tenants,
                },
            });
        }
    }
    Ok(Route {
        tenant: tenant.to_owned(),
        from_tier: from,
        to_tier: to,
        from: source,
        to: dest,
        pairs,
    })
}

fn done(e: Option<&Entry>) -> bool {
    e.is_some_and(|e| matches!(e.status, EntryStatus::Applied | EntryStatus::Baselined))
}

/// The ledger the new target needs, from the old target's and (for a shared destination)
/// the shared target's: versions that apply to the new target, keyed by version.
///
/// - A new dedicated target gets a copy of each entry done on the old one (`moved_from`
///   names it), so `migrate up` does not run them again on the moved data; versions the
///   old target never had stay pending and run there.
/// - A shared destination keeps its own ledger, which covers the tenant's documents only
///   if both agree: a version done on one and not on the other is refused, naming it.
/// - An unfinished entry (running, failed, reverting) on the old target is refused.
pub fn ledger_for_destination(
    route: &Route,
    applies_to_dest: &[u32],
    source: &BTreeMap<u32, Entry>,
    dest: &BTreeMap<u32, Entry>,
) -> Result<Vec<Entry>, String> {
    let (from, to) = (route.from.to_string(), route.to.to_string());
    for e in source.values() {
        if matches!(
            e.status,
            EntryStatus::Running | EntryStatus::Failed | EntryStatus::Reverting
        ) {
            return Err(format!(
                "{from}: V{:04} is {:?} in the ledger; finish it (`caas migrate up`, `migrate down` or `migrate repair`) before moving tenant `{}`",
                e.version,
                e.status,
                route.tenant
            ));
        }
    }
    let mut copies = Vec::new();
    for v in applies_to_dest {
        let (s, d) = (source.get(v), dest.get(v));
        if route.to_dedicated() {
            if done(s) && !done(d) {
                let mut e = s.cloned().expect("done");
                e.id = crate::migrate::ledger::entry_id(&to, *v);
                e.target = to.clone();
                e.moved_from = Some(from.clone());
                e.token = None;
                copies.push(e);
            }
            continue;
        }
        match (done(s), done(d)) {
            (true, false) => return Err(format!(
                "{to} has not applied V{v:04}, which tenant `{}`'s data on {from} already has: run `caas migrate up` (the shared target) first, then move",
                route.tenant
            )),
            (false, true) => return Err(format!(
                "{to} has applied V{v:04}, which tenant `{}`'s data on {from} never got: run `caas migrate up --tenant {}` first, then move",
                route.tenant, route.tenant
            )),
            _ => {}
        }
    }
    Ok(copies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> CollectionSpec {
        let text =
            format!("collection: {name}\ndomain: saas\nfields:\n  name: {{ type: string }}\n");
        serde_json::from_value(crate::base::yaml::parse(&text).unwrap().value).unwrap()
    }

    fn config() -> Config {
        Config::parse("", std::path::Path::new("caas.toml")).unwrap()
    }

    fn entry(target: &str, v: u32, status: EntryStatus) -> (u32, Entry) {
        let now = bson::DateTime::now();
        (
            v,
            Entry {
                id: crate::migrate::ledger::entry_id(target, v),
                target: target.into(),
                version: v,
                name: "m".into(),
                checksum: "c".into(),
                status,
                error: None,
                started_at: now,
                finished_at: Some(now),
                duration_ms: None,
                tool_version: "0".into(),
                host: "h".into(),
                checkpoint: Default::default(),
                resumed: 0,
                token: Some(3),
                moved_from: None,
            },
        )
    }

    #[test]
    fn every_direction_places_each_collection_once() {
        let (users, groups) = (spec("users"), spec("groups"));
        let specs = vec![&users, &groups];
        let c = config();
        let r = route(&c, &specs, "acme", Tier::Free, Tier::Pro).unwrap();
        assert_eq!(r.pairs[0].from.label(), "caas_shared.users");
        assert!(r.pairs[0].from.shared);
        assert_eq!(r.pairs[0].from.filter("acme"), doc! { "tenant_id": "acme" });
        assert_eq!(r.pairs[0].to.label(), "caas_shared.acme_users");
        assert_eq!(r.pairs[0].to.filter("acme"), doc! {});
        let r = route(&c, &specs, "acme", Tier::Pro, Tier::Enterprise).unwrap();
        assert_eq!(r.pairs[1].to.label(), "caas_acme.groups");
        assert!(!r.pairs[1].from.shared && !r.pairs[1].to.shared);
        let r = route(&c, &specs, "acme", Tier::Enterprise, Tier::Starter).unwrap();
        assert_eq!(r.pairs[0].to.label(), "caas_shared.users");
        assert!(r.pairs[0].to.shared && !r.to_dedicated());
        let r = route(&c, &specs, "acme", Tier::Free, Tier::Starter).unwrap();
        assert!(r.registry_only() && r.pairs.is_empty());
        let err = route(&c, &specs, "acme", Tier::Pro, Tier::Pro).unwrap_err();
        assert!(err.contains("already pro"), "{err}");
    }

    #[test]
    fn a_new_target_inherits_what_the_old_one_had_done() {
        let (users,) = (spec("users"),);
        let c = config();
        let r = route(&c, &[&users], "acme", Tier::Free, Tier::Pro).unwrap();
        let source = BTreeMap::from([
            entry("shared", 1, EntryStatus::Applied),
            entry("shared", 2, EntryStatus::Baselined),
            entry("shared", 3, EntryStatus::Reverted),
        ]);
        let copies = ledger_for_destination(&r, &[1, 2, 3, 4], &source, &BTreeMap::new()).unwrap();
        let got: Vec<(String, u32, Option<String>)> = copies
            .iter()
            .map(|e| (e.id.clone(), e.version, e.moved_from.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("pro:acme:000001".into(), 1, Some("shared".into())),
                ("pro:acme:000002".into(), 2, Some("shared".into()))
            ]
        );
        let failed = BTreeMap::from([entry("shared", 1, EntryStatus::Failed)]);
        let err = ledger_for_destination(&r, &[1], &failed, &BTreeMap::new()).unwrap_err();
        assert!(
            err.contains("V0001") && err.contains("before moving"),
            "{err}"
        );
    }

    #[test]
    fn into_the_shared_target_both_ledgers_must_agree() {
        let users = spec("users");
        let c = config();
        let r = route(&c, &[&users], "acme", Tier::Pro, Tier::Free).unwrap();
        let pro = BTreeMap::from([entry("pro:acme", 1, EntryStatus::Applied)]);
        let shared = BTreeMap::from([
            entry("shared", 1, EntryStatus::Applied),
            entry("shared", 2, EntryStatus::Applied),
        ]);
        assert!(ledger_for_destination(&r, &[1], &pro, &shared)
            .unwrap()
            .is_empty());
        let err = ledger_for_destination(&r, &[1, 2], &pro, &shared).unwrap_err();
        assert!(
            err.contains("never got") && err.contains("--tenant acme"),
            "{err}"
        );
        let err = ledger_for_destination(&r, &[1, 2], &shared, &pro).unwrap_err();
        assert!(err.contains("has not applied V0002"), "{err}");
    }
}
