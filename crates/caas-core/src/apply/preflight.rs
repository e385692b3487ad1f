//! Preflight checks run just before a data-dependent change: how many documents a tighter
//! validator would reject, and which values a new unique index would find duplicated.

use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use mongodb::Client;

use super::ApplyOptions;
use crate::plan::{Action, Change, Safety};

const SAMPLE: i64 = 5;

/// `Ok(Some(reason))` holds the change back; `Ok(None)` lets it run.
pub async fn check(
    client: &Client,
    c: &Change,
    opts: ApplyOptions,
) -> mongodb::error::Result<Option<String>> {
    let coll = client
        .database(&c.database)
        .collection::<Document>(&c.collection);
    if let Action::RebuildIndex { index, .. } = &c.action {
        // A rebuild that adds uniqueness can fail on the data like a new unique index.
        if index.options.get_bool("unique") == Ok(true) {
            return duplicates(&coll, index).await;
        }
        return Ok(None);
    }
    if c.safety != Safety::DataDependent {
        return Ok(None);
    }
    match &c.action {
        Action::UpdateValidation {
            validator: Some(validator),
            level,
            ..
        } => {
            if opts.allow_invalid_docs
                || level.as_deref() == Some("moderate")
                || level.as_deref() == Some("off")
            {
                return Ok(None);
            }
            let filter = doc! { "$nor": [validator.clone()] };
            let invalid = coll.count_documents(filter.clone()).await?;
            if invalid == 0 {
                return Ok(None);
            }
            let ids = sample_ids(&coll, filter).await?;
            Ok(Some(format!(
                "{invalid} existing document(s) fail the new validator (e.g. _id {}); fix them, use `validation: {{level: moderate}}`, or rerun with --allow-invalid-docs",
                ids.join(", ")
            )))
        }
        Action::CreateIndex { index } if index.options.get_bool("unique") == Ok(true) => {
            duplicates(&coll, index).await
        }
        _ => Ok(None),
    }
}

/// Values a unique index would find more than once (respecting its partial filter,
/// sparseness and collation), or `None`.
async fn duplicates(
    coll: &mongodb::Collection<Document>,
    index: &crate::compile::CompiledIndex,
) -> mongodb::error::Result<Option<String>> {
    let mut group_id = Document::new();
    for (k, _) in &index.keys {
        group_id.insert(k.replace('.', "_"), format!("${k}"));
    }
    let mut pipeline = Vec::new();
    if let Ok(filter) = index.options.get_document("partialFilterExpression") {
        pipeline.push(doc! { "$match": filter.clone() });
    }
    if index.options.get_bool("sparse") == Ok(true) {
        let any: Vec<Bson> = index
            .keys
            .keys()
            .map(|k| Bson::Document(doc! { k: { "$exists": true } }))
            .collect();
        pipeline.push(doc! { "$match": { "$or": any } });
    }
    pipeline.push(
        doc! { "$group": { "_id": group_id, "n": { "$sum": 1 }, "ids": { "$push": "$_id" } } },
    );
    pipeline.push(doc! { "$match": { "n": { "$gt": 1 } } });
    pipeline.push(doc! { "$limit": 101 });
    let mut agg = coll.aggregate(pipeline);
    if let Ok(c) = index.options.get_document("collation") {
        if let Ok(collation) = bson::from_document(c.clone()) {
            agg = agg.collation(collation);
        }
    }
    let groups: Vec<Document> = agg.await?.try_collect().await?;
    if groups.is_empty() {
        return Ok(None);
    }
    let count = if groups.len() > 100 {
        "more than 100".to_string()
    } else {
        groups.len().to_string()
    };
    let examples: Vec<String> = groups
        .iter()
        .take(SAMPLE as usize)
        .map(|g| {
            let ids: Vec<String> = g
                .get_array("ids")
                .map(|a| a.iter().take(3).map(show_id).collect())
                .unwrap_or_default();
            format!(
                "{} in _id {}",
                crate::compile::to_json(g.get_document("_id").unwrap_or(&Document::new())),
                ids.join(", ")
            )
        })
        .collect();
    Ok(Some(format!(
                "unique index {} would fail: {count} duplicated value(s), e.g. {}; remove the duplicates first",
                index.name,
                examples.join("; ")
            )))
}

async fn sample_ids(
    coll: &mongodb::Collection<Document>,
    filter: Document,
) -> mongodb::error::Result<Vec<String>> {
    let docs: Vec<Document> = coll
        .find(filter)
        .projection(doc! { "_id": 1 })
        .limit(SAMPLE)
        .await?
        .try_collect()
        .await?;
    Ok(docs
        .iter()
        .filter_map(|d| d.get("_id"))
        .map(show_id)
        .collect())
}

fn show_id(b: &Bson) -> String {
    match b {
        Bson::ObjectId(o) => o.to_hex(),
        Bson::String(s) => s.clone(),
        other => other.to_string(),
    }
}
