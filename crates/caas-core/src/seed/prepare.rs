//! Before any document goes in: the demo tenants registered (fenced by the seed lease),
//! their targets created with validators and indexes, the run recorded for `--reset`, and
//! the live plan ids that generated subscriptions point at.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use bson::oid::ObjectId;
use bson::{doc, Document};
use futures::TryStreamExt;
use mongodb::{Client, ClientSession};

use super::fixtures::DemoTenant;
use super::generate::PLAN_CODES;
use super::{SeedOptions, RUNS, SEED_FILE};
use crate::apply::{ApplyOptions, Status};
use crate::config::Config;
use crate::fleet::registry;
use crate::migrate::lock::{Fence, FenceError};
use crate::spec::CollectionSpec;
use crate::tenancy::Target;

/// Create the demo tenants' targets with their validators and indexes (the platform's
/// too) before any data goes in: plan them against the live state and apply.
pub async fn prepare_targets(
    conn: &crate::connect::Connection,
    config: &Config,
    specs: &[&CollectionSpec],
    tenants: &[&DemoTenant],
    concurrency: usize,
) -> Result<()> {
    let all = registry::list(&conn.client.database(&config.databases.platform), config).await?;
    let mut targets = vec![Target::platform()];
    for t in tenants {
        let target = Target::for_tenant(&t.id, t.tier(), config.tiers.layout(t.tier()));
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    let fleet = crate::fleet::Fleet {
        tenants: all,
        targets,
        retired: vec![],
    };
    let compiled = crate::fleet::desired(specs, &fleet, config);
    let plans = crate::fleet::plan(conn, config, &fleet, specs, &compiled, concurrency).await?;
    if plans.plans.iter().any(|p| p.declared().next().is_some()) {
        let reports = crate::apply::apply(
            &conn.client,
            plans.plans,
            ApplyOptions {
                concurrency,
                ..Default::default()
            },
            &|_| {},
        )
        .await;
        if let Some(r) = reports.iter().find(|r| r.status == Status::Failed) {
            bail!(
                "could not prepare target {} for demo data: {}",
                r.target,
                r.error.clone().unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// Register the demo tenants that are missing, each in one fenced write with its
/// `demo: true` flag (a seed killed at any point leaves either no entry or a demo one). A
/// registered tenant with the same id that is not a demo tenant is left alone and is an error.
pub async fn register(
    client: &Client,
    config: &Config,
    tenants: &[&DemoTenant],
    fence: &Fence,
    session: &mut ClientSession,
) -> Result<usize> {
    let db = client.database(&config.databases.platform);
    let coll = db.collection::<Document>(registry::REGISTRY);
    registry::ensure_unique_index(&db).await?;
    let mut added = 0;
    for t in tenants {
        match coll.find_one(doc! { "tenant_id": &t.id }).await? {
            Some(existing) if existing.get_bool("demo") != Ok(true) => {
                bail!("tenant `{}` is registered but is not a demo tenant; seed refuses to write into it (rename the demo tenant in {SEED_FILE})", t.id)
            }
            Some(_) => {}
            None => {
                let about = registry::About {
                    name: Some(&t.name),
                    email: t.email.as_deref(),
                    region: None,
                };
                let mut d = registry::prepare(config, &t.id, t.tier(), about)?;
                d.insert("demo", true);
                let inserted = fence
                    .txn(session, async |s| {
                        coll.insert_one(&d).session(s).await?;
                        Ok(Some(()))
                    })
                    .await;
                match inserted {
                    Ok(_) => added += 1,
                    Err(FenceError::Server(e)) => {
                        return Err(registry::insert_error(&db, &t.id, &e).await)
                    }
                    Err(lost) => return Err(lost.into()),
                }
            }
        }
    }
    Ok(added)
}

/// The live plans' ids by code, so subscriptions reference real plan documents.
pub async fn plan_ids(
    client: &Client,
    config: &Config,
    specs: &[&CollectionSpec],
) -> Result<BTreeMap<String, ObjectId>> {
    let Some(spec) = specs.iter().find(|s| s.collection == "plans") else {
        return Ok(BTreeMap::new());
    };
    let p = Target::platform().place(spec, &config.databases);
    let docs: Vec<Document> = client
        .database(&p.database)
        .collection::<Document>(&p.collection)
        .find(doc! { "code": { "$in": PLAN_CODES.to_vec() } })
        .await?
        .try_collect()
        .await?;
    Ok(docs
        .iter()
        .filter_map(|d| {
            Some((
                d.get_str("code").ok()?.to_owned(),
                d.get_object_id("_id").ok()?,
            ))
        })
        .collect())
}

/// Record a run so `--reset` can recompute what it seeded (fenced by the seed lease).
/// Returns whether an earlier run with the same seed value and scale was recorded (if
/// not, none of its documents exist).
pub async fn record_run(
    client: &Client,
    config: &Config,
    opts: &SeedOptions,
    tenants: &[&DemoTenant],
    fence: &Fence,
    session: &mut ClientSession,
) -> Result<bool> {
    let ids: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
    let runs = client
        .database(&config.databases.platform)
        .collection::<Document>(RUNS);
    let matched = fence
        .txn(session, async |s| {
            let r = runs
                .update_one(
                    doc! { "_id": format!("{}:{}", opts.seed_value, opts.scale) },
                    doc! { "$set": { "seed_value": opts.seed_value as i64, "scale": opts.scale as i64, "at": bson::DateTime::now() }, "$addToSet": { "tenants": { "$each": ids.clone() } } },
                )
                .upsert(true)
                .session(s)
                .await?;
            Ok(Some(r.matched_count > 0))
        })
        .await?;
    Ok(matched == Some(true))
}
