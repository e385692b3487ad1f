//! `caas seed`: a demo platform a developer can click through, scaled up on demand.
//! Seeds are data, not migrations: they never touch the migration ledger. Every seeded
//! `_id` is derived from (seed value, tenant, collection, index), so a rerun inserts nothing
//! new and `--reset` recomputes exactly what was seeded (from the run manifest in
//! `caas_seed_runs`) and deletes that and nothing else.

pub mod fixtures;
pub mod generate;
mod prepare;
mod reset;
pub mod rng;
mod tenant;

pub use prepare::{plan_ids, prepare_targets, record_run, register};
pub use reset::reset;

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use argon2::password_hash::PasswordHasher;
use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use futures::{StreamExt, TryStreamExt};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::Client;
use serde::Serialize;

use crate::config::Config;
use crate::migrate::{Migration, Step};
use crate::spec::CollectionSpec;
use crate::tenancy::{Placement, Target};
use fixtures::{DemoTenant, SeedFile, PASSWORD_PLACEHOLDER};
use generate::{Docs, Gen};

pub use fixtures::SEED_FILE;

/// Where the seed runs are recorded (an internal collection of the platform database).
pub const RUNS: &str = "caas_seed_runs";

/// Documents per insert_many.
const BATCH: usize = 1_000;

pub struct SeedOptions {
    pub seed_value: u64,
    pub scale: u32,
    /// Demo tenants to seed (by id); empty: all of the file's.
    pub tenants: Vec<String>,
    pub tiers: Vec<crate::tenancy::Tier>,
    pub concurrency: usize,
}

/// Counts for one physical collection.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    pub target: String,
    pub namespace: String,
    pub inserted: u64,
    pub unchanged: u64,
    pub failed: u64,
    /// The first rejections, readable (collection, target, failing rule).
    pub errors: Vec<String>,
}

/// A batch of documents bound for one physical collection.
pub struct Batch {
    pub target: Target,
    pub placement: Placement,
    pub logical: String,
    pub time_series: bool,
    pub docs: Vec<Document>,
}

/// The demo tenants a run covers.
pub fn selected<'a>(file: &'a SeedFile, opts: &SeedOptions) -> Result<Vec<&'a DemoTenant>> {
    for id in &opts.tenants {
        if !file.tenants.iter().any(|t| &t.id == id) {
            let known: Vec<&str> = file.tenants.iter().map(|t| t.id.as_str()).collect();
            bail!(
                "`{id}` is not a demo tenant of {SEED_FILE}; demo tenants: {}",
                known.join(", ")
            );
        }
    }
    Ok(file
        .tenants
        .iter()
        .filter(|t| {
            (opts.tenants.is_empty() && opts.tiers.is_empty())
                || opts.tenants.contains(&t.id)
                || opts.tiers.contains(&t.tier())
        })
        .collect())
}

/// argon2id of the demo password with a salt derived from (seed, tenant): unique per tenant,
/// and one hash serves all of a tenant's demo accounts (hashing thousands at `--scale`
/// would cost minutes and prove nothing more).
pub fn password_hash(password: &str, seed: u64, tenant: &str) -> String {
    let mut r = rng::Rng::new(seed, &format!("salt:{tenant}"));
    let salt = r.bytes(16);
    argon2::Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .expect("argon2 hashes")
        .to_string()
}

/// Generate every batch: platform documents, then each tenant's, placed on their targets
/// and given the specs' BSON types.
pub fn batches(
    config: &Config,
    specs: &[&CollectionSpec],
    file: &SeedFile,
    tenants: &[&DemoTenant],
    opts: &SeedOptions,
    plan_ids: &BTreeMap<String, ObjectId>,
    hash: bool,
) -> Result<Vec<Batch>> {
    let hashes: BTreeMap<String, String> = if hash {
        tenants
            .iter()
            .map(|t| t.id.as_str())
            .chain([""])
            .map(|t| {
                (
                    t.to_owned(),
                    password_hash(&file.password, opts.seed_value, t),
                )
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    let hash_of = |t: &str| {
        hashes
            .get(t)
            .cloned()
            .unwrap_or_else(|| "$argon2id$not-hashed".into())
    };
    let gen = Gen {
        seed: opts.seed_value,
        scale: opts.scale,
        file,
        password_hash: &hash_of,
        plan_ids,
    };
    let mut out = Vec::new();
    let mut platform = if file.generator.is_some() {
        gen.platform()
    } else {
        Docs::new()
    };
    add_fixtures(
        &mut platform,
        &file.platform,
        opts.seed_value,
        "",
        file,
        &hash_of(""),
    );
    place(&mut out, config, specs, &Target::platform(), platform)?;
    for t in tenants {
        let mut docs = if file.generator.is_some() {
            gen.tenant(t)
        } else {
            Docs::new()
        };
        add_fixtures(
            &mut docs,
            &file.tenant,
            opts.seed_value,
            &t.id,
            file,
            &hash_of(&t.id),
        );
        let target = Target::for_tenant(&t.id, t.tier(), config.tiers.layout(t.tier()));
        place(&mut out, config, specs, &target, docs)?;
    }
    Ok(out)
}

/// Fixture documents: a stable `_id`, the tenant, the hashed password, and references:
/// `'{{ref:<collection>:<index>}}'` becomes the `_id` of that fixture document.
fn add_fixtures(
    docs: &mut Docs,
    fixtures: &indexmap::IndexMap<String, Vec<serde_json::Map<String, serde_json::Value>>>,
    seed: u64,
    tenant: &str,
    file: &SeedFile,
    hash: &str,
) {
    let at = file.anchor();
    let id_of = |coll: &str, i: u64| rng::oid(seed, tenant, &format!("fixture:{coll}"), i, at);
    for (coll, list) in fixtures {
        for (i, f) in list.iter().enumerate() {
            let mut d = crate::compile::json_to_bson(&serde_json::Value::Object(f.clone()))
                .as_document()
                .cloned()
                .unwrap_or_default();
            resolve_placeholders(&mut d, hash, &id_of);
            let mut full = doc! { "_id": id_of(coll, i as u64) };
            full.extend(d);
            // Placement is caas's: it wins over anything the fixture says (the loader
            // refuses such fixtures; this keeps a library caller safe too).
            full.insert("_id", id_of(coll, i as u64));
            if !tenant.is_empty() {
                full.insert("tenant_id", tenant);
            }
            docs.entry(coll.clone()).or_default().push(full);
        }
    }
}

fn resolve_placeholders(d: &mut Document, hash: &str, id_of: &dyn Fn(&str, u64) -> ObjectId) {
    fn walk(v: &mut Bson, hash: &str, id_of: &dyn Fn(&str, u64) -> ObjectId) {
        match v {
            Bson::String(s) if s == PASSWORD_PLACEHOLDER => *v = Bson::String(hash.to_owned()),
            Bson::String(s) if s.starts_with("{{ref:") && s.ends_with("}}") => {
                let inner = &s[6..s.len() - 2];
                if let Some((coll, i)) = inner.rsplit_once(':') {
                    if let Ok(i) = i.parse() {
                        *v = Bson::ObjectId(id_of(coll, i));
                    }
                }
            }
            Bson::Document(d) => d.iter_mut().for_each(|(_, x)| walk(x, hash, id_of)),
            Bson::Array(a) => a.iter_mut().for_each(|x| walk(x, hash, id_of)),
            _ => {}
        }
    }
    d.iter_mut().for_each(|(_, v)| walk(v, hash, id_of));
}

fn place(
    out: &mut Vec<Batch>,
    config: &Config,
    specs: &[&CollectionSpec],
    target: &Target,
    docs: Docs,
) -> Result<()> {
    for (logical, mut list) in docs {
        // Platform-side collections of a tenant (applications, billing, ...) live in the platform target.
        let spec = specs
            .iter()
            .find(|s| s.collection == logical)
            .with_context(|| format!("{SEED_FILE}: no spec declares collection `{logical}`"))?;
        let t = if target.holds(spec) {
            target.clone()
        } else {
            Target::platform()
        };
        let placement = t.place(spec, &config.databases);
        let anchor = bson::DateTime::now();
        let [created, updated, _] = spec.standard_field_names();
        // Implied fields (soft delete, standard fields) get their types too.
        let fields: indexmap::IndexMap<String, crate::spec::Field> = spec
            .effective_fields(None)
            .into_iter()
            .map(|(k, (f, _))| (k, f))
            .collect();
        for d in &mut list {
            crate::compile::coerce(d, &fields);
            for name in [&created, &updated].into_iter().flatten() {
                if !d.contains_key(name) {
                    d.insert(
                        name.clone(),
                        d.get_object_id("_id")
                            .map(|o| bson::DateTime::from_millis(o.timestamp().timestamp_millis()))
                            .unwrap_or(anchor),
                    );
                }
            }
            if spec.fields.contains_key("demo") && !d.contains_key("demo") {
                d.insert("demo", true);
            }
        }
        out.push(Batch {
            target: t,
            placement,
            logical,
            time_series: spec.time_series.is_some(),
            docs: list,
        });
    }
    Ok(())
}

/// Insert every batch (unordered, `BATCH` at a time, `concurrency` at once). `rerun`: an
/// earlier run may have inserted some of these documents (time series, which do not
/// enforce `_id` uniqueness, are then checked first). Existing
/// documents (same `_id` or natural key) count as unchanged; rejected ones are reported
/// with the failing rule, and the run goes on.
pub async fn insert(
    client: &Client,
    batches: Vec<Batch>,
    concurrency: usize,
    rerun: bool,
    on_progress: &(dyn Fn(u64) + Sync),
) -> Vec<Row> {
    let mut jobs = Vec::new();
    for b in &batches {
        for chunk in b.docs.chunks(BATCH) {
            jobs.push((b, chunk));
        }
    }
    let results: Vec<(String, String, Row)> = futures::stream::iter(jobs)
        .map(|(b, chunk)| async move {
            let row = insert_chunk(client, b, chunk, rerun).await;
            on_progress(chunk.len() as u64);
            (
                b.target.to_string(),
                format!("{}.{}", b.placement.database, b.placement.collection),
                row,
            )
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    for (target, ns, r) in results {
        let row = rows
            .entry((target.clone(), ns.clone()))
            .or_insert_with(|| Row {
                target,
                namespace: ns,
                ..Default::default()
            });
        row.inserted += r.inserted;
        row.unchanged += r.unchanged;
        row.failed += r.failed;
        row.errors.extend(r.errors);
        row.errors.truncate(5);
    }
    rows.into_values().collect()
}

async fn insert_chunk(client: &Client, b: &Batch, chunk: &[Document], rerun: bool) -> Row {
    let coll = client
        .database(&b.placement.database)
        .collection::<Document>(&b.placement.collection);
    let mut row = Row::default();
    let mut docs: Vec<&Document> = chunk.iter().collect();
    if b.time_series && rerun {
        // Time series do not enforce `_id` uniqueness: skip what a previous run inserted.
        let ids: Vec<Bson> = docs.iter().filter_map(|d| d.get("_id").cloned()).collect();
        let existing: Vec<Document> = match coll
            .find(doc! { "_id": { "$in": ids } })
            .projection(doc! { "_id": 1 })
            .await
        {
            Ok(c) => c.try_collect().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let existing: Vec<&Bson> = existing.iter().filter_map(|d| d.get("_id")).collect();
        docs.retain(|d| !d.get("_id").is_some_and(|id| existing.contains(&id)));
        row.unchanged += (chunk.len() - docs.len()) as u64;
    }
    if docs.is_empty() {
        return row;
    }
    match coll.insert_many(docs.iter().copied()).ordered(false).await {
        Ok(r) => row.inserted += r.inserted_ids.len() as u64,
        Err(e) => {
            match e.kind.as_ref() {
                ErrorKind::InsertMany(im) => {
                    let errors = im.write_errors.as_deref().unwrap_or_default();
                    for w in errors {
                        if w.code == 11000 {
                            row.unchanged += 1;
                        } else {
                            row.failed += 1;
                            if row.errors.len() < 5 {
                                let reasons = w
                                    .details
                                    .as_ref()
                                    .map(crate::base::driver::validation_reasons)
                                    .unwrap_or_default();
                                let id = docs
                                    .get(w.index)
                                    .and_then(|d| d.get("_id"))
                                    .map(|v| v.to_string())
                                    .unwrap_or_default();
                                let why = if reasons.is_empty() {
                                    w.message.clone()
                                } else {
                                    reasons.join("; ")
                                };
                                row.errors.push(format!("{}.{} ({}, target {}): document {id} rejected (code {}): {why}", b.placement.database, b.placement.collection, b.logical, b.target, w.code));
                            }
                        }
                    }
                    row.inserted += (docs.len() - errors.len()) as u64;
                }
                ErrorKind::Write(WriteFailure::WriteError(w)) => {
                    row.failed += docs.len() as u64;
                    row.errors.push(format!(
                        "{}.{}: {}",
                        b.placement.database, b.placement.collection, w.message
                    ));
                }
                _ => {
                    row.failed += docs.len() as u64;
                    row.errors.push(format!(
                        "{}.{} (target {}): {}",
                        b.placement.database,
                        b.placement.collection,
                        b.target,
                        crate::base::driver::describe(&e)
                    ));
                }
            }
        }
    }
    row
}

/// Seeded documents (by `_id`) that an applied migration has since taken over: its
/// `insert_documents` step upserted a document with the same key (V0003's plan catalogue
/// over seeded plans). `--reset` keeps them, or the ledger would say the migration is
/// applied while its documents are gone. Returns `_id` -> the migration.
pub fn taken_over(
    docs: &[Document],
    logical: &str,
    applied: &[&Migration],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for m in applied {
        for step in &m.body.up {
            let Step::InsertDocuments(ins) = step else {
                continue;
            };
            if ins.collection != logical {
                continue;
            }
            let keys: Vec<Document> = ins
                .documents
                .iter()
                .map(|d| {
                    let d = crate::compile::json_to_bson(&serde_json::Value::Object(d.clone()));
                    let d = d.as_document().cloned().unwrap_or_default();
                    ins.key
                        .iter()
                        .map(|k| (k.clone(), d.get(k).cloned().unwrap_or(Bson::Null)))
                        .collect()
                })
                .collect();
            for seeded in docs {
                let key: Document = ins
                    .key
                    .iter()
                    .map(|k| (k.clone(), seeded.get(k).cloned().unwrap_or(Bson::Null)))
                    .collect();
                if keys.contains(&key) {
                    if let Some(id) = seeded.get("_id") {
                        out.insert(id.to_string(), format!("V{:04}__{}", m.version, m.name));
                    }
                }
            }
        }
    }
    out
}
