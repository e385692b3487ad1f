//! Read the live state of the databases a run covers: one `listCollections` per database
//! and one `listIndexes` per collection caas cares about, run concurrently.

pub mod cluster;
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

/// Which collections to list indexes of: `(database, collection)` pairs.
pub type Wanted = BTreeSet<(String, String)>;

/// Read every database in `databases`; list indexes of the `wanted` collections. Work runs
/// `concurrency` commands at a time.
pub async fn read(
    client: &Client,
    databases: &BTreeSet<String>,
    wanted: Wanted,
    concurrency: usize,
) -> Result<LiveState> {
    let mut rx = read_stream(
        client.clone(),
        databases.iter().cloned().collect(),
        wanted,
        concurrency,
    );
    let mut state = LiveState::new();
    while let Some(db) = rx.recv().await {
        let (name, colls) = db?;
        state.insert(name, colls);
    }
    Ok(state)
}

/// Read the databases in the order given and hand each one over, complete, as soon as it
/// and the ones before it are read: the caller plans the first targets while later
/// databases are still being read. `concurrency` commands are in flight at a time across
/// all databases (one `listCollections` per database, one `listIndexes` per wanted
/// collection). The reader stays a few databases ahead of the caller, no more.
pub fn read_stream(
    client: Client,
    databases: Vec<String>,
    wanted: Wanted,
    concurrency: usize,
) -> tokio::sync::mpsc::Receiver<Result<(String, BTreeMap<String, LiveCollection>)>> {
    let concurrency = concurrency.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel(concurrency * 2);
    tokio::spawn(async move {
        let permits = tokio::sync::Semaphore::new(concurrency);
        let mut dbs = futures::stream::iter(databases)
            .map(|db| read_database(&client, db, &wanted, &permits, concurrency))
            .buffered(concurrency);
        while let Some(db) = dbs.next().await {
            if let Ok((name, colls)) = &db {
                tracing::debug!(database = %name, collections = colls.len(), "inspect: database read");
            }
            let failed = db.is_err();
            if tx.send(db).await.is_err() || failed {
                break;
            }
        }
    });
    rx
}

async fn read_database(
    client: &Client,
    db: String,
    wanted: &Wanted,
    permits: &tokio::sync::Semaphore,
    concurrency: usize,
) -> Result<(String, BTreeMap<String, LiveCollection>)> {
    let listed: Vec<Document> = {
        let _permit = permits.acquire().await.expect("semaphore");
        client
            .database(&db)
            .run_cursor_command(doc! { "listCollections": 1, "nameOnly": false })
            .await
            .with_context(|| format!("listCollections on database {db}"))?
            .try_collect()
            .await
            .with_context(|| format!("listCollections on database {db}"))?
    };
    let mut colls: BTreeMap<String, LiveCollection> = listed
        .into_iter()
        .filter_map(|s| {
            let name = s.get_str("name").ok()?.to_owned();
            Some((
                name.clone(),
                LiveCollection {
                    kind: s.get_str("type").unwrap_or("collection").to_owned(),
                    options: s.get_document("options").cloned().unwrap_or_default(),
                    indexes: None,
                    name,
                },
            ))
        })
        .collect();
    let jobs: Vec<String> = colls
        .values()
        .filter(|c| {
            c.kind != "view"
                && !c.name.starts_with("system.")
                && wanted.contains(&(db.clone(), c.name.clone()))
        })
        .map(|c| c.name.clone())
        .collect();
    let indexes: Vec<(String, Vec<Document>)> = futures::stream::iter(jobs)
        .map(|coll| {
            let db = &db;
            async move {
                let _permit = permits.acquire().await.expect("semaphore");
                let list: Vec<Document> = client
                    .database(db)
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
                Ok::<_, anyhow::Error>((coll, list))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    for (coll, list) in indexes {
        if let Some(c) = colls.get_mut(&coll) {
            c.indexes = Some(list);
        }
    }
    Ok((db, colls))
}
