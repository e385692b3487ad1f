//! Read the live state of the databases a run covers: one `listCollections` per database
//! and one `listIndexes` per collection caas cares about, run concurrently.

pub mod normalize;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use bson::{doc, Document};
use futures::{StreamExt, TryStreamExt};
use mongodb::Client;

/// A collection as the server reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveCollection {
    pub name: String,
    /// `collection`, `timeseries` or `view`.
    pub kind: String,
    pub options: Document,
    /// listIndexes entries, without the `_id_` index. `None` when not read.
    pub indexes: Option<Vec<Document>>,
}

/// Live collections by database and name.
pub type LiveState = BTreeMap<String, BTreeMap<String, LiveCollection>>;

/// Collections caas keeps for itself (ledger, locks); never reported as undeclared.
pub fn is_internal(name: &str) -> bool {
    name.starts_with("system.") || name.starts_with("caas_")
}

/// Read every database in `databases`; list indexes of the collections `wants_indexes`
/// accepts. Work runs `concurrency` commands at a time.
pub async fn read(
    client: &Client,
    databases: &BTreeSet<String>,
    wants_indexes: impl Fn(&str, &str) -> bool,
    concurrency: usize,
) -> Result<LiveState> {
    let listed: Vec<(String, Vec<LiveCollection>)> =
        futures::stream::iter(databases.iter().cloned())
            .map(|db| async move {
                let specs: Vec<Document> = client
                    .database(&db)
                    .run_cursor_command(doc! { "listCollections": 1, "nameOnly": false })
                    .await
                    .with_context(|| format!("listCollections on database {db}"))?
                    .try_collect()
                    .await
                    .with_context(|| format!("listCollections on database {db}"))?;
                let colls = specs
                    .into_iter()
                    .filter_map(|s| {
                        let name = s.get_str("name").ok()?.to_owned();
                        Some(LiveCollection {
                            kind: s.get_str("type").unwrap_or("collection").to_owned(),
                            options: s.get_document("options").cloned().unwrap_or_default(),
                            indexes: None,
                            name,
                        })
                    })
                    .collect();
                Ok::<_, anyhow::Error>((db, colls))
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;

    let mut state: LiveState = BTreeMap::new();
    let mut jobs = Vec::new();
    for (db, colls) in listed {
        let entry = state.entry(db.clone()).or_default();
        for c in colls {
            if c.kind != "view" && !c.name.starts_with("system.") && wants_indexes(&db, &c.name) {
                jobs.push((db.clone(), c.name.clone()));
            }
            entry.insert(c.name.clone(), c);
        }
    }
    let indexes: Vec<(String, String, Vec<Document>)> = futures::stream::iter(jobs)
        .map(|(db, coll)| async move {
            let list: Vec<Document> = client
                .database(&db)
                .run_cursor_command(doc! { "listIndexes": &coll })
                .await
                .with_context(|| format!("listIndexes on {db}.{coll}"))?
                .try_collect()
                .await
                .with_context(|| format!("listIndexes on {db}.{coll}"))?;
            let list = list
                .into_iter()
                .filter(|i| i.get_str("name") != Ok("_id_"))
                .collect();
            Ok::<_, anyhow::Error>((db, coll, list))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    for (db, coll, list) in indexes {
        if let Some(c) = state.get_mut(&db).and_then(|d| d.get_mut(&coll)) {
            c.indexes = Some(list);
        }
    }
    Ok(state)
}
