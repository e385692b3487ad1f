//! `create_index` and `drop_index`: one command each, then the checkpoint. Both are
//! idempotent on the server, so a rerun after a crash between the two is harmless.

use bson::doc;

use super::{describe_err, mark_done, StepCtx, StepError};
use crate::compile::compile_index;
use crate::migrate::source::{CreateIndexStep, DropIndexStep};

pub(super) async fn create(
    ctx: &StepCtx<'_>,
    next: u32,
    s: &CreateIndexStep,
) -> Result<(), StepError> {
    let p = ctx.place(&s.collection)?;
    let spec = compile_index(&s.index, &p).to_create_spec();
    let db = ctx.client.database(&p.database);
    db.run_command(doc! { "createIndexes": &p.collection, "indexes": [spec] })
        .await
        .map_err(|e| describe_err(&e))?;
    mark_done(ctx, next).await
}

pub(super) async fn drop(ctx: &StepCtx<'_>, next: u32, s: &DropIndexStep) -> Result<(), StepError> {
    let p = ctx.place(&s.collection)?;
    let db = ctx.client.database(&p.database);
    match db
        .run_command(doc! { "dropIndexes": &p.collection, "index": &s.name })
        .await
    {
        Ok(_) => {}
        Err(e) if matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if c.code == 27 || c.code == 26) =>
            {}
        Err(e) => return Err(describe_err(&e).into()),
    }
    mark_done(ctx, next).await
}
