//! Compile specs into the desired state of each physical target: collection options with
//! their `$jsonSchema` validator, and createIndexes specs. Pure functions; the same spec
//! compiles differently per placement (shared tenant collections get `tenant_id`-prefixed,
//! per-tenant-unique indexes; Pro sets and Enterprise databases do not need the prefix).

mod bsonify;
pub mod check;
pub mod expr;
pub mod forms;
mod index;
pub mod sample;
pub mod shard;
mod validator;

use bson::{doc, Bson, Document};
use serde::Serialize;

pub use bsonify::{coerce, json_to_bson};
pub use index::{compile_index, compile_indexes, default_index_name, CompiledIndex};
pub use validator::{compile_validator, field_schema};

use crate::config::Databases;
use crate::spec::CollectionSpec;
use crate::tenancy::{Placement, Target};

/// The desired state of one physical collection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompiledCollection {
    /// The spec's collection name.
    pub logical: String,
    pub placement: Placement,
    pub options: CollectionOptions,
    pub indexes: Vec<CompiledIndex>,
}

/// Options given to `create` (and, for validators, to `collMod`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionOptions {
    /// `None` for time-series collections, which MongoDB refuses validators on.
    pub validator: Option<Document>,
    pub validation_level: Option<&'static str>,
    pub validation_action: Option<&'static str>,
    pub timeseries: Option<Document>,
    pub expire_after_seconds: Option<i64>,
    /// The default collation, given to `create` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collation: Option<Document>,
}

impl CollectionOptions {
    /// The options as the `create` command's fields, in a stable order.
    pub fn to_document(&self) -> Document {
        let mut d = Document::new();
        if let Some(ts) = &self.timeseries {
            d.insert("timeseries", ts.clone());
        }
        if let Some(secs) = self.expire_after_seconds {
            d.insert("expireAfterSeconds", secs);
        }
        if let Some(v) = &self.validator {
            d.insert("validator", v.clone());
        }
        if let Some(l) = self.validation_level {
            d.insert("validationLevel", l);
        }
        if let Some(a) = self.validation_action {
            d.insert("validationAction", a);
        }
        if let Some(c) = &self.collation {
            d.insert("collation", c.clone());
        }
        d
    }
}

/// Every collection one target holds.
#[derive(Debug, Clone, Serialize)]
pub struct CompiledTarget {
    pub target: Target,
    pub collections: Vec<CompiledCollection>,
}

/// Compile one spec for one placement.
pub fn compile_collection(spec: &CollectionSpec, placement: Placement) -> CompiledCollection {
    let validation = spec.validation();
    let options = match &spec.time_series {
        Some(ts) => {
            let mut t = doc! { "timeField": &ts.time_field };
            if let Some(m) = &ts.meta_field {
                t.insert("metaField", m);
            }
            if let Some(g) = ts.granularity {
                t.insert("granularity", g.as_str());
            }
            CollectionOptions {
                validator: None,
                validation_level: None,
                validation_action: None,
                timeseries: Some(t),
                expire_after_seconds: ts.expire_after_seconds.map(|s| s as i64),
                collation: spec.collation.as_ref().map(index::collation_document),
            }
        }
        None => CollectionOptions {
            validator: Some(compile_validator(spec, placement.tenant.as_deref())),
            validation_level: Some(validation.level.as_str()),
            validation_action: Some(validation.action.as_str()),
            timeseries: None,
            expire_after_seconds: None,
            collation: spec.collation.as_ref().map(index::collation_document),
        },
    };
    let indexes = compile_indexes(spec, &placement);
    CompiledCollection {
        logical: spec.collection.clone(),
        placement,
        options,
        indexes,
    }
}

/// Compile every spec the target holds, in spec order.
pub fn compile_target(
    specs: &[&CollectionSpec],
    target: &Target,
    dbs: &Databases,
) -> CompiledTarget {
    let collections = specs
        .iter()
        .filter(|s| target.holds(s))
        .map(|s| compile_collection(s, target.place(s, dbs)))
        .collect();
    CompiledTarget {
        target: target.clone(),
        collections,
    }
}

/// A document as relaxed Extended JSON, the form `--format json` prints.
pub fn to_json(d: &Document) -> serde_json::Value {
    Bson::Document(d.clone()).into_relaxed_extjson()
}

/// A TTL in seconds as people write it: `90d`, `12h`, `45s`; 0 expires at the date itself.
pub fn human_ttl(secs: i64) -> String {
    match secs {
        0 => "at the date".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
