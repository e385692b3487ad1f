//! Read the live state of the databases a run covers: one `listCollections` per database
//! and one `listIndexes` per collection caas cares about, run concurrently.

pub mod cluster;
pub mod normalize;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use bson::{doc, Document, RawBsonRef, RawDocument, RawDocumentBuf};
use futures::{StreamExt, TryStreamExt};
use mongodb::Client;

/// A collection as the server reports it. Its options and indexes are kept as the server's
/// BSON bytes (checked when read) and parsed when a plan looks at them: a fleet's shared
/// database holds every Pro set, thousands of validators, and as `Document` trees they took
/// about ten times the bytes the server sent.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveCollection {
    pub name: String,
    /// `collection`, `timeseries` or `view`.
    pub kind: String,
    options: RawDocumentBuf,
    /// listIndexes entries, without the `_id_` index. `None` when not read.
    indexes: Option<Vec<RawDocumentBuf>>,
}

impl LiveCollection {
    /// A collection with these options and (when read) indexes.
    pub fn new(
        name: impl Into<String>,
        kind: impl Into<String>,
        options: &Document,
        indexes: Option<&[Document]>,
    ) -> LiveCollection {
        let raw =
            |d: &Document| RawDocumentBuf::from_document(d).expect("a Document is valid BSON");
        LiveCollection {
            name: name.into(),
            kind: kind.into(),
            options: raw(options),
            indexes: indexes.map(|list| list.iter().map(raw).collect()),
        }
    }

    /// The `options` of its listCollections entry.
    pub fn options(&self) -> Document {
        parse(&self.options)
    }

    /// Its indexes (without `_id_`), or `None` when they were not read.
    pub fn indexes(&self) -> Option<Vec<Document>> {
        self.indexes
            .as_ref()
            .map(|list| list.iter().map(|i| parse(i)).collect())
    }

    /// How many indexes it has besides `_id_`, when they were read.
    pub fn index_count(&self) -> Option<usize> {
        self.indexes.as_ref().map(Vec::len)
    }

    /// Change its options (tests build live states this way).
    pub fn edit_options(&mut self, edit: impl FnOnce(&mut Document)) {
        let mut options = self.options();
        edit(&mut options);
        *self = LiveCollection::new(&self.name, &self.kind, &options, self.indexes().as_deref());
    }

    /// Change its indexes (tests build live states this way).
    pub fn edit_indexes(&mut self, edit: impl FnOnce(&mut Vec<Document>)) {
        let mut indexes = self.indexes().unwrap_or_default();
        edit(&mut indexes);
        *self = LiveCollection::new(&self.name, &self.kind, &self.options(), Some(&indexes));
    }
}

/// Parse bytes that [`checked`] accepted (or that came from a `Document`).
fn parse(raw: &RawDocument) -> Document {
    Document::try_from(raw).expect("live BSON is checked when it is read")
}

/// Walk every element of a server document, so that a malformed one is an error when it is
/// read, naming where, instead of a surprise when a plan parses it.
fn checked(raw: &RawDocument, what: &dyn Fn() -> String) -> Result<RawDocumentBuf> {
    fn walk(value: RawBsonRef<'_>) -> Result<(), bson::raw::Error> {
        match value {
            RawBsonRef::Document(d) => d.into_iter().try_for_each(|e| walk(e?.1)),
            RawBsonRef::Array(a) => a.into_iter().try_for_each(|v| walk(v?)),
            RawBsonRef::JavaScriptCodeWithScope(c) => walk(RawBsonRef::Document(c.scope)),
            _ => Ok(()),
        }
    }
    walk(RawBsonRef::Document(raw))
        .with_context(|| format!("malformed BSON from the server in {}", what()))?;
    Ok(raw.to_raw_document_buf())
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
    let listed: Vec<RawDocumentBuf> = {
        let _permit = permits.acquire().await.expect("semaphore");
        client
            .database(&db)
            .run_cursor_command(doc! { "listCollections": 1, "nameOnly": false })
            .await
            .with_context(|| format!("listCollections on database {db}"))?
            .with_type::<RawDocumentBuf>()
            .try_collect()
            .await
            .with_context(|| format!("listCollections on database {db}"))?
    };
    let mut colls = BTreeMap::new();
    for entry in &listed {
        let Ok(name) = entry.get_str("name") else {
            continue;
        };
        let options = match entry.get_document("options") {
            Ok(o) => checked(o, &|| format!("the listCollections entry of {db}.{name}"))?,
            Err(_) => RawDocumentBuf::new(),
        };
        let kind = entry.get_str("type").unwrap_or("collection");
        colls.insert(
            name.to_owned(),
            LiveCollection {
                name: name.to_owned(),
                kind: kind.to_owned(),
                options,
                indexes: None,
            },
        );
    }
    drop(listed);
    let jobs: Vec<String> = colls
        .values()
        .filter(|c| {
            c.kind != "view"
                && !c.name.starts_with("system.")
                && wanted.contains(&(db.clone(), c.name.clone()))
        })
        .map(|c| c.name.clone())
        .collect();
    let indexes: Vec<(String, Vec<RawDocumentBuf>)> = futures::stream::iter(jobs)
        .map(|coll| {
            let db = &db;
            async move {
                let _permit = permits.acquire().await.expect("semaphore");
                let list: Vec<RawDocumentBuf> = client
                    .database(db)
                    .run_cursor_command(doc! { "listIndexes": &coll })
                    .await
                    .with_context(|| format!("listIndexes on {db}.{coll}"))?
                    .with_type::<RawDocumentBuf>()
                    .try_collect()
                    .await
                    .with_context(|| format!("listIndexes on {db}.{coll}"))?;
                let mut kept = Vec::with_capacity(list.len());
                for ix in list.iter().filter(|i| i.get_str("name") != Ok("_id_")) {
                    kept.push(checked(ix, &|| format!("an index of {db}.{coll}"))?);
                }
                Ok::<_, anyhow::Error>((coll, kept))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_indexes_read_back_as_given() {
        let options = doc! { "validator": { "$jsonSchema": { "required": ["a", "b"] } } };
        let indexes = [doc! { "v": 2, "key": { "a": 1 }, "name": "a_1" }];
        let c = LiveCollection::new("things", "collection", &options, Some(&indexes));
        assert_eq!(c.options(), options);
        assert_eq!(c.indexes().as_deref(), Some(&indexes[..]));
        assert_eq!(c.index_count(), Some(1));
        let unread = LiveCollection::new("things", "collection", &options, None);
        assert_eq!((unread.indexes(), unread.index_count()), (None, None));
    }

    #[test]
    fn malformed_bson_is_refused_when_read_naming_where() {
        let good = RawDocumentBuf::from_document(&doc! { "v": { "deep": [1, "x"] } }).unwrap();
        assert!(checked(&good, &|| "here".into()).is_ok());
        // The nested string claims more bytes than it has: the outer framing is intact, so
        // only a walk of every element finds it.
        let mut bytes = good.into_bytes();
        // "x" is the only string: its length is the int32 2 (with its NUL).
        let at = bytes.windows(4).position(|w| w == [2, 0, 0, 0]);
        bytes[at.expect("the string's length")] = 0x7f;
        let bad = RawDocument::from_bytes(&bytes).expect("outer framing still valid");
        let err = checked(bad, &|| "the listCollections entry of db.things".into()).unwrap_err();
        assert!(
            format!("{err:#}").contains("the listCollections entry of db.things"),
            "{err:#}"
        );
    }
}
