//! The sharding part of the spec format: a collection's shard key and where it applies.
//! Settings for a sharded cluster; on a replica set `plan` and `diff` say once that they
//! do not apply, and ignore them.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::index::IndexDirection;
use crate::tenancy::Layout;

/// How the collection is sharded on a cluster.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// Shard key fields in order, `1` (ranged) or `hashed`, written for one tenant's data:
    /// where tenants share the collection caas puts `tenant_id` first, so one tenant's
    /// documents stay in one key range (and a zone per tenant's region is possible).
    /// Default `{_id: 1}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub key: IndexMap<String, IndexDirection>,
    /// The shard key enforces uniqueness (ranged keys only).
    #[serde(default)]
    pub unique: bool,
    /// For `saas` collections: the layouts the collection is sharded in. Default
    /// `[shared]`: the shared collections hold most tenants and grow without bound, while
    /// a Pro set or an Enterprise database holds one tenant and is placed whole on a shard
    /// of the tenant's region. Ignored for other domains (one collection, sharded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layouts: Option<Vec<Layout>>,
    /// A document may lack a shard key field: MongoDB then files it under null. Without
    /// this, every key field must be required.
    #[serde(default)]
    pub missing_as_null: bool,
}

impl Shard {
    /// The key as written, `{_id: 1}` when none is.
    pub fn written_key(&self) -> IndexMap<String, IndexDirection> {
        if self.key.is_empty() {
            IndexMap::from([(
                "_id".to_string(),
                IndexDirection::Order(super::index::IndexOrder::Asc),
            )])
        } else {
            self.key.clone()
        }
    }

    /// Whether the collection is sharded where it is laid out this way.
    pub fn applies_to(&self, layout: Layout) -> bool {
        self.layouts
            .as_deref()
            .map_or(layout == Layout::Shared, |l| l.contains(&layout))
    }
}
