//! `aggregate`: a pipeline ending in a `$merge`, with collection names mapped to the
//! target's physical names and, on the shared target, run once per tenant when it joins.

use bson::{doc, Bson, Document};
use futures::TryStreamExt;

use super::StepError;
use super::{describe_err, mark_done, StepCtx};
use crate::compile::json_to_bson;
use crate::migrate::source::AggregateStep;

pub(super) async fn run(ctx: &StepCtx<'_>, next: u32, s: &AggregateStep) -> Result<(), StepError> {
    let from = ctx.place(&s.collection)?;
    let coll = ctx
        .client
        .database(&from.database)
        .collection::<Document>(&from.collection);
    for pipeline in ctx.aggregate_runs(s)? {
        let cursor = coll
            .aggregate(pipeline)
            .await
            .map_err(|e| describe_err(&e))?;
        let _: Vec<Document> = cursor.try_collect().await.map_err(|e| describe_err(&e))?;
    }
    mark_done(ctx, next).await
}

impl StepCtx<'_> {
    /// The pipelines an aggregate step runs: collection names mapped to this target's
    /// physical names, ending in the `$merge` into `into`. On the shared target a pipeline
    /// that joins other collections runs once per tenant, every join narrowed to that
    /// tenant, so no tenant's documents meet another's.
    pub fn aggregate_runs(&self, s: &AggregateStep) -> Result<Vec<Vec<Document>>, String> {
        let (from, into) = (self.place(&s.collection)?, self.place(&s.into)?);
        let physical = |logical: &str| {
            self.place(logical)
                .ok()
                .filter(|p| p.database == from.database)
                .map(|p| p.collection)
        };
        let joins = !crate::migrate::pipeline::scan(&s.pipeline).0.is_empty();
        let per_tenant: Vec<Option<&str>> =
            if joins && self.target.kind == crate::tenancy::TargetKind::Shared {
                self.tenants_here.iter().map(|t| Some(t.as_str())).collect()
            } else {
                vec![None]
            };
        let on: Bson = if s.on.is_empty() {
            Bson::String("_id".into())
        } else {
            Bson::Array(s.on.iter().cloned().map(Bson::String).collect())
        };
        let merge = doc! { "$merge": { "into": { "db": &into.database, "coll": &into.collection }, "on": on, "whenMatched": "merge", "whenNotMatched": "insert" } };
        let scope = self.filter(&s.collection, &Default::default());
        per_tenant
            .into_iter()
            .map(|tenant| {
                let mut pipeline: Vec<Document> = Vec::new();
                if let Some(t) = tenant {
                    pipeline.push(doc! { "$match": { "tenant_id": t } });
                } else if !scope.is_empty() {
                    pipeline.push(doc! { "$match": scope.clone() });
                }
                let mapped = crate::migrate::pipeline::map(&s.pipeline, &physical, tenant)?;
                pipeline.extend(mapped.into_iter().filter_map(|st| {
                    json_to_bson(&serde_json::Value::Object(st))
                        .as_document()
                        .cloned()
                }));
                pipeline.push(merge.clone());
                Ok(pipeline)
            })
            .collect()
    }
}
