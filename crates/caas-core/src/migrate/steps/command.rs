//! `command`: a database command, `{collection}` placeholders replaced by physical names,
//! run in the scope's database.

use super::{describe_err, mark_done, StepCtx, StepError};
use crate::compile::json_to_bson;
use crate::migrate::source::{CommandStep, Scope};

pub(super) async fn run(ctx: &StepCtx<'_>, next: u32, s: &CommandStep) -> Result<(), StepError> {
    let cmd = json_to_bson(&ctx.command(&s.command))
        .as_document()
        .cloned()
        .unwrap_or_default();
    ctx.client
        .database(&ctx.command_db())
        .run_command(cmd)
        .await
        .map_err(|e| describe_err(&e))?;
    mark_done(ctx, next).await
}

impl StepCtx<'_> {
    pub(super) fn command_db(&self) -> String {
        match self.scope {
            Scope::Tenant => match &self.target.kind {
                crate::tenancy::TargetKind::Database { tenant, .. } => {
                    self.dbs.tenant_database(tenant)
                }
                _ => self.dbs.shared.clone(),
            },
            other => self.dbs.for_domain(other.domain()).to_owned(),
        }
    }

    /// Replace `{collection}` placeholders in string values with physical names.
    pub(super) fn command(
        &self,
        cmd: &indexmap::IndexMap<String, serde_json::Value>,
    ) -> serde_json::Value {
        fn walk(v: &serde_json::Value, ctx: &StepCtx<'_>) -> serde_json::Value {
            match v {
                serde_json::Value::String(s) if s.starts_with('{') && s.ends_with('}') => {
                    match ctx.place(&s[1..s.len() - 1]) {
                        Ok(p) => serde_json::Value::String(p.collection),
                        Err(_) => v.clone(),
                    }
                }
                serde_json::Value::Array(a) => {
                    serde_json::Value::Array(a.iter().map(|x| walk(x, ctx)).collect())
                }
                serde_json::Value::Object(m) => serde_json::Value::Object(
                    m.iter().map(|(k, x)| (k.clone(), walk(x, ctx))).collect(),
                ),
                other => other.clone(),
            }
        }
        serde_json::Value::Object(
            cmd.iter()
                .map(|(k, v)| (k.clone(), walk(v, self)))
                .collect(),
        )
    }
}
