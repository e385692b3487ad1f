//! The tenancy layout of an existing deployment, recognised from its names by the
//! `[databases]` templates: the domains' databases, the shared database with its shared
//! collections and Pro collection sets (`{tenant_id}_{collection}`), and Enterprise
//! databases (`caas_{tenant_id}`). One logical collection per name, whatever number of
//! tenant copies it has. Pure.

use std::collections::{BTreeMap, BTreeSet};

use super::Note;
use crate::config::Config;
use crate::tenancy::{check_collection_name, check_tenant_id, Domain, Layout, Target, Tier};

/// Databases the server keeps for itself.
const SYSTEM_DATABASES: &[&str] = &["admin", "local", "config"];

/// One physical copy of a logical collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub target: Target,
    pub database: String,
    pub collection: String,
}

/// What the names say.
#[derive(Debug, Default)]
pub struct Recognised {
    /// (domain, logical name) -> its copies; the first is the one to pull from (shared
    /// before Pro sets before Enterprise databases).
    pub logical: BTreeMap<(Domain, String), Vec<Copy>>,
    /// Tenants found by name (Pro sets, Enterprise databases) and their tier.
    pub tenants: BTreeMap<String, Tier>,
    pub notes: Vec<Note>,
}

/// The first tier with this layout (`pro` for collection sets).
pub fn tier_with(config: &Config, layout: Layout) -> Option<Tier> {
    Tier::ALL
        .into_iter()
        .find(|t| config.tiers.layout(*t) == layout)
}

/// The databases the names can place (the domains', the shared one, Enterprise ones by
/// the tenant template); every other is a skip note, and is not read at all.
pub fn recognisable(
    config: &Config,
    databases: BTreeSet<String>,
    skipped: &mut Vec<Note>,
) -> BTreeSet<String> {
    let dbs = &config.databases;
    let fixed = [
        &dbs.platform,
        &dbs.billing,
        &dbs.analytics,
        &dbs.security,
        &dbs.shared,
    ];
    databases
        .into_iter()
        .filter(|db| {
            let known = fixed.contains(&db) || tenant_of_database(&dbs.tenant, db).is_some();
            if !known && !SYSTEM_DATABASES.contains(&db.as_str()) {
                skipped.push(Note::new(db, format!("database `{db}` is not named in [databases] and does not match the tenant template {:?}; skipped (name it in caas.toml to pull it)", dbs.tenant)));
            }
            known
        })
        .collect()
}

/// Recognise the layout. `collections` maps each database to its collection names (views,
/// `system.*` and caas's own collections already left out); `known` holds the tenant ids
/// the registry has, with their tiers.
pub fn recognise(
    config: &Config,
    collections: &BTreeMap<String, Vec<String>>,
    known: &BTreeMap<String, Tier>,
) -> Recognised {
    let dbs = &config.databases;
    let mut out = Recognised::default();
    let domain_of = |db: &str| {
        [
            Domain::Platform,
            Domain::Billing,
            Domain::Analytics,
            Domain::Security,
        ]
        .into_iter()
        .find(|d| dbs.for_domain(*d) == db)
    };
    let enterprise = tier_with(config, Layout::Database);
    let mut tenant_dbs = Vec::new();
    for (db, names) in collections {
        if SYSTEM_DATABASES.contains(&db.as_str()) {
            continue;
        }
        if let Some(domain) = domain_of(db) {
            for name in names {
                out.add(domain, name, Target::platform(), db, name);
            }
        } else if *db == dbs.shared {
            continue;
        } else if let Some(t) = tenant_of_database(&dbs.tenant, db) {
            let tier = known.get(&t).copied().or(enterprise);
            match tier {
                Some(tier) => tenant_dbs.push((db.clone(), t, tier)),
                None => out.notes.push(Note::new(db, "looks like an Enterprise database, but no tier has `database` layout in [tiers]; skipped".into())),
            }
        } else {
            out.notes.push(Note::new(
                db,
                format!("database `{db}` is not named in [databases] and does not match the tenant template {:?}; skipped (name it in caas.toml to pull it)", dbs.tenant),
            ));
        }
    }
    for (db, tenant, tier) in &tenant_dbs {
        out.tenants.insert(tenant.clone(), *tier);
        for name in &collections[db] {
            let target = Target::for_tenant(tenant, *tier, config.tiers.layout(*tier));
            out.add(Domain::Saas, name, target, db, name);
        }
    }
    if let Some(names) = collections.get(&dbs.shared) {
        shared_database(config, names, known, &mut out);
    }
    for copies in out.logical.values_mut() {
        copies.sort_by_key(|c| rank(&c.target));
    }
    out
}

fn rank(t: &Target) -> u8 {
    use crate::tenancy::TargetKind::*;
    match t.kind {
        Platform | Shared => 0,
        CollectionSet { .. } => 1,
        Database { .. } => 2,
    }
}

impl Recognised {
    fn add(&mut self, domain: Domain, logical: &str, target: Target, db: &str, coll: &str) {
        self.logical
            .entry((domain, logical.to_owned()))
            .or_default()
            .push(Copy {
                target,
                database: db.to_owned(),
                collection: coll.to_owned(),
            });
    }
}

/// The tenant an Enterprise database name belongs to, by the `tenant` template.
fn tenant_of_database(template: &str, db: &str) -> Option<String> {
    let (pre, post) = template.split_once("{tenant_id}")?;
    let t = db.strip_prefix(pre)?.strip_suffix(post)?;
    check_tenant_id(t).ok().map(|_| t.to_owned())
}

/// Every way a name reads as a collection-set member: `(tenant, logical collection)`.
fn set_readings(template: &str, name: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = name.char_indices().collect();
    for (i, &(start, _)) in chars.iter().enumerate() {
        for &(end, _) in chars[i + 1..].iter().chain([&(name.len(), ' ')]) {
            let t = &name[start..end];
            if check_tenant_id(t).is_err() {
                continue;
            }
            let filled = template.replace("{tenant_id}", t);
            let Some((pre, post)) = filled.split_once("{collection}") else {
                continue;
            };
            if let Some(c) = name.strip_prefix(pre).and_then(|r| r.strip_suffix(post)) {
                if !c.is_empty() && check_collection_name("caas_shared", c).is_ok() {
                    out.push((t.to_owned(), c.to_owned()));
                }
            }
        }
    }
    out
}

/// The shared database: which names are Pro collection sets and which are shared. A name
/// is a set member when it reads as `{tenant}_{collection}` for a tenant the registry or
/// an Enterprise database names, or for a collection other tenants (or the shared
/// database) also hold; anything else is a shared collection.
fn shared_database(
    config: &Config,
    names: &[String],
    known: &BTreeMap<String, Tier>,
    out: &mut Recognised,
) {
    let dbs = &config.databases;
    let pro = tier_with(config, Layout::CollectionSet);
    let readings: Vec<(String, Vec<(String, String)>)> = names
        .iter()
        .map(|n| (n.clone(), set_readings(&dbs.collection_set, n)))
        .collect();
    // A name other names read as `{tenant}_{name}` of is a shared collection itself.
    let suffixes: BTreeSet<&str> = readings
        .iter()
        .flat_map(|(n, rs)| {
            rs.iter()
                .filter(move |(_, c)| c != n)
                .map(|(_, c)| c.as_str())
        })
        .collect();
    let plain: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let elsewhere: BTreeSet<String> = out.logical.keys().map(|(_, n)| n.clone()).collect();
    let mut tenants: BTreeSet<String> = known.keys().chain(out.tenants.keys()).cloned().collect();
    let mut decided: BTreeMap<&str, (String, String)> = BTreeMap::new();
    // Known tenants first, then collections the shared database or another tier holds, then
    // collections at least two would-be tenants hold; each round's tenants help the next.
    for strength in [0, 1, 0, 2, 0] {
        let mut holders: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (n, rs) in &readings {
            if !decided.contains_key(n.as_str()) && !suffixes.contains(n.as_str()) {
                for (t, c) in rs {
                    holders.entry(c.as_str()).or_default().insert(t.as_str());
                }
            }
        }
        for (name, rs) in &readings {
            if decided.contains_key(name.as_str()) || suffixes.contains(name.as_str()) {
                continue;
            }
            let pick = match strength {
                0 => rs
                    .iter()
                    .filter(|(t, _)| tenants.contains(t))
                    .max_by_key(|(t, _)| t.len()),
                1 => rs
                    .iter()
                    .find(|(_, c)| plain.contains(c.as_str()) || elsewhere.contains(c)),
                _ => rs
                    .iter()
                    .find(|(_, c)| holders.get(c.as_str()).is_some_and(|h| h.len() >= 2)),
            };
            if let Some((t, c)) = pick {
                tenants.insert(t.clone());
                decided.insert(name.as_str(), (t.clone(), c.clone()));
            }
        }
    }
    for (name, rs) in &readings {
        match (decided.get(name.as_str()), pro) {
            (Some((t, c)), Some(pro)) => {
                let tier = known.get(t).copied().unwrap_or(pro);
                if config.tiers.layout(tier) != Layout::CollectionSet {
                    out.notes.push(Note::new(name, format!("reads as tenant `{t}`'s `{c}`, but the registry says `{t}` is {tier}; pulled as a shared collection")));
                    out.add(Domain::Saas, name, Target::shared(), &dbs.shared, name);
                    continue;
                }
                out.tenants.insert(t.clone(), tier);
                let target = Target::for_tenant(t, tier, Layout::CollectionSet);
                out.add(Domain::Saas, c, target, &dbs.shared, name);
            }
            _ => {
                if let Some((t, c)) = rs.first().filter(|_| !suffixes.contains(name.as_str())) {
                    out.notes.push(Note::new(name, format!("pulled as a shared collection; it could be tenant `{t}`'s `{c}`: register `{t}` (caas tenant add {t} --tier pro) and pull again to take it as a Pro set")));
                }
                out.add(Domain::Saas, name, Target::shared(), &dbs.shared, name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        list.iter()
            .map(|(db, cs)| (db.to_string(), cs.iter().map(|c| c.to_string()).collect()))
            .collect()
    }

    #[test]
    fn one_logical_collection_per_name_across_tiers() {
        let config: Config = toml::from_str("").unwrap();
        let live = names(&[
            ("caas_platform", &["saas_clients"]),
            (
                "caas_shared",
                &[
                    "users",
                    "audit_logs",
                    "acme_users",
                    "acme_audit_logs",
                    "bolt_users",
                ],
            ),
            ("caas_globex", &["users", "audit_logs"]),
            ("warehouse", &["things"]),
            ("admin", &["system.users"]),
        ]);
        let r = recognise(&config, &live, &BTreeMap::new());
        let users = &r.logical[&(Domain::Saas, "users".to_string())];
        let labels: Vec<String> = users.iter().map(|c| c.target.to_string()).collect();
        assert_eq!(
            labels,
            ["shared", "pro:acme", "pro:bolt", "enterprise:globex"]
        );
        assert!(r
            .logical
            .contains_key(&(Domain::Saas, "audit_logs".to_string())));
        assert!(!r
            .logical
            .contains_key(&(Domain::Saas, "acme_users".to_string())));
        assert_eq!(r.tenants.get("globex"), Some(&Tier::Enterprise));
        assert_eq!(r.tenants.get("acme"), Some(&Tier::Pro));
        assert!(r.notes.iter().any(|n| n.at == "warehouse"), "{:?}", r.notes);
        assert_eq!(r.logical.len(), 3, "{:?}", r.logical.keys());
    }

    #[test]
    fn an_underscored_shared_name_is_not_taken_for_a_tenant() {
        let config: Config = toml::from_str("").unwrap();
        let live = names(&[("caas_shared", &["audit_logs", "user_sessions"])]);
        let r = recognise(&config, &live, &BTreeMap::new());
        assert!(r.tenants.is_empty());
        assert_eq!(r.logical.len(), 2);
        assert!(r
            .notes
            .iter()
            .any(|n| n.message.contains("could be tenant `audit`")));
    }
}
