//! A sharded cluster as its config database shows it: shards and their zones, sharded
//! collections and their keys, zone ranges, database primaries, and where unsharded
//! collections that were moved live. Read only on a mongos (`hello.msg == "isdbgrid"`);
//! parsed by pure functions from documents shaped as MongoDB stores them (MongoDB manual,
//! "Config Database": `config.shards`, `config.collections`, `config.tags`,
//! `config.databases`, `config.chunks`).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use mongodb::Client;

/// One shard and the zones it is in.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardInfo {
    pub id: String,
    pub zones: Vec<String>,
}

/// A collection the cluster tracks: sharded, or (8.0+) unsharded but moved
/// (`unsplittable`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedCollection {
    pub key: Document,
    pub unique: bool,
    pub unsplittable: bool,
}

/// A zone's key range on one namespace, `[min, max)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneRange {
    pub namespace: String,
    pub min: Document,
    pub max: Document,
    pub zone: String,
}

/// What the config database says, for planning.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterState {
    pub shards: Vec<ShardInfo>,
    pub collections: BTreeMap<String, TrackedCollection>,
    pub zone_ranges: Vec<ZoneRange>,
    /// Database name -> primary shard.
    pub primaries: BTreeMap<String, String>,
    /// Unsplittable namespace -> the shard holding it.
    pub placed: BTreeMap<String, String>,
    /// The server's major version (8 and later can move unsharded collections).
    pub major_version: u32,
}

/// The config database's documents, one list per collection.
#[derive(Debug, Default)]
pub struct ConfigDocs {
    pub shards: Vec<Document>,
    pub collections: Vec<Document>,
    pub tags: Vec<Document>,
    pub databases: Vec<Document>,
    pub chunks: Vec<Document>,
}

fn text(d: &Document, key: &str, what: &str) -> Result<String, String> {
    d.get_str(key)
        .map(str::to_owned)
        .map_err(|_| format!("{what}: `{key}` is missing or not a string in {d}"))
}

impl ClusterState {
    /// Parse the config documents; `major_version` from `buildInfo`.
    pub fn from_config(docs: &ConfigDocs, major_version: u32) -> Result<ClusterState, String> {
        let mut state = ClusterState {
            major_version,
            ..ClusterState::default()
        };
        for s in &docs.shards {
            let zones = s
                .get_array("tags")
                .map(|t| {
                    t.iter()
                        .filter_map(Bson::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            state.shards.push(ShardInfo {
                id: text(s, "_id", "config.shards")?,
                zones,
            });
        }
        let mut by_uuid = BTreeMap::new();
        for c in &docs.collections {
            let ns = text(c, "_id", "config.collections")?;
            if c.get_bool("dropped").unwrap_or(false) {
                continue;
            }
            if let Some(uuid) = c.get("uuid") {
                by_uuid.insert(uuid.to_string(), ns.clone());
            }
            let key = c
                .get_document("key")
                .map_err(|_| format!("config.collections: `{ns}` has no `key`"))?
                .clone();
            state.collections.insert(
                ns,
                TrackedCollection {
                    key,
                    unique: c.get_bool("unique").unwrap_or(false),
                    unsplittable: c.get_bool("unsplittable").unwrap_or(false),
                },
            );
        }
        for t in &docs.tags {
            let range = |k: &str| {
                t.get_document(k)
                    .cloned()
                    .map_err(|_| format!("config.tags: `{k}` is missing in {t}"))
            };
            state.zone_ranges.push(ZoneRange {
                namespace: text(t, "ns", "config.tags")?,
                min: range("min")?,
                max: range("max")?,
                zone: text(t, "tag", "config.tags")?,
            });
        }
        for d in &docs.databases {
            state.primaries.insert(
                text(d, "_id", "config.databases")?,
                text(d, "primary", "config.databases")?,
            );
        }
        for ch in &docs.chunks {
            let Some(ns) = ch.get("uuid").and_then(|u| by_uuid.get(&u.to_string())) else {
                continue;
            };
            if state.collections.get(ns).is_some_and(|c| c.unsplittable) {
                state
                    .placed
                    .insert(ns.clone(), text(ch, "shard", "config.chunks")?);
            }
        }
        Ok(state)
    }

    /// The shards in `zone`.
    pub fn shards_in(&self, zone: &str) -> Vec<&str> {
        self.shards
            .iter()
            .filter(|s| s.zones.iter().any(|z| z == zone))
            .map(|s| s.id.as_str())
            .collect()
    }

    /// The shard an unsharded collection lives on: where it was moved, else its
    /// database's primary.
    pub fn shard_of(&self, database: &str, namespace: &str) -> Option<&str> {
        self.placed
            .get(namespace)
            .or_else(|| self.primaries.get(database))
            .map(String::as_str)
    }

    /// Whether the namespace is sharded (tracked and splittable).
    pub fn sharded(&self, namespace: &str) -> Option<&TrackedCollection> {
        self.collections.get(namespace).filter(|c| !c.unsplittable)
    }
}

/// Whether the server is a mongos (`hello.msg == "isdbgrid"`).
pub async fn is_sharded_cluster(client: &Client) -> Result<bool> {
    let hello = client
        .database("admin")
        .run_command(doc! { "hello": 1 })
        .await
        .context("asking the server what it is (hello)")?;
    Ok(hello.get_str("msg") == Ok("isdbgrid"))
}

/// Read the cluster's config database: one find per config collection, plus `buildInfo`.
/// Call only on a mongos.
pub async fn read_cluster(client: &Client) -> Result<ClusterState> {
    let config = client.database("config");
    let all = async |name: &str| -> Result<Vec<Document>> {
        let read = async {
            let cursor = config.collection::<Document>(name).find(doc! {}).await?;
            cursor.try_collect().await
        };
        read.await.with_context(|| format!("reading config.{name}"))
    };
    let docs = ConfigDocs {
        shards: all("shards").await?,
        collections: all("collections").await?,
        tags: all("tags").await?,
        databases: all("databases").await?,
        chunks: Vec::new(),
    };
    let build = client
        .database("admin")
        .run_command(doc! { "buildInfo": 1 })
        .await
        .context("reading the cluster's version (buildInfo)")?;
    let major = build
        .get_str("version")
        .ok()
        .and_then(|v| v.split('.').next()?.parse().ok())
        .unwrap_or(0);
    let mut state = ClusterState::from_config(&docs, major).map_err(anyhow::Error::msg)?;
    state.placed = read_placed(&config, &state).await?;
    Ok(state)
}

/// Where each unsplittable collection lives: one chunk of each, by its uuid.
async fn read_placed(
    config: &mongodb::Database,
    state: &ClusterState,
) -> Result<BTreeMap<String, String>> {
    let colls: Vec<Document> = config
        .collection::<Document>("collections")
        .find(doc! { "unsplittable": true })
        .await?
        .try_collect()
        .await?;
    let mut out = BTreeMap::new();
    for c in colls {
        let (Ok(ns), Some(uuid)) = (c.get_str("_id"), c.get("uuid")) else {
            continue;
        };
        if !state.collections.contains_key(ns) {
            continue;
        }
        let chunk = config
            .collection::<Document>("chunks")
            .find_one(doc! { "uuid": uuid.clone() })
            .await?;
        if let Some(shard) = chunk.as_ref().and_then(|c| c.get_str("shard").ok()) {
            out.insert(ns.to_owned(), shard.to_owned());
        }
    }
    Ok(out)
}

/// One inconsistency `checkMetadataConsistency` reported, as drift.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Inconsistency {
    pub kind: String,
    pub namespace: Option<String>,
    /// The shards it concerns, as far as the report names them.
    pub shards: Vec<String>,
    pub description: String,
}

/// Parse `checkMetadataConsistency`'s cursor documents (`{type, description, details}`;
/// `details.namespace`, and `details.shard`, `details.shards` or
/// `details.info.missingFromShards` for the shards).
pub fn inconsistencies(docs: &[Document]) -> Vec<Inconsistency> {
    docs.iter()
        .map(|d| {
            let details = d.get_document("details").ok();
            let mut shards: Vec<String> = Vec::new();
            if let Some(det) = details {
                if let Ok(s) = det.get_str("shard") {
                    shards.push(s.to_owned());
                }
                let lists = [
                    det.get_array("shards").ok(),
                    det.get_document("info")
                        .ok()
                        .and_then(|i| i.get_array("missingFromShards").ok()),
                ];
                for list in lists.into_iter().flatten() {
                    shards.extend(list.iter().filter_map(Bson::as_str).map(str::to_owned));
                }
            }
            Inconsistency {
                kind: d.get_str("type").unwrap_or("unknown").to_owned(),
                namespace: details
                    .and_then(|det| det.get_str("namespace").ok())
                    .map(str::to_owned),
                shards,
                description: d.get_str("description").unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

/// Run `checkMetadataConsistency` with `checkIndexes` on the cluster.
pub async fn check_consistency(client: &Client) -> Result<Vec<Inconsistency>> {
    let reply = client
        .database("admin")
        .run_command(doc! { "checkMetadataConsistency": 1, "checkIndexes": true })
        .await
        .context("checking the cluster's metadata (checkMetadataConsistency)")?;
    let batch: Vec<Document> = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map(|b| b.iter().filter_map(Bson::as_document).cloned().collect())
        .unwrap_or_default();
    Ok(inconsistencies(&batch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::oid::ObjectId;

    /// Documents shaped as the MongoDB manual's "Config Database" page shows them.
    pub(crate) fn config_docs() -> ConfigDocs {
        let uuid = bson::Binary::from_uuid(bson::Uuid::new());
        ConfigDocs {
            shards: vec![
                doc! { "_id": "shard-eu", "host": "eu/h1:27018", "state": 1, "tags": ["EU"] },
                doc! { "_id": "shard-us", "host": "us/h2:27018", "state": 1, "tags": ["US"] },
            ],
            collections: vec![
                doc! { "_id": "caas_shared.users", "lastmodEpoch": ObjectId::new(), "uuid": bson::Binary::from_uuid(bson::Uuid::new()), "key": { "tenant_id": 1, "_id": 1 }, "unique": false, "noBalance": false },
                doc! { "_id": "caas_shared.acme_users", "uuid": uuid.clone(), "key": { "_id": 1 }, "unique": false, "unsplittable": true },
            ],
            tags: vec![
                doc! { "_id": ObjectId::new(), "ns": "caas_shared.users", "min": { "tenant_id": "demo", "_id": Bson::MinKey }, "max": { "tenant_id": "demo", "_id": Bson::MaxKey }, "tag": "EU" },
            ],
            databases: vec![
                doc! { "_id": "caas_shared", "primary": "shard-us", "partitioned": true },
            ],
            chunks: vec![
                doc! { "_id": ObjectId::new(), "uuid": uuid, "min": { "_id": Bson::MinKey }, "max": { "_id": Bson::MaxKey }, "shard": "shard-eu" },
            ],
        }
    }

    #[test]
    fn the_config_database_is_read_into_shards_keys_zones_and_placement() {
        let state = ClusterState::from_config(&config_docs(), 8).unwrap();
        assert_eq!(state.shards_in("EU"), ["shard-eu"]);
        assert_eq!(
            state.sharded("caas_shared.users").unwrap().key,
            doc! { "tenant_id": 1, "_id": 1 }
        );
        assert!(
            state.sharded("caas_shared.acme_users").is_none(),
            "unsplittable is not sharded"
        );
        assert_eq!(
            state.shard_of("caas_shared", "caas_shared.acme_users"),
            Some("shard-eu")
        );
        assert_eq!(
            state.shard_of("caas_shared", "caas_shared.other"),
            Some("shard-us"),
            "the primary"
        );
        assert_eq!(state.zone_ranges[0].zone, "EU");
    }

    #[test]
    fn a_malformed_config_document_is_named() {
        let mut docs = config_docs();
        docs.tags[0].remove("tag");
        let err = ClusterState::from_config(&docs, 8).unwrap_err();
        assert!(
            err.contains("config.tags") && err.contains("`tag`"),
            "{err}"
        );
    }

    #[test]
    fn inconsistencies_name_their_namespace_and_shards() {
        // The shape of the manual's checkMetadataConsistency example (InconsistentIndex).
        let docs = vec![
            doc! {
                "type": "InconsistentIndex",
                "description": "Found an index of a sharded collection that is inconsistent between different shards",
                "details": { "namespace": "caas_shared.users", "info": { "missingFromShards": ["shard-eu"], "inconsistentProperties": [], "indexName": "tenant_id_1_email_1" } }
            },
            doc! {
                "type": "MissingShardKeyIndex",
                "description": "Found sharded collection without a shard key index",
                "details": { "namespace": "caas_shared.events", "shard": "shard-us", "shardKey": { "tenant_id": 1 } }
            },
        ];
        let got = inconsistencies(&docs);
        assert_eq!(got[0].shards, ["shard-eu"]);
        assert_eq!(got[0].namespace.as_deref(), Some("caas_shared.users"));
        assert_eq!(got[1].kind, "MissingShardKeyIndex");
        assert_eq!(got[1].shards, ["shard-us"]);
    }
}
