//! The index part of the spec format: keys with their order or kind, options, collation.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A secondary index.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// Keys in order: `1`, `-1`, `text`, `2dsphere` or `hashed`.
    pub keys: IndexMap<String, IndexDirection>,
    /// Explicit name; default is MongoDB's own `field_1_other_-1` form, computed on the
    /// physical keys (so shared-tier names include the `tenant_id` prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub sparse: bool,
    /// Only documents matching this filter are indexed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<serde_json::Map<String, serde_json::Value>>,
    /// Documents expire this many seconds after the (date) key's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<Collation>,
    /// Hidden from the query planner (kept up to date, not used).
    #[serde(default)]
    pub hidden: bool,
    /// On shared tenant collections the keys are prefixed with `tenant_id` (default true).
    /// Set false only for an index that must span tenants.
    #[serde(default = "yes")]
    pub per_tenant: bool,
    /// Text index field weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<IndexMap<String, u32>>,
    /// Text index default language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_language: Option<String>,
    /// Why the index exists (the query it serves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

/// An index key's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IndexDirection {
    Order(IndexOrder),
    Special(IndexKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "i32", into = "i32")]
#[schemars(with = "IndexOrderSchema")]
pub enum IndexOrder {
    Asc,
    Desc,
}

/// `1` (ascending) or `-1` (descending).
#[derive(JsonSchema)]
#[schemars(transparent)]
#[allow(dead_code)]
struct IndexOrderSchema(#[schemars(range(min = -1, max = 1))] i32);

impl TryFrom<i32> for IndexOrder {
    type Error = String;
    fn try_from(v: i32) -> Result<Self, String> {
        match v {
            1 => Ok(IndexOrder::Asc),
            -1 => Ok(IndexOrder::Desc),
            other => Err(format!("index direction must be 1 or -1, not {other}")),
        }
    }
}

impl From<IndexOrder> for i32 {
    fn from(o: IndexOrder) -> i32 {
        match o {
            IndexOrder::Asc => 1,
            IndexOrder::Desc => -1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum IndexKind {
    #[serde(rename = "text")]
    Text,
    #[serde(rename = "2dsphere")]
    Sphere2d,
    #[serde(rename = "hashed")]
    Hashed,
}

impl IndexDirection {
    /// The suffix MongoDB uses in generated index names.
    pub fn name_part(self) -> String {
        match self {
            IndexDirection::Order(o) => i32::from(o).to_string(),
            IndexDirection::Special(IndexKind::Text) => "text".into(),
            IndexDirection::Special(IndexKind::Sphere2d) => "2dsphere".into(),
            IndexDirection::Special(IndexKind::Hashed) => "hashed".into(),
        }
    }
}

/// Index collation (locale-aware comparison).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Collation {
    /// ICU locale, e.g. `en`.
    pub locale: String,
    /// 1 = base letters, 2 = + diacritics (case-insensitive), 3 = + case (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_level: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric_ordering: Option<bool>,
}
