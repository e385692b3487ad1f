//! The reads `caas schema pull` makes beyond listing: the registry, a sample per logical
//! collection, the inferred validator's check on it, a shared collection's tenants.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use bson::{doc, Bson, Document};
use futures::TryStreamExt;

use super::infer::Sample;
use super::layout::Copy;
use crate::config::Config;
use crate::connect::Connection;
use crate::spec::CollectionSpec;
use crate::tenancy::{Placement, Tier};

/// `$sample` of one copy into `s`; the sampled `_id`s.
pub async fn sample(
    conn: &Connection,
    copy: &Copy,
    size: usize,
    s: &mut Sample,
) -> Result<Vec<Bson>> {
    let coll = conn
        .client
        .database(&copy.database)
        .collection::<Document>(&copy.collection);
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    let mut cursor = coll
        .aggregate(vec![doc! { "$sample": { "size": size } }])
        .await
        .with_context(|| format!("$sample on {}.{}", copy.database, copy.collection))?;
    let mut ids = Vec::new();
    while let Some(d) = cursor
        .try_next()
        .await
        .with_context(|| format!("$sample on {}.{}", copy.database, copy.collection))?
    {
        s.observe(&d);
        if let Some(id) = d.get("_id") {
            ids.push(id.clone());
        }
    }
    Ok(ids)
}

/// How many of the sampled documents the spec's compiled validator refuses.
pub async fn refused(
    conn: &Connection,
    copy: &Copy,
    spec: &CollectionSpec,
    placement: &Placement,
    ids: &[Bson],
) -> Result<u64> {
    let compiled = crate::compile::compile_collection(spec, placement.clone());
    let Some(validator) = compiled.options.validator else {
        return Ok(0);
    };
    let coll = conn
        .client
        .database(&copy.database)
        .collection::<Document>(&copy.collection);
    coll.count_documents(doc! { "_id": { "$in": ids }, "$nor": [validator] })
        .await
        .with_context(|| {
            format!(
                "checking the inferred validator on {}.{}",
                copy.database, copy.collection
            )
        })
}

/// The tenant ids of a shared collection (at most 100,000).
pub async fn distinct_tenants(conn: &Connection, copy: &Copy) -> Result<Vec<String>> {
    let coll = conn
        .client
        .database(&copy.database)
        .collection::<Document>(&copy.collection);
    let mut cursor = coll
        .aggregate(vec![
            doc! { "$group": { "_id": "$tenant_id" } },
            doc! { "$limit": 100_000 },
        ])
        .await
        .with_context(|| {
            format!(
                "reading the tenants of {}.{}",
                copy.database, copy.collection
            )
        })?;
    let mut out = Vec::new();
    while let Some(d) = cursor.try_next().await? {
        if let Ok(t) = d.get_str("_id") {
            out.push(t.to_owned());
        }
    }
    Ok(out)
}

/// The registry's tenant ids and tiers, when there is one (a missing or odd registry is
/// an empty one here: pull adopts deployments that have none).
pub async fn registered_tenants(
    client: &mongodb::Client,
    config: &Config,
) -> BTreeMap<String, Tier> {
    let coll = client
        .database(&config.databases.platform)
        .collection::<Document>(crate::fleet::registry::REGISTRY);
    let Ok(cursor) = coll
        .find(doc! {})
        .projection(doc! { "tenant_id": 1, "tier": 1 })
        .await
    else {
        return BTreeMap::new();
    };
    let docs: Vec<Document> = cursor.try_collect().await.unwrap_or_default();
    docs.iter()
        .filter_map(|d| {
            let id = d.get_str("tenant_id").ok()?;
            let tier: Tier = d.get_str("tier").ok()?.parse().ok()?;
            Some((id.to_owned(), tier))
        })
        .collect()
}
