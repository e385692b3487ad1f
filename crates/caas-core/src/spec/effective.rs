//! The full field list of a spec: the declared fields plus those caas adds (`_id`,
//! `tenant_id`, soft-delete and standard fields). Compile and lint both read this one list.

use indexmap::IndexMap;
use serde_json::Value;

use super::model::{CollectionSpec, Field, FieldType, SoftDelete};
use crate::tenancy::TENANT_ID_PATTERN;

/// Where a field in the effective list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Declared,
    Id,
    Tenant,
    SoftDelete,
    Standard,
}

impl CollectionSpec {
    /// Declared and implied fields, in the order validators and docs show them. With
    /// `pinned_tenant`, `tenant_id` may only hold that one value (Pro and Enterprise targets).
    pub fn effective_fields(
        &self,
        pinned_tenant: Option<&str>,
    ) -> IndexMap<String, (Field, Origin)> {
        let mut out = IndexMap::new();
        let id = self.fields.get("_id").cloned().unwrap_or_else(|| {
            let mut f = Field::of(FieldType::ObjectId);
            f.description = Some("Primary key.".into());
            f
        });
        out.insert("_id".to_owned(), (id, Origin::Id));
        if self.is_tenant_scoped() {
            let mut f = Field::of(FieldType::String);
            f.required = true;
            f.description = Some("The SaaS client (tenant) that owns the document.".into());
            match pinned_tenant {
                Some(t) => f.enum_values = Some(vec![Value::String(t.to_owned())]),
                None => f.pattern = Some(TENANT_ID_PATTERN.to_owned()),
            }
            out.insert("tenant_id".to_owned(), (f, Origin::Tenant));
        }
        for (name, field) in &self.fields {
            if name != "_id" {
                out.insert(name.clone(), (field.clone(), Origin::Declared));
            }
        }
        for (name, field) in self.soft_delete_fields() {
            out.entry(name).or_insert((field, Origin::SoftDelete));
        }
        let [created, updated, version] = self.standard_field_names();
        for (name, kind, required, description) in [
            (
                created,
                FieldType::Date,
                true,
                "When the document was created.",
            ),
            (
                updated,
                FieldType::Date,
                true,
                "When the document last changed.",
            ),
            (
                version,
                FieldType::Int,
                false,
                "Version key for optimistic locking.",
            ),
        ] {
            if let Some(name) = name {
                let mut f = Field::of(kind);
                f.required = required;
                f.description = Some(description.into());
                if kind == FieldType::Int {
                    f.kind = FieldType::Number;
                    f.min = Some(0.0);
                }
                out.entry(name).or_insert((f, Origin::Standard));
            }
        }
        out
    }

    fn soft_delete_fields(&self) -> Vec<(String, Field)> {
        match &self.soft_delete {
            None => Vec::new(),
            Some(SoftDelete::DeletedAt {
                field, by_field, ..
            }) => {
                let mut at = Field::of(FieldType::Date);
                at.nullable = true;
                at.description = Some("null = active; a date = soft-deleted at that time.".into());
                let mut by = Field::of(FieldType::ObjectId);
                by.nullable = true;
                by.description = Some("Who deleted the document (audit).".into());
                vec![(field.clone(), at), (by_field.clone(), by)]
            }
            Some(SoftDelete::StateHistory {
                states,
                state_field,
                field,
                ..
            }) => {
                let enum_values: Vec<Value> = states.iter().cloned().map(Value::String).collect();
                let mut state = Field::of(FieldType::String);
                state.required = true;
                state.enum_values = Some(enum_values.clone());
                state.description = Some("Current lifecycle state.".into());
                let mut entry_state = Field::of(FieldType::String);
                entry_state.required = true;
                entry_state.enum_values = Some(enum_values);
                let mut at = Field::of(FieldType::Date);
                at.required = true;
                let mut by = Field::of(FieldType::ObjectId);
                by.nullable = true;
                let mut reason = Field::of(FieldType::String);
                reason.max_length = Some(500);
                let mut entry = Field::of(FieldType::Object);
                entry.fields = Some(IndexMap::from([
                    ("state".to_owned(), entry_state),
                    ("at".to_owned(), at),
                    ("by".to_owned(), by),
                    ("reason".to_owned(), reason),
                ]));
                let mut history = Field::of(FieldType::Array);
                history.items = Some(Box::new(entry));
                history.description = Some("Every state change, oldest first.".into());
                vec![(state_field.clone(), state), (field.clone(), history)]
            }
        }
    }
}
