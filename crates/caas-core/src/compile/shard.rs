//! Shard settings per placement: the shard key a collection gets where it is sharded, and
//! the zone range of one tenant's documents in a shared collection. Pure functions.
//!
//! On collections tenants share, the key is led by `tenant_id` (caas adds it when the spec
//! does not write it, as it does for indexes): one tenant's documents then fall in one
//! key range, `{tenant_id: X, <rest>: MinKey}` to `{tenant_id: X, <rest>: MaxKey}`, which
//! is the range a zone pins to the tenant's region. MongoDB's guide to zones per tenant
//! uses this form (Manage Shard Zones, "Segmenting Data by Application or Customer").

use bson::{doc, Bson, Document};
use serde::Serialize;

use crate::spec::{CollectionSpec, IndexDirection};
use crate::tenancy::{Layout, Placement, TargetKind};

const TENANT_FIELD: &str = "tenant_id";

/// What `shardCollection` takes for one physical collection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompiledShard {
    pub key: Document,
    pub unique: bool,
    /// The key is led by `tenant_id` on a collection tenants share: zones per tenant apply.
    pub per_tenant_ranges: bool,
}

/// The layout of a target's `saas` collections; `None` for the platform target, whose
/// collections are one each and sharded wherever their spec says.
pub fn layout_of(kind: &TargetKind) -> Option<Layout> {
    match kind {
        TargetKind::Platform => None,
        TargetKind::Shared => Some(Layout::Shared),
        TargetKind::CollectionSet { .. } => Some(Layout::CollectionSet),
        TargetKind::Database { .. } => Some(Layout::Database),
    }
}

/// The shard settings of `spec` where it is placed as `placement` in a target of
/// `layout`; `None` where the collection stays unsharded.
pub fn compile_shard(
    spec: &CollectionSpec,
    placement: &Placement,
    layout: Option<Layout>,
) -> Option<CompiledShard> {
    let shard = spec.shard.as_ref()?;
    if let Some(layout) = layout {
        if !shard.applies_to(layout) {
            return None;
        }
    }
    let mut key = Document::new();
    let written = shard.written_key();
    let lead = placement.shared_by_tenants
        && written.first().map(|(f, _)| f.as_str()) != Some(TENANT_FIELD);
    if lead {
        key.insert(TENANT_FIELD, 1);
    }
    for (field, dir) in &written {
        key.insert(field, key_value(*dir));
    }
    Some(CompiledShard {
        per_tenant_ranges: placement.shared_by_tenants
            && key.keys().next().map(String::as_str) == Some(TENANT_FIELD)
            && key.get(TENANT_FIELD) == Some(&Bson::Int32(1)),
        key,
        unique: shard.unique,
    })
}

fn key_value(dir: IndexDirection) -> Bson {
    match dir {
        IndexDirection::Order(o) => Bson::Int32(i32::from(o)),
        other => Bson::String(other.name_part()),
    }
}

/// The key range holding every document of `tenant` under `key` (led by `tenant_id`):
/// `[min, max)` as `updateZoneKeyRange` takes it.
pub fn tenant_range(key: &Document, tenant: &str) -> (Document, Document) {
    let mut min = doc! { TENANT_FIELD: tenant };
    let mut max = doc! { TENANT_FIELD: tenant };
    for field in key.keys().skip(1) {
        min.insert(field, Bson::MinKey);
        max.insert(field, Bson::MaxKey);
    }
    (min, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Databases;
    use crate::tenancy::{Target, Tier};

    fn spec(shard: &str) -> CollectionSpec {
        let text = format!("collection: users\ndomain: saas\nfields:\n  email: {{ type: string, required: true }}\n{shard}");
        decode(&text)
    }

    fn decode(text: &str) -> CollectionSpec {
        let doc = crate::base::yaml::parse(text).expect("parses");
        crate::base::files::decode(&doc).expect("decodes")
    }

    fn targets() -> Vec<Target> {
        vec![
            Target::shared(),
            Target::for_tenant("acme", Tier::Pro, Layout::CollectionSet),
            Target::for_tenant("bank", Tier::Enterprise, Layout::Database),
        ]
    }

    /// The compiled key of each tier's target, as `shardCollection` gets it (the golden).
    fn keys(s: &CollectionSpec) -> Vec<String> {
        let dbs = Databases::default();
        targets()
            .iter()
            .map(|t| {
                let got = compile_shard(s, &t.place(s, &dbs), layout_of(&t.kind));
                match got {
                    Some(c) => format!(
                        "{t}: {} unique={} ranges={}",
                        super::super::to_json(&c.key),
                        c.unique,
                        c.per_tenant_ranges
                    ),
                    None => format!("{t}: unsharded"),
                }
            })
            .collect()
    }

    #[test]
    fn the_default_key_is_id_led_by_tenant_id_where_tenants_share() {
        let got = keys(&spec("shard: {}\n"));
        assert_eq!(
            got,
            [
                r#"shared: {"tenant_id":1,"_id":1} unique=false ranges=true"#,
                "pro:acme: unsharded",
                "enterprise:bank: unsharded",
            ]
        );
    }

    #[test]
    fn a_written_key_is_kept_and_sharded_in_the_layouts_named() {
        let got = keys(&spec(
            "shard: { key: { email: 1 }, unique: true, layouts: [shared, database] }\n",
        ));
        assert_eq!(
            got,
            [
                r#"shared: {"tenant_id":1,"email":1} unique=true ranges=true"#,
                "pro:acme: unsharded",
                r#"enterprise:bank: {"email":1} unique=true ranges=false"#,
            ]
        );
        let hashed = keys(&spec("shard: { key: { tenant_id: 1, _id: hashed } }\n"));
        assert_eq!(
            hashed[0],
            r#"shared: {"tenant_id":1,"_id":"hashed"} unique=false ranges=true"#
        );
    }

    #[test]
    fn no_shard_setting_means_unsharded_everywhere() {
        assert!(keys(&spec("")).iter().all(|k| k.ends_with("unsharded")));
    }

    #[test]
    fn a_tenant_range_spans_every_document_of_the_tenant() {
        let key = doc! { "tenant_id": 1, "created_at": 1, "_id": 1 };
        let (min, max) = tenant_range(&key, "acme");
        assert_eq!(
            min,
            doc! { "tenant_id": "acme", "created_at": Bson::MinKey, "_id": Bson::MinKey }
        );
        assert_eq!(
            max,
            doc! { "tenant_id": "acme", "created_at": Bson::MaxKey, "_id": Bson::MaxKey }
        );
    }
}
