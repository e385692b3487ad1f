//! Steps that write documents in one fenced transaction with their checkpoint:
//! `update_many`, `rename_field`, `set_default`, `unset_field`, `insert_documents`.

use bson::{doc, Bson, Document};

use super::{in_txn, update_of, StepCtx, StepError};
use crate::compile::json_to_bson;
use crate::migrate::source::{InsertStep, RenameStep, SetDefaultStep, UnsetStep, UpdateStep};

pub(super) async fn update_many(
    ctx: &StepCtx<'_>,
    next: u32,
    s: &UpdateStep,
) -> Result<(), StepError> {
    let (coll, filter, update) = (
        ctx.collection(&s.collection)?,
        ctx.filter(&s.collection, &s.filter),
        update_of(&s.update),
    );
    let bypass = ctx.bypass_validation;
    in_txn(ctx, next, |session| {
        let (coll, filter, update) = (coll.clone(), filter.clone(), update.clone());
        Box::pin(async move {
            coll.update_many(filter, update)
                .bypass_document_validation(bypass)
                .session(session)
                .await
                .map(drop)
        })
    })
    .await
}

pub(super) async fn rename_field(
    ctx: &StepCtx<'_>,
    next: u32,
    s: &RenameStep,
) -> Result<(), StepError> {
    field_update(
        ctx,
        next,
        &s.collection,
        &s.from,
        doc! { "$rename": { &s.from: &s.to } },
        true,
    )
    .await
}

pub(super) async fn set_default(
    ctx: &StepCtx<'_>,
    next: u32,
    s: &SetDefaultStep,
) -> Result<(), StepError> {
    let mut value = doc! { &s.field: json_to_bson(&s.value) };
    if let Some(spec) = ctx.spec(&s.collection) {
        crate::compile::coerce(&mut value, &spec.fields);
    }
    field_update(
        ctx,
        next,
        &s.collection,
        &s.field,
        doc! { "$set": value },
        false,
    )
    .await
}

pub(super) async fn unset_field(
    ctx: &StepCtx<'_>,
    next: u32,
    s: &UnsetStep,
) -> Result<(), StepError> {
    field_update(
        ctx,
        next,
        &s.collection,
        &s.field,
        doc! { "$unset": { &s.field: "" } },
        true,
    )
    .await
}

pub(super) async fn insert_documents(
    ctx: &StepCtx<'_>,
    next: u32,
    s: &InsertStep,
) -> Result<(), StepError> {
    let coll = ctx.collection(&s.collection)?;
    let spec = ctx.spec(&s.collection);
    let scoped = spec.is_some_and(|sp| sp.is_tenant_scoped());
    let tenants: Vec<Option<String>> = match (scoped, ctx.target.tenant(), &ctx.tenants) {
        (false, _, _) => vec![None],
        (true, Some(t), _) => vec![Some(t.to_owned())],
        (true, None, Some(ids)) => ids.iter().cloned().map(Some).collect(),
        (true, None, None) => return Err("insert_documents into a shared tenant collection needs the tenants: give the migration `tiers`".into()),
    };
    let standard = spec.map(|sp| sp.standard_field_names()).unwrap_or_default();
    let docs: Vec<(Document, Document)> = tenants
        .iter()
        .flat_map(|t| {
            s.documents.iter().map(move |d| {
                let mut d = json_to_bson(&serde_json::Value::Object(d.clone()))
                    .as_document()
                    .cloned()
                    .unwrap_or_default();
                if let Some(sp) = spec {
                    let fields: indexmap::IndexMap<String, crate::spec::Field> = sp
                        .effective_fields(None)
                        .into_iter()
                        .map(|(k, (f, _))| (k, f))
                        .collect();
                    crate::compile::coerce(&mut d, &fields);
                }
                if let Some(t) = t {
                    d.insert("tenant_id", t.as_str());
                }
                let mut key = Document::new();
                for k in s
                    .key
                    .iter()
                    .map(String::as_str)
                    .chain(t.as_ref().map(|_| "tenant_id"))
                {
                    key.insert(k, d.get(k).cloned().unwrap_or(Bson::Null));
                }
                (key, d)
            })
        })
        .collect();
    let now = bson::DateTime::now();
    let bypass = ctx.bypass_validation;
    in_txn(ctx, next, |session| {
        let (coll, docs, standard) = (coll.clone(), docs.clone(), standard.clone());
        Box::pin(async move {
            for (key, mut d) in docs {
                for name in standard[..2].iter().flatten() {
                    if !d.contains_key(name) {
                        d.insert(name, now);
                    }
                }
                coll.update_one(key, doc! { "$setOnInsert": d })
                    .upsert(true)
                    .bypass_document_validation(bypass)
                    .session(&mut *session)
                    .await?;
            }
            Ok(())
        })
    })
    .await
}

/// update_many on documents that have (or lack) `field`, in a transaction with the checkpoint.
async fn field_update(
    ctx: &StepCtx<'_>,
    next: u32,
    logical: &str,
    field: &str,
    update: Document,
    has_field: bool,
) -> Result<(), StepError> {
    let p = ctx.place(logical)?;
    let coll = ctx
        .client
        .database(&p.database)
        .collection::<Document>(&p.collection);
    let mut base = serde_json::Map::new();
    base.insert(
        field.to_owned(),
        serde_json::json!({ "$exists": has_field }),
    );
    let filter = ctx.filter(logical, &base);
    let bypass = ctx.bypass_validation;
    in_txn(ctx, next, |session| {
        let (coll, filter, update) = (coll.clone(), filter.clone(), update.clone());
        Box::pin(async move {
            coll.update_many(filter, update)
                .bypass_document_validation(bypass)
                .session(session)
                .await
                .map(drop)
        })
    })
    .await
}
