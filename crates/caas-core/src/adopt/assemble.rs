//! One live collection (its options, validator and indexes) as a collection spec, with the
//! fields caas adds by itself (`_id`, `tenant_id`, soft-delete and standard fields) left
//! implied wherever the live schema is exactly what caas would write. Pure.

use bson::Document;
use indexmap::IndexMap;

use super::decompile::{from_validator, FromValidator};
use super::indexes::from_indexes;
use super::infer::{fields_of, Sample};
use super::Note;
use crate::compile::{compile_collection, field_schema};
use crate::inspect::normalize::{canonical_query, collection_shape, index_shape, CollectionShape};
use crate::inspect::LiveCollection;
use crate::spec::{
    CollectionSpec, Field, FieldName, FieldType, Granularity, SoftDelete, StandardFieldNames,
    StandardFields, TimeSeries, Validation, ValidationAction, ValidationLevel,
};
use crate::tenancy::{Domain, Placement};

/// Collection options caas reads or the server fills in; any other is a note.
const KNOWN_OPTIONS: &[&str] = &[
    "collation",
    "validator",
    "validationLevel",
    "validationAction",
    "timeseries",
    "expireAfterSeconds",
    "uuid",
];

/// An empty spec of a logical collection.
pub fn empty_spec(logical: &str, domain: Domain) -> CollectionSpec {
    CollectionSpec {
        collection: logical.to_owned(),
        domain,
        collation: None,
        description: None,
        owner: None,
        access: Vec::new(),
        tenant_scoped: None,
        standard_fields: None,
        allow_extra_fields: false,
        validation: None,
        soft_delete: None,
        time_series: None,
        fields: IndexMap::new(),
        rules: Vec::new(),
        indexes: Vec::new(),
        shard: None,
    }
}

/// What a spec is pulled from: one live copy of the logical collection, and a sample of
/// its documents when it has no validator.
pub struct Source<'a> {
    pub logical: &'a str,
    pub domain: Domain,
    pub live: &'a LiveCollection,
    pub placement: &'a Placement,
    pub sample: Option<&'a Sample>,
    /// A field is required when present in at least this share of the sample.
    pub required_ratio: f64,
    /// Documents carry `tenant_id` (decided by the caller from the validator, the sample
    /// or the indexes); used when there is no validator to say it.
    pub scoped: bool,
}

/// Whether the live validator requires a `tenant_id` (so the copy is tenant-scoped).
pub fn validator_requires_tenant(live: &LiveCollection) -> Option<bool> {
    let options = live.options();
    let schema = options
        .get_document("validator")
        .ok()?
        .get_document("$jsonSchema")
        .ok()?;
    let required = schema.get_array("required").ok();
    Some(required.is_some_and(|r| r.iter().any(|x| x.as_str() == Some("tenant_id"))))
}

/// The spec a live collection says, and what could not be said exactly.
pub fn spec_of(src: &Source<'_>) -> (CollectionSpec, Vec<Note>) {
    let (logical, domain, live, placement) = (src.logical, src.domain, src.live, src.placement);
    let mut spec = empty_spec(logical, domain);
    let mut notes = Vec::new();
    let live_options = live.options();
    options(&mut spec, &live_options, &mut notes);
    match live_options.get_document("validator") {
        Ok(validator) if !validator.is_empty() => {
            let v = from_validator(logical, validator);
            notes.extend(v.notes.iter().cloned());
            adopt_fields(&mut spec, v, placement, &mut notes);
        }
        _ => {
            if let Some(sample) = src.sample {
                inferred_fields(&mut spec, sample, src, &mut notes);
            }
        }
    }
    let ix = from_indexes(&live.indexes().unwrap_or_default(), placement);
    notes.extend(ix.notes);
    spec.indexes = ix.indexes;
    if let Some((field, days)) = ix.retention {
        match &mut spec.soft_delete {
            Some(SoftDelete::DeletedAt {
                field: f,
                retention_days,
                ..
            }) if *f == field => *retention_days = Some(days),
            _ => spec
                .indexes
                .push(retention_index(&field, days, placement.shared_by_tenants)),
        }
    }
    if !live_options
        .get_document("validator")
        .is_ok_and(|v| !v.is_empty())
    {
        declare_referenced(&mut spec, &mut notes);
    }
    (spec, notes)
}

/// Without a validator, declare what the time-series options and the indexes name but the
/// sample did not show (an empty collection): a spec must declare every field it indexes.
fn declare_referenced(spec: &mut CollectionSpec, notes: &mut Vec<Note>) {
    let implied = spec.effective_fields(None);
    let mut wanted: Vec<(String, FieldType, bool)> = Vec::new();
    if let Some(ts) = &spec.time_series {
        wanted.push((ts.time_field.clone(), FieldType::Date, true));
        if let Some(m) = &ts.meta_field {
            wanted.push((m.clone(), FieldType::Object, true));
        }
    }
    for ix in &spec.indexes {
        for key in ix.keys.keys() {
            let (head, nested) = match key.split_once('.') {
                Some((h, _)) => (h.to_owned(), true),
                None => (key.clone(), false),
            };
            let kind = if nested {
                FieldType::Object
            } else {
                FieldType::Any
            };
            wanted.push((head, kind, false));
        }
    }
    for (name, kind, required) in wanted {
        if implied.contains_key(&name) || spec.fields.contains_key(&name) || name.starts_with('$') {
            continue;
        }
        let mut f = Field::of(kind);
        f.required = required;
        if kind == FieldType::Object {
            f.allow_extra_fields = Some(true);
        }
        notes.push(Note::new(&name, format!("declared `{}` because the collection's options or indexes name it; no document showed its type", kind.as_str())));
        spec.fields.insert(name, f);
    }
}

/// A soft-delete retention index kept as an ordinary index (its fields are declared).
fn retention_index(field: &str, days: u32, shared: bool) -> crate::spec::IndexSpec {
    let spec = serde_json::json!({
        "keys": { field: 1 },
        "name": format!("{field}_1_retention"),
        "partial": { field: { "$type": "date" } },
        "ttl_seconds": u64::from(days) * 86_400,
        "per_tenant": !shared,
    });
    serde_json::from_value(spec).expect("a well-formed index")
}

fn options(spec: &mut CollectionSpec, options: &Document, notes: &mut Vec<Note>) {
    if let Ok(c) = options.get_document("collation") {
        if c.get_str("locale") != Ok("simple") {
            spec.collation = Some(super::indexes::collation(c, "(collection)", notes));
        }
    }
    if let Ok(ts) = options.get_document("timeseries") {
        spec.time_series = Some(TimeSeries {
            time_field: ts.get_str("timeField").unwrap_or("ts").to_owned(),
            meta_field: ts.get_str("metaField").ok().map(str::to_owned),
            granularity: match ts.get_str("granularity") {
                Ok("minutes") => Some(Granularity::Minutes),
                Ok("hours") => Some(Granularity::Hours),
                _ => Some(Granularity::Seconds),
            },
            expire_after_seconds: options
                .get("expireAfterSeconds")
                .and_then(crate::inspect::normalize::canonical_number)
                .and_then(|b| b.as_i64())
                .and_then(|s| u64::try_from(s).ok()),
        });
        spec.standard_fields = Some(StandardFields::Enabled(false));
        spec.validation = Some(Validation {
            level: ValidationLevel::Off,
            action: ValidationAction::Error,
        });
    }
    let level = match options.get_str("validationLevel") {
        Ok("moderate") => ValidationLevel::Moderate,
        Ok("off") => ValidationLevel::Off,
        _ => ValidationLevel::Strict,
    };
    let action = match options.get_str("validationAction") {
        Ok("warn") => ValidationAction::Warn,
        _ => ValidationAction::Error,
    };
    if spec.time_series.is_none()
        && (level != ValidationLevel::Strict || action != ValidationAction::Error)
    {
        spec.validation = Some(Validation { level, action });
    }
    for key in options
        .keys()
        .filter(|k| !KNOWN_OPTIONS.contains(&k.as_str()))
    {
        notes.push(Note::new(
            "options",
            format!(
                "collection option `{key}` ({}) is not managed by caas specs; it stays as it is on this collection, and a new target is created without it",
                options.get(key).map(|v| v.to_string()).unwrap_or_default()
            ),
        ));
    }
}

/// Take the validator's fields into the spec, leaving implied what caas adds itself.
fn adopt_fields(
    spec: &mut CollectionSpec,
    v: FromValidator,
    placement: &Placement,
    notes: &mut Vec<Note>,
) {
    spec.description = v.description;
    spec.allow_extra_fields = v.allow_extra_fields;
    spec.rules = v.rules;
    let mut fields = v.fields;
    // What caas would add with every option on, to compare against.
    let mut probe = empty_spec(&spec.collection, spec.domain);
    probe.tenant_scoped = Some(true);
    probe.soft_delete = Some(SoftDelete::DeletedAt {
        retention_days: None,
        field: "deleted_at".into(),
        by_field: "deleted_by".into(),
    });
    let implied = probe.effective_fields(placement.tenant.as_deref());
    let same = |fields: &IndexMap<String, Field>, name: &str| match (
        fields.get(name),
        implied.get(name),
    ) {
        (Some(live), Some((ours, _))) => {
            live.required == ours.required
                && canonical_query(&field_schema(live)) == canonical_query(&field_schema(ours))
        }
        _ => false,
    };
    if same(&fields, "_id") {
        fields.shift_remove("_id");
    } else if !fields.contains_key("_id") {
        fields.insert("_id".into(), Field::of(FieldType::Any));
        notes.push(Note::new("_id", "the live validator does not describe `_id`; the spec declares it `any` (caas would otherwise require an ObjectId)".into()));
    }
    let scoped = same(&fields, "tenant_id");
    if scoped {
        fields.shift_remove("tenant_id");
    }
    if scoped != (spec.domain == Domain::Saas) {
        spec.tenant_scoped = Some(scoped);
    }
    if same(&fields, "deleted_at") && same(&fields, "deleted_by") {
        fields.shift_remove("deleted_at");
        fields.shift_remove("deleted_by");
        spec.soft_delete = probe.soft_delete.clone();
    }
    let standard: Vec<bool> = ["created_at", "updated_at", "__v"]
        .iter()
        .map(|n| same(&fields, n))
        .collect();
    for (name, on) in ["created_at", "updated_at", "__v"].iter().zip(&standard) {
        if *on {
            fields.shift_remove(*name);
        }
    }
    spec.standard_fields = standard_fields(&standard);
    spec.fields = fields;
}

/// Take a sample's fields into the spec; implied are those whose sampled type is one caas
/// would give them (`_id` ObjectIds, `tenant_id` on every document, dates for
/// `created_at`/`updated_at`, a number for `__v`, soft-delete timestamps).
fn inferred_fields(
    spec: &mut CollectionSpec,
    sample: &Sample,
    src: &Source<'_>,
    notes: &mut Vec<Note>,
) {
    let placement = src.placement;
    let mut fields = fields_of(
        &sample.root,
        sample.documents,
        src.required_ratio,
        "",
        notes,
    );
    let kind =
        |f: &IndexMap<String, Field>, n: &str| f.get(n).map(|f| (f.kind, f.required, f.nullable));
    if kind(&fields, "_id") == Some((FieldType::ObjectId, true, false)) {
        fields.shift_remove("_id");
    }
    let scoped = src.scoped;
    if scoped {
        fields.shift_remove("tenant_id");
        let pattern = regex::Regex::new(crate::tenancy::TENANT_ID_PATTERN).expect("pattern");
        let odd: Vec<&String> = sample
            .tenants
            .keys()
            .filter(|t| !pattern.is_match(t))
            .take(5)
            .collect();
        if !odd.is_empty() {
            notes.push(Note::new("tenant_id", format!("tenant ids {odd:?} do not match caas's tenant id pattern {}; the validator would refuse their documents", crate::tenancy::TENANT_ID_PATTERN)));
        }
        if let Some(t) = &placement.tenant {
            if sample.tenants.keys().any(|x| x != t) {
                notes.push(Note::new(
                    "tenant_id",
                    format!("documents of other tenants than `{t}` in its own collection"),
                ));
            }
        }
    }
    if scoped != (spec.domain == Domain::Saas) {
        spec.tenant_scoped = Some(scoped);
    }
    let soft = matches!(kind(&fields, "deleted_at"), Some((FieldType::Date, _, _)))
        && matches!(
            kind(&fields, "deleted_by"),
            Some((FieldType::ObjectId, _, _))
        );
    if soft {
        fields.shift_remove("deleted_at");
        fields.shift_remove("deleted_by");
        spec.soft_delete = Some(SoftDelete::DeletedAt {
            retention_days: None,
            field: "deleted_at".into(),
            by_field: "deleted_by".into(),
        });
    }
    if spec.time_series.is_none() {
        let date = Some((FieldType::Date, true, false));
        let on = [
            kind(&fields, "created_at") == date,
            kind(&fields, "updated_at") == date,
            kind(&fields, "__v").is_some_and(|(k, _, n)| k.is_numeric() && !n),
        ];
        for (name, on) in ["created_at", "updated_at", "__v"].iter().zip(on) {
            if on {
                fields.shift_remove(*name);
            }
        }
        spec.standard_fields = standard_fields(&on);
    }
    spec.fields = fields;
}

fn standard_fields(on: &[bool]) -> Option<StandardFields> {
    let name = |on: bool, n: &str| {
        if on {
            FieldName::Name(n.into())
        } else {
            FieldName::Off(false)
        }
    };
    match on {
        [true, true, true] => None,
        [false, false, false] => Some(StandardFields::Enabled(false)),
        [c, u, v] => Some(StandardFields::Named(StandardFieldNames {
            created_at: name(*c, "created_at"),
            updated_at: name(*u, "updated_at"),
            version: name(*v, "__v"),
        })),
        _ => None,
    }
}

/// What differs between the spec compiled for this placement and the live collection,
/// after the same normalisation `schema diff` uses; empty when the spec reproduces it.
pub fn differences(
    spec: &CollectionSpec,
    placement: &Placement,
    live: &LiveCollection,
) -> Vec<String> {
    let compiled = compile_collection(spec, placement.clone());
    let ours: CollectionShape = collection_shape(&compiled.options.to_document());
    let theirs = collection_shape(&live.options());
    let mut out = Vec::new();
    if ours.validator != theirs.validator {
        out.push("validator".to_owned());
    }
    if (&ours.validation_level, &ours.validation_action)
        != (&theirs.validation_level, &theirs.validation_action)
        && spec.time_series.is_none()
    {
        out.push("validation level/action".to_owned());
    }
    if ours.collation != theirs.collation {
        out.push("collation".to_owned());
    }
    if ours.timeseries != theirs.timeseries
        || ours.expire_after_seconds != theirs.expire_after_seconds
    {
        out.push("time-series options".to_owned());
    }
    let mut a: Vec<_> = compiled
        .indexes
        .iter()
        .map(|i| index_shape(&i.to_create_spec()))
        .collect();
    let mut b: Vec<_> = live
        .indexes()
        .unwrap_or_default()
        .iter()
        .filter(|i| i.get_str("name") != Ok("_id_"))
        .map(index_shape)
        .collect();
    a.sort_by(|x, y| x.name.cmp(&y.name));
    b.sort_by(|x, y| x.name.cmp(&y.name));
    for ix in &b {
        if !a.contains(ix) {
            out.push(format!("index {}", ix.name));
        }
    }
    for ix in &a {
        if !b.iter().any(|x| x.name == ix.name) {
            out.push(format!("apply adds index {}", ix.name));
        }
    }
    out
}
