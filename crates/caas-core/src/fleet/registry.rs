//! The tenant registry (`saas_clients` in the platform database) and target resolution:
//! which physical targets a run covers, given the registered tenants and the filters.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use bson::{doc, DateTime, Document};
use futures::TryStreamExt;
use mongodb::Database;
use serde::Serialize;

use crate::config::Config;
use crate::spec::CollectionSpec;
use crate::tenancy::{
    check_database_name, check_region, check_tenant_id, Layout, Target, TargetKind, Tier,
};

/// The registry's logical collection.
pub const REGISTRY: &str = "saas_clients";

/// Open tenant moves (see `lifecycle::state`), read with the registry in one round trip:
/// while a tenant moves, the side it is not registered at is still its own.
pub const MOVES: &str = "caas_tenant_moves";

/// A registered tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub tier: Tier,
    pub status: String,
    /// The physical target the tenant's `saas` collections live in.
    pub target: String,
    pub database: String,
    /// The registry's `region` (on a sharded cluster, `sharding.zones` maps it to a zone).
    pub region: Option<String>,
}

#[cfg(test)]
impl Tenant {
    /// An active tenant named by its id, for unit tests.
    pub(crate) fn for_test(id: &str, tier: Tier, region: Option<&str>) -> Tenant {
        Tenant {
            id: id.into(),
            name: id.into(),
            tier,
            status: "active".into(),
            target: String::new(),
            database: String::new(),
            region: region.map(Into::into),
        }
    }
}

fn registry(db: &Database) -> mongodb::Collection<Document> {
    db.collection(REGISTRY)
}

/// Per-tier defaults for a new tenant's limits.
fn limits(tier: Tier) -> Document {
    let (users, storage_mb, rpm) = match tier {
        Tier::Free => (50, 1_024_i64, 60),
        Tier::Starter => (500, 10_240, 300),
        Tier::Pro => (5_000, 102_400, 1_200),
        Tier::Enterprise => (1_000_000, 10_485_760, 10_000),
    };
    doc! { "max_users": users, "max_storage_mb": storage_mb, "rate_limit_rpm": rpm }
}

/// Where a tenant's data lives, as stored in its registry entry.
pub fn data_location(config: &Config, id: &str, tier: Tier) -> Document {
    let dbs = &config.databases;
    match config.tiers.layout(tier) {
        Layout::Shared => doc! { "database": &dbs.shared, "collection_prefix": bson::Bson::Null },
        Layout::CollectionSet => {
            doc! { "database": &dbs.shared, "collection_prefix": dbs.set_prefix(id) }
        }
        Layout::Database => {
            doc! { "database": dbs.tenant_database(id), "collection_prefix": bson::Bson::Null }
        }
    }
}

/// Why a valid tenant id still cannot be used in this tier: an Enterprise tenant's own
/// database would be one caas uses for something else (tenant `platform` would write into
/// `caas_platform`), or not a valid database name.
pub fn check_placement(config: &Config, id: &str, tier: Tier) -> Result<(), String> {
    let dbs = &config.databases;
    if config.tiers.layout(tier) == Layout::CollectionSet {
        let name = dbs.set_collection(id, "users");
        if crate::inspect::is_internal(&name) {
            return Err(format!(
                "tenant `{id}` ({tier}) would get collections named like `{name}` in {}, a name caas keeps for itself (ledger, locks); choose another tenant id",
                dbs.shared
            ));
        }
    }
    if config.tiers.layout(tier) != Layout::Database {
        return Ok(());
    }
    let db = dbs.tenant_database(id);
    for (key, name) in [
        ("platform", &dbs.platform),
        ("billing", &dbs.billing),
        ("analytics", &dbs.analytics),
        ("security", &dbs.security),
        ("shared", &dbs.shared),
    ] {
        if &db == name {
            return Err(format!(
                "tenant `{id}` ({tier}) would get database `{db}`, which is the {key} database (databases.{key} in caas.toml); choose another tenant id"
            ));
        }
    }
    check_database_name(&db)
        .map_err(|why| format!("tenant `{id}` ({tier}) would get database `{db}`: {why}"))
}

/// The registry document of a new tenant (it passes the `saas_clients` validator).
pub fn new_tenant_document(
    config: &Config,
    id: &str,
    tier: Tier,
    name: &str,
    email: Option<&str>,
) -> Document {
    let now = DateTime::now();
    let mut d = doc! {
        "tenant_id": id,
        "name": name,
        "tier": tier.as_str(),
        "status": "active",
        "limits": limits(tier),
        "data_location": data_location(config, id, tier),
        "created_at": now,
        "updated_at": now,
        "__v": 0,
    };
    if let Some(e) = email {
        d.insert("contact_email", e);
    }
    d
}

/// The registry's unique index on `tenant_id`, as the catalogue's spec declares it. It is
/// created before the first insert, so of two racing registrations of one id exactly one
/// wins; `schema apply` keeps it (the spec declares it).
pub async fn ensure_unique_index(db: &Database) -> Result<()> {
    let ns = format!("{}.{REGISTRY}", db.name());
    match db
        .run_command(doc! {
            "createIndexes": REGISTRY,
            "indexes": [ { "key": { "tenant_id": 1 }, "name": "tenant_id_1", "unique": true } ],
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_code(&e, 11000) => bail!(
            "{ns} has more than one entry for a tenant id, so its unique index on tenant_id cannot be built: {}; remove the duplicates (keep the one whose tier matches where the data lives), then rerun",
            crate::base::driver::describe(&e)
        ),
        Err(e) => Err(anyhow::anyhow!(
            "creating the unique index on {ns}.tenant_id: {}",
            crate::base::driver::describe(&e)
        )),
    }
}

fn is_code(e: &mongodb::error::Error, code: i32) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == code,
        ErrorKind::Command(c) => c.code == code,
        _ => false,
    }
}

/// What a registration may say besides the id and tier.
#[derive(Debug, Clone, Copy, Default)]
pub struct About<'a> {
    /// Display name (default: the id).
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    /// Where the tenant's data must live (see [`crate::tenancy::check_region`]).
    pub region: Option<&'a str>,
}

/// The registry document of a tenant that may be added: the id, its placement and its
/// region are checked before anything is written.
pub fn prepare(config: &Config, id: &str, tier: Tier, about: About) -> Result<Document> {
    check_tenant_id(id).map_err(anyhow::Error::msg)?;
    check_placement(config, id, tier).map_err(anyhow::Error::msg)?;
    if let Some(r) = about.region {
        check_region(r).map_err(anyhow::Error::msg)?;
    }
    if let Some(n) = about.name {
        if n.trim().is_empty() || n.chars().count() > 200 {
            bail!("--name must be 1 to 200 characters");
        }
    }
    let name = about.name.unwrap_or(id);
    let mut d = new_tenant_document(config, id, tier, name, about.email);
    if let Some(r) = about.region {
        d.insert("region", r);
    }
    Ok(d)
}

/// The error for an insert refused by the registry: "already registered" for a duplicate
/// tenant id (naming the tier of the entry that won), otherwise the server's reason.
pub async fn insert_error(db: &Database, id: &str, e: &mongodb::error::Error) -> anyhow::Error {
    if is_code(e, 11000) {
        let tier = registry(db)
            .find_one(doc! { "tenant_id": id })
            .await
            .ok()
            .flatten()
            .and_then(|d| d.get_str("tier").ok().map(str::to_owned))
            .unwrap_or_else(|| "?".into());
        return anyhow::anyhow!("tenant `{id}` is already registered (tier {tier}); `caas tenant list` shows every tenant");
    }
    crate::base::driver::explain_write_error(e, &format!("{}.{REGISTRY}", db.name())).into()
}

/// Whether the fleet with this tenant added would give two targets one collection of the
/// shared database.
async fn check_names_with(
    db: &Database,
    config: &Config,
    specs: &[&CollectionSpec],
    id: &str,
    tier: Tier,
) -> Result<()> {
    let mut tenants = list(db, config).await?;
    tenants.push(Tenant {
        id: id.to_owned(),
        name: id.to_owned(),
        tier,
        status: "active".into(),
        target: String::new(),
        database: String::new(),
        region: None,
    });
    let fleet = super::Fleet {
        tenants,
        targets: vec![],
        retired: vec![],
    };
    super::check_shared_names(config, &fleet, specs)
        .map_err(|why| anyhow::anyhow!("tenant `{id}` cannot be added: {why}"))
}

/// Register a tenant. The id is checked before anything is written; an id already
/// registered (also by a registration racing this one) is an error that names its tier.
///
/// With `specs`, the fleet with this tenant added is checked first: no two targets may
/// get one physical collection of the shared database (see [`super::check_shared_names`]).
/// Pass no specs only when they do not load; `schema plan` and `apply` check again.
pub async fn add(
    db: &Database,
    config: &Config,
    specs: Option<&[&CollectionSpec]>,
    id: &str,
    tier: Tier,
    about: About<'_>,
) -> Result<Tenant> {
    let d = prepare(config, id, tier, about)?;
    if let Some(specs) = specs {
        check_names_with(db, config, specs, id, tier).await?;
    }
    ensure_unique_index(db).await?;
    if let Err(e) = registry(db).insert_one(&d).await {
        return Err(insert_error(db, id, &e).await);
    }
    Ok(to_tenant(config, &d).expect("a document we built"))
}

fn to_tenant(config: &Config, d: &Document) -> Option<Tenant> {
    let id = d.get_str("tenant_id").ok()?.to_owned();
    let tier: Tier = d.get_str("tier").ok()?.parse().ok()?;
    let target = Target::for_tenant(&id, tier, config.tiers.layout(tier));
    let database = data_location(config, &id, tier)
        .get_str("database")
        .unwrap_or("")
        .to_owned();
    Some(Tenant {
        name: d.get_str("name").unwrap_or(&id).to_owned(),
        status: d.get_str("status").unwrap_or("?").to_owned(),
        target: target.to_string(),
        database,
        region: d.get_str("region").ok().map(str::to_owned),
        tier,
        id,
    })
}

/// Every registered tenant that is not soft-deleted, sorted by id. A missing registry is
/// an empty one. Entries that are not valid tenants are an error naming them.
pub async fn list(db: &Database, config: &Config) -> Result<Vec<Tenant>> {
    Ok(list_all(db, config).await?.0)
}

/// The registry in two parts: live tenants, and soft-deleted ones (`deleted_at` set), whose
/// data is still theirs. A tenant whose `tier` no longer matches its recorded
/// `data_location` (a tier edited by hand) is an error: applying the new tier would give it
/// a second, empty home and leave its data unowned.
pub async fn list_all(db: &Database, config: &Config) -> Result<(Vec<Tenant>, Vec<Tenant>)> {
    let open: Vec<bson::Bson> = ["copy", "catchup", "cutover", "flipped"]
        .map(bson::Bson::from)
        .to_vec();
    let pipeline = vec![
        doc! { "$sort": { "tenant_id": 1 } },
        doc! { "$unionWith": { "coll": MOVES, "pipeline": [
            { "$match": { "phase": { "$in": open } } },
            { "$project": { "_id": 0, "__caas_move": "$_id", "from_tier": 1, "to_tier": 1 } },
        ] } },
    ];
    let mut cursor = registry(db)
        .aggregate(pipeline)
        .await
        .with_context(|| format!("reading the tenant registry {}.{REGISTRY}", db.name()))?;
    // One entry at a time: a registry of 100,000 tenants is megabytes as `Document`s.
    let (mut live, mut retired, mut moves) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(d) = cursor
        .try_next()
        .await
        .context("reading the tenant registry")?
    {
        if d.contains_key("__caas_move") {
            moves.push(d);
            continue;
        }
        let t = match to_tenant(config, &d) {
            Some(t) if check_tenant_id(&t.id).is_ok() => t,
            _ => bail!(
                "registry entry {} in {}.{REGISTRY} has no valid tenant_id or tier; fix or remove it",
                d.get("_id").map(|v| v.to_string()).unwrap_or_default(),
                db.name()
            ),
        };
        if let Err(why) = check_placement(config, &t.id, t.tier) {
            bail!(
                "registry entry for {why}; fix or remove it in {}.{REGISTRY}",
                db.name()
            );
        }
        if let Some(why) = misplaced(config, &d, &t) {
            bail!("{why}");
        }
        if matches!(d.get("deleted_at"), None | Some(bson::Bson::Null)) {
            live.push(t);
        } else {
            retired.push(t);
        }
    }
    // A tenant in the middle of a move keeps the side it is not registered at (the copy
    // before the flip, the kept source after it): nobody else claims or prunes it.
    for m in &moves {
        let id = m.get_str("__caas_move").unwrap_or_default();
        let Some(t) = live
            .iter()
            .chain(retired.iter())
            .find(|t| t.id == id)
            .cloned()
        else {
            continue;
        };
        for key in ["from_tier", "to_tier"] {
            if let Some(tier) = m.get_str(key).ok().and_then(|s| s.parse::<Tier>().ok()) {
                if tier != t.tier {
                    retired.push(Tenant { tier, ..t.clone() });
                }
            }
        }
    }
    Ok((live, retired))
}

/// Why an entry's tier disagrees with where its data lives (`data_location` as recorded
/// when it was registered), if it does.
fn misplaced(config: &Config, d: &Document, t: &Tenant) -> Option<String> {
    let recorded = d.get_document("data_location").ok()?;
    let expected = data_location(config, &t.id, t.tier);
    let same = |k: &str| {
        recorded.get(k).filter(|v| **v != bson::Bson::Null)
            == expected.get(k).filter(|v| **v != bson::Bson::Null)
    };
    if same("database") && same("collection_prefix") {
        return None;
    }
    let place = |loc: &Document| match loc.get_str("collection_prefix") {
        Ok(p) => format!(
            "collections {}{}*",
            loc.get_str("database").unwrap_or("?"),
            format_args!(".{p}")
        ),
        Err(_) => format!("database {}", loc.get_str("database").unwrap_or("?")),
    };
    Some(format!(
        "tenant `{}`: the registry says tier {}, which would place it in {}, but its data lives in {} (data_location); caas will not follow a tier edited by hand, which would give the tenant a second, empty home. Restore its tier in the registry (a tier changes only by moving the tenant's data)",
        t.id,
        t.tier,
        place(&expected),
        place(recorded)
    ))
}

/// Which tenants and tiers a run covers. Empty: everything.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub tenants: Vec<String>,
    pub tiers: Vec<Tier>,
}

impl Selection {
    pub fn is_all(&self) -> bool {
        self.tenants.is_empty() && self.tiers.is_empty()
    }
}

/// The targets of a run: with no filter, the platform, the shared target and one target
/// per Pro and Enterprise tenant; with `--tenant`/`--tier`, only those tenants' targets.
pub fn resolve_targets(
    tenants: &[Tenant],
    config: &Config,
    sel: &Selection,
) -> Result<Vec<Target>> {
    for id in &sel.tenants {
        check_tenant_id(id)
            .map_err(anyhow::Error::msg)
            .context("--tenant")?;
        if !tenants.iter().any(|t| &t.id == id) {
            bail!("tenant `{id}` is not registered; `caas tenant add {id} --tier ...` registers it, `caas tenant list` shows who is");
        }
    }
    let mut set = BTreeSet::new();
    if sel.is_all() {
        set.insert(Target::platform());
        set.insert(Target::shared());
    }
    for t in tenants {
        if sel.is_all() || sel.tenants.contains(&t.id) || sel.tiers.contains(&t.tier) {
            set.insert(Target::for_tenant(
                &t.id,
                t.tier,
                config.tiers.layout(t.tier),
            ));
        }
    }
    for tier in &sel.tiers {
        if config.tiers.layout(*tier) == Layout::Shared {
            set.insert(Target::shared());
        }
    }
    let mut targets: Vec<Target> = set.into_iter().collect();
    targets.sort_by_key(|t| match &t.kind {
        TargetKind::Platform => (0, String::new()),
        TargetKind::Shared => (1, String::new()),
        TargetKind::CollectionSet { tenant, .. } => (2, tenant.clone()),
        TargetKind::Database { tenant, .. } => (3, tenant.clone()),
    });
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str, tier: Tier) -> Tenant {
        let config = Config::parse("", std::path::Path::new("caas.toml")).unwrap();
        to_tenant(&config, &new_tenant_document(&config, id, tier, id, None)).unwrap()
    }

    #[test]
    fn all_targets_without_filters() {
        let config = Config::parse("", std::path::Path::new("caas.toml")).unwrap();
        let tenants = vec![
            tenant("a1", Tier::Free),
            tenant("b1", Tier::Starter),
            tenant("c1", Tier::Pro),
            tenant("d1", Tier::Enterprise),
        ];
        let targets = resolve_targets(&tenants, &config, &Selection::default()).unwrap();
        let names: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        assert_eq!(names, ["platform", "shared", "pro:c1", "enterprise:d1"]);
    }

    #[test]
    fn filters_narrow_to_tenant_targets() {
        let config = Config::parse("", std::path::Path::new("caas.toml")).unwrap();
        let tenants = vec![
            tenant("a1", Tier::Free),
            tenant("c1", Tier::Pro),
            tenant("c2", Tier::Pro),
        ];
        let by_tenant = Selection {
            tenants: vec!["a1".into(), "c2".into()],
            tiers: vec![],
        };
        let names: Vec<String> = resolve_targets(&tenants, &config, &by_tenant)
            .unwrap()
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(names, ["shared", "pro:c2"]);
        let by_tier = Selection {
            tenants: vec![],
            tiers: vec![Tier::Pro],
        };
        let names: Vec<String> = resolve_targets(&tenants, &config, &by_tier)
            .unwrap()
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(names, ["pro:c1", "pro:c2"]);
        let unknown = Selection {
            tenants: vec!["zz".into()],
            tiers: vec![],
        };
        assert!(resolve_targets(&tenants, &config, &unknown)
            .unwrap_err()
            .to_string()
            .contains("not registered"));
    }

    #[test]
    fn a_tenant_cannot_take_a_database_or_collection_names_caas_uses() {
        let config = Config::parse("", std::path::Path::new("caas.toml")).unwrap();
        for id in ["platform", "billing", "analytics", "shared"] {
            let err = check_placement(&config, id, Tier::Enterprise).unwrap_err();
            assert!(
                err.contains(&format!("database `caas_{id}`"))
                    && err.contains("choose another tenant id"),
                "{err}"
            );
            assert_eq!(
                check_placement(&config, id, Tier::Pro),
                Ok(()),
                "a Pro set is not a database"
            );
        }
        assert_eq!(check_placement(&config, "acme", Tier::Enterprise), Ok(()));
        let err = check_placement(&config, "caas", Tier::Pro).unwrap_err();
        assert!(
            err.contains("`caas_users`") && err.contains("keeps for itself"),
            "{err}"
        );
        assert_eq!(check_placement(&config, "caas", Tier::Free), Ok(()));
        let custom = Config::parse(
            "[databases]\ntenant = \"{tenant_id}\"\n",
            std::path::Path::new("caas.toml"),
        )
        .unwrap();
        let err = check_placement(&custom, "admin", Tier::Enterprise).unwrap_err();
        assert!(err.contains("reserved"), "{err}");
    }

    #[test]
    fn data_location_per_layout() {
        let config = Config::parse("", std::path::Path::new("caas.toml")).unwrap();
        assert_eq!(
            data_location(&config, "acme", Tier::Pro),
            doc! { "database": "caas_shared", "collection_prefix": "acme_" }
        );
        assert_eq!(
            data_location(&config, "acme", Tier::Enterprise)
                .get_str("database")
                .unwrap(),
            "caas_acme"
        );
    }
}
