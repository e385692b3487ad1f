//! `caas schema pull`: read a live deployment and write specs. Round trips: one
//! `listDatabases`, one `listCollections` per database, one `listIndexes` per collection,
//! and per logical collection (not per tenant copy) one `$sample` and one acceptance count
//! when it has no validator, one distinct-tenants read when it is shared. Memory is bounded
//! by the sample size.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bson::{doc, Bson};
use serde::Serialize;

use super::infer::Sample;
use super::layout::{recognise, tier_with, Copy};
use super::read::{distinct_tenants, refused, registered_tenants, sample};
use super::{differences, emit, spec_of, Note, Source};
use crate::config::Config;
use crate::connect::Connection;
use crate::inspect::{self, LiveState};
use crate::spec::CollectionSpec;
use crate::tenancy::{Domain, Layout, Placement, Target, Tier};

/// A logical name that is safe as `<domain>/<name>.yaml`: no path separators, no `..`.
fn file_safe(name: &str) -> bool {
    name.len() <= 120
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && !name.contains("..")
}

/// The bookkeeping collections of other migration tools, by name.
fn peer_ledger(name: &str) -> Option<&'static str> {
    Some(match name {
        "changelog" | "changelog_lock" => "migrate-mongo",
        "mongockChangeLog" | "mongockLock" => "Mongock",
        "DATABASECHANGELOG" | "DATABASECHANGELOGLOCK" => "Liquibase",
        "schema_migrations" => "golang-migrate",
        _ => return None,
    })
}

/// The largest `--sample`.
pub const MAX_SAMPLE: usize = 100_000;

/// What to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Only these databases (all when empty).
    pub databases: Vec<String>,
    /// Only these logical collections (all when empty).
    pub collections: Vec<String>,
    /// Documents sampled per logical collection without a validator.
    pub sample: usize,
    /// A sampled field is `required` when present in at least this share of documents.
    pub required_ratio: f64,
    /// Sample every tenant copy of a logical collection, not only the first.
    pub every_copy: bool,
    pub concurrency: usize,
}

/// One pulled spec.
#[derive(Debug, Clone, Serialize)]
pub struct Pulled {
    pub collection: String,
    pub domain: Domain,
    /// `<domain>/<collection>.yaml` under the output folder.
    pub file: PathBuf,
    /// The copy it was read from (`db.collection`) and its target.
    pub source: String,
    pub target: String,
    /// `validator` (decompiled), `sample` (inferred), or `empty` (no validator, no documents).
    pub origin: &'static str,
    /// Documents sampled, and how many of them the pulled spec's validator refuses.
    pub sampled: Option<usize>,
    pub refused: Option<u64>,
    /// Tenant copies of the collection besides the source.
    pub copies: usize,
    /// What the spec, compiled, does not reproduce on the source (empty: exact).
    pub differences: Vec<String>,
    /// Other copies that differ from the spec, and how.
    pub copies_differing: Vec<String>,
    pub notes: Vec<Note>,
    #[serde(skip)]
    pub spec: CollectionSpec,
    #[serde(skip)]
    pub text: String,
}

/// A tenant the names or the data show.
#[derive(Debug, Clone, Serialize)]
pub struct FoundTenant {
    pub id: String,
    pub tier: Tier,
    /// Where it was found: `pro set`, `enterprise database`, `shared documents`.
    pub found_in: String,
    pub registered: bool,
}

#[derive(Debug, Serialize)]
pub struct PullReport {
    pub specs: Vec<Pulled>,
    pub tenants: Vec<FoundTenant>,
    /// Databases and collections left out, and why.
    pub skipped: Vec<Note>,
    pub round_trips: u64,
}

/// Read the deployment and build the specs (nothing is written here).
pub async fn pull(conn: &Connection, config: &Config, opts: &PullOptions) -> Result<PullReport> {
    if opts.sample == 0 {
        bail!("--sample 0 would infer nothing; give at least 1 (default 1000)");
    }
    if opts.sample > MAX_SAMPLE {
        bail!("--sample {} is more than {MAX_SAMPLE}; a sample that size says nothing a smaller one does not, and its ids are held in memory", opts.sample);
    }
    if !(opts.required_ratio > 0.0 && opts.required_ratio <= 1.0) {
        bail!("--required-ratio must be above 0 and at most 1 (1 = present in every sampled document)");
    }
    let start = conn.commands();
    let client = &conn.client;
    let mut skipped = Vec::new();
    let databases = chosen_databases(client, &opts.databases).await?;
    let databases = super::layout::recognisable(config, databases, &mut skipped);
    let listed = inspect::read(client, &databases, BTreeSet::new(), opts.concurrency).await?;
    let names = collection_names(&listed, &opts.collections, &mut skipped);
    let known = registered_tenants(client, config).await;
    let recognised = recognise(config, &names, &known);
    skipped.extend(recognised.notes);
    let wanted: inspect::Wanted = recognised
        .logical
        .iter()
        .filter(|((_, name), _)| opts.collections.is_empty() || opts.collections.contains(name))
        .flat_map(|(_, copies)| {
            copies
                .iter()
                .map(|c| (c.database.clone(), c.collection.clone()))
        })
        .collect();
    if !opts.collections.is_empty() {
        for c in &opts.collections {
            if !recognised.logical.keys().any(|(_, n)| n == c) {
                bail!("no collection `{c}` in the databases read ({}); `caas schema pull` without --collection lists what there is", databases.iter().cloned().collect::<Vec<_>>().join(", "));
            }
        }
    }
    let dbs_wanted: BTreeSet<String> = wanted.iter().map(|(d, _)| d.clone()).collect();
    let live = inspect::read(client, &dbs_wanted, wanted, opts.concurrency).await?;
    let mut specs = Vec::new();
    let mut shared_tenants: BTreeMap<String, usize> = BTreeMap::new();
    for ((domain, logical), copies) in &recognised.logical {
        if !opts.collections.is_empty() && !opts.collections.contains(logical) {
            continue;
        }
        // The name becomes a file path and a spec's name: only names caas accepts.
        let why = crate::tenancy::check_collection_name(&copies[0].database, logical)
            .err()
            .map(|e| e.to_string())
            .or_else(|| (!file_safe(logical)).then(|| format!("`{logical}` cannot be a spec file's name (letters, digits, `_`, `-` and `.` only, not leading)")));
        if let Some(why) = why {
            skipped.push(Note::new(
                &format!("{}.{}", copies[0].database, copies[0].collection),
                format!("not pulled: {why}"),
            ));
            continue;
        }
        let pulled = pull_one(
            conn,
            config,
            opts,
            *domain,
            logical,
            copies,
            &live,
            &mut shared_tenants,
        )
        .await?;
        specs.push(pulled);
    }
    let tenants = found_tenants(config, &recognised.tenants, &shared_tenants, &known);
    Ok(PullReport {
        specs,
        tenants,
        skipped,
        round_trips: conn.commands() - start,
    })
}

async fn chosen_databases(client: &mongodb::Client, asked: &[String]) -> Result<BTreeSet<String>> {
    let all = client
        .list_database_names()
        .await
        .context("listDatabases")?;
    for d in asked {
        if !all.contains(d) {
            bail!(
                "database `{d}` does not exist on the server; it has: {}",
                all.iter()
                    .filter(|n| !["admin", "local", "config"].contains(&n.as_str()))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(all
        .into_iter()
        .filter(|d| asked.is_empty() || asked.contains(d))
        .filter(|d| !["admin", "local", "config"].contains(&d.as_str()))
        .collect())
}

/// Collection names per database, without views, `system.*` and caas's own collections
/// (each view is a skip note: it holds no documents of its own).
fn collection_names(
    listed: &LiveState,
    asked: &[String],
    skipped: &mut Vec<Note>,
) -> BTreeMap<String, Vec<String>> {
    listed
        .iter()
        .map(|(db, colls)| {
            let names = colls
                .values()
                .filter(|c| {
                    if c.kind == "view" {
                        skipped.push(Note::new(&format!("{db}.{}", c.name), "a view: skipped (it holds no documents of its own; its pipeline is not a spec)".into()));
                        return false;
                    }
                    if let Some(tool) = peer_ledger(&c.name).filter(|_| !asked.contains(&c.name)) {
                        skipped.push(Note::new(&format!("{db}.{}", c.name), format!("{tool}'s migration ledger, not application data: skipped (record what it applied with `caas migrate baseline --version V`; if it is your data, pull it with --collection {})", c.name)));
                        return false;
                    }
                    if c.name.starts_with("system.") {
                        skipped.push(Note::new(&format!("{db}.{}", c.name), "a system collection: skipped (the server's, not the application's)".into()));
                        return false;
                    }
                    !inspect::is_internal(&c.name)
                })
                .map(|c| c.name.clone())
                .collect();
            (db.clone(), names)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn pull_one(
    conn: &Connection,
    config: &Config,
    opts: &PullOptions,
    domain: Domain,
    logical: &str,
    copies: &[Copy],
    live: &LiveState,
    shared_tenants: &mut BTreeMap<String, usize>,
) -> Result<Pulled> {
    let source = &copies[0];
    let live_coll = live
        .get(&source.database)
        .and_then(|d| d.get(&source.collection))
        .cloned()
        .with_context(|| {
            format!(
                "{}.{} went away while pulling",
                source.database, source.collection
            )
        })?;
    let has_validator = live_coll
        .options()
        .get_document("validator")
        .is_ok_and(|v| !v.is_empty());
    let sample = if has_validator {
        None
    } else {
        Some(sample_copies(conn, copies, opts).await?)
    };
    let scoped = is_scoped(&live_coll, sample.as_ref().map(|(s, _)| s));
    let placement = place(config, domain, logical, scoped, &source.target);
    let (spec, mut notes) = spec_of(&Source {
        logical,
        domain,
        live: &live_coll,
        placement: &placement,
        sample: sample.as_ref().map(|(s, _)| s),
        required_ratio: opts.required_ratio,
        scoped,
    });
    let origin = origin(has_validator, sample.as_ref().map(|(s, _)| s));
    let text = render(
        &spec,
        &notes,
        source,
        origin,
        sample.as_ref().map(|(s, _)| s.documents),
    );
    let spec = read_back(&text, logical)?;
    let mut diffs = differences(&spec, &placement, &live_coll);
    if !has_validator {
        diffs.retain(|d| d != "validator");
    }
    let refused = check_sample(conn, config, scoped, &spec, sample.as_ref(), &mut notes).await?;
    let copies_differing = check_copies(config, &spec, &copies[1..], live, scoped, has_validator);
    if scoped && matches!(source.target.kind, crate::tenancy::TargetKind::Shared) {
        for t in distinct_tenants(conn, source).await? {
            *shared_tenants.entry(t).or_default() += 1;
        }
    }
    Ok(Pulled {
        collection: logical.to_owned(),
        domain,
        file: PathBuf::from(domain.as_str()).join(format!("{logical}.yaml")),
        source: format!("{}.{}", source.database, source.collection),
        target: source.target.to_string(),
        origin,
        sampled: sample.as_ref().map(|(s, _)| s.documents),
        refused,
        copies: copies.len() - 1,
        differences: diffs,
        copies_differing,
        notes,
        spec,
        text,
    })
}

fn origin(has_validator: bool, sample: Option<&Sample>) -> &'static str {
    match sample {
        _ if has_validator => "validator",
        Some(s) if s.documents > 0 => "sample",
        _ => "empty",
    }
}

/// A sample, and the `_id`s it took from each copy.
type Sampled = (Sample, Vec<(Copy, Vec<Bson>)>);

/// Sample the source copy, or every tenant copy when asked, into one sample.
async fn sample_copies(conn: &Connection, copies: &[Copy], opts: &PullOptions) -> Result<Sampled> {
    let which = if opts.every_copy {
        copies
    } else {
        &copies[..1]
    };
    let mut s = Sample::default();
    let mut ids = Vec::new();
    for c in which {
        ids.push((c.clone(), sample(conn, c, opts.sample, &mut s).await?));
    }
    Ok((s, ids))
}

/// How many sampled documents the inferred validator refuses (none checked for a
/// decompiled validator or a time series, which has none).
async fn check_sample(
    conn: &Connection,
    config: &Config,
    scoped: bool,
    spec: &CollectionSpec,
    sample: Option<&Sampled>,
    notes: &mut Vec<Note>,
) -> Result<Option<u64>> {
    let Some((_, per_copy)) = sample.filter(|(s, _)| s.documents > 0 && spec.time_series.is_none())
    else {
        return Ok(None);
    };
    let mut n = 0;
    for (copy, ids) in per_copy {
        let placement = place(config, spec.domain, &spec.collection, scoped, &copy.target);
        n += refused(conn, copy, spec, &placement, ids).await?;
    }
    if n > 0 {
        notes.push(Note::new("validator", format!("{n} sampled document(s) fail the inferred validator; `caas schema audit` names them")));
    }
    Ok(Some(n))
}

/// Tenant-scoped: the validator requires `tenant_id`; else every sampled document has
/// one; else (no documents) every index leads with it.
fn is_scoped(live: &crate::inspect::LiveCollection, sample: Option<&Sample>) -> bool {
    let led_by_tenant = live.indexes().is_some_and(|list| {
        !list.is_empty()
            && list.iter().all(|ix| {
                ix.get_document("key")
                    .is_ok_and(|k| k.keys().next().is_some_and(|f| f == "tenant_id"))
            })
    });
    super::assemble::validator_requires_tenant(live).unwrap_or_else(|| match sample {
        Some(s) if s.documents > 0 => s.all_carry_tenant(),
        _ => led_by_tenant,
    })
}

/// The spec's text: a header saying where it came from, notes on fields above them and
/// the others in the header.
fn render(
    spec: &CollectionSpec,
    notes: &[Note],
    source: &Copy,
    origin: &str,
    sampled: Option<usize>,
) -> String {
    let (by_field, rest): (Vec<&Note>, Vec<&Note>) =
        notes.iter().partition(|n| spec.fields.contains_key(&n.at));
    let mut field_notes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in by_field {
        field_notes
            .entry(n.at.clone())
            .or_default()
            .push(n.message.clone());
    }
    let header: Vec<String> = header(&source.database, &source.collection, origin, sampled)
        .into_iter()
        .chain(rest.iter().map(|n| format!("{}: {}", n.at, n.message)))
        .collect();
    emit::spec_yaml(spec, &header, &field_notes)
}

/// The other tenant copies the spec does not reproduce, and how.
fn check_copies(
    config: &Config,
    spec: &CollectionSpec,
    copies: &[Copy],
    live: &LiveState,
    scoped: bool,
    has_validator: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for copy in copies {
        let Some(c) = live
            .get(&copy.database)
            .and_then(|d| d.get(&copy.collection))
        else {
            continue;
        };
        let p = place(config, spec.domain, &spec.collection, scoped, &copy.target);
        let mut d = differences(spec, &p, c);
        if !has_validator {
            d.retain(|x| x != "validator");
        }
        if !d.is_empty() {
            out.push(format!(
                "{} ({}.{}): {}",
                copy.target,
                copy.database,
                copy.collection,
                d.join(", ")
            ));
        }
    }
    out
}

fn header(db: &str, coll: &str, origin: &str, sampled: Option<usize>) -> Vec<String> {
    let how = match (origin, sampled) {
        ("validator", _) => "its validator and indexes".to_owned(),
        ("sample", Some(n)) => {
            format!("a sample of {n} document(s) (it has no validator) and its indexes")
        }
        _ => "its options and indexes (no validator, no documents)".to_owned(),
    };
    vec![format!(
        "Pulled by `caas schema pull` from {db}.{coll}: {how}. Review, then commit."
    )]
}

/// Where the logical collection lands in a copy's target.
fn place(
    config: &Config,
    domain: Domain,
    logical: &str,
    scoped: bool,
    target: &Target,
) -> Placement {
    let mut probe = super::assemble::empty_spec(logical, domain);
    probe.tenant_scoped = Some(scoped);
    target.place(&probe, &config.databases)
}

/// Parse the emitted text as `caas` will read the file: what is checked is what is written.
fn read_back(text: &str, logical: &str) -> Result<CollectionSpec> {
    let doc = crate::base::yaml::parse(text).map_err(|e| {
        anyhow::anyhow!(
            "pulled spec of `{logical}` does not parse back ({e:?}); please report this"
        )
    })?;
    let findings = crate::spec::check_meta(&doc, Path::new(logical));
    if let Some(f) = findings.first() {
        bail!(
            "pulled spec of `{logical}` does not match the spec format: {}; please report this",
            f.message
        );
    }
    serde_json::from_value(doc.value.clone()).with_context(|| {
        format!("pulled spec of `{logical}` does not read back; please report this")
    })
}

fn found_tenants(
    config: &Config,
    by_name: &BTreeMap<String, Tier>,
    shared: &BTreeMap<String, usize>,
    known: &BTreeMap<String, Tier>,
) -> Vec<FoundTenant> {
    let shared_tier = tier_with(config, Layout::Shared);
    let mut out: BTreeMap<String, FoundTenant> = BTreeMap::new();
    for (id, tier) in by_name {
        let found_in = match config.tiers.layout(*tier) {
            Layout::Database => "own database",
            _ => "collection set",
        };
        out.insert(
            id.clone(),
            FoundTenant {
                id: id.clone(),
                tier: *tier,
                found_in: found_in.into(),
                registered: known.contains_key(id),
            },
        );
    }
    for id in shared.keys() {
        if out.contains_key(id) || crate::tenancy::check_tenant_id(id).is_err() {
            continue;
        }
        let Some(tier) = known.get(id).copied().or(shared_tier) else {
            continue;
        };
        out.insert(
            id.clone(),
            FoundTenant {
                id: id.clone(),
                tier,
                found_in: "shared collections".into(),
                registered: known.contains_key(id),
            },
        );
    }
    out.into_values().collect()
}
