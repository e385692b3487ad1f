//! Where a tenant's data lives on a sharded cluster: in the zone its region maps to
//! (`sharding.zones`). A move places its new target there before the copy and releases
//! the tenant's zone ranges from the side it removes; `caas tenant move <id> --region R`
//! changes the region: the registry first, then the placement, so a rerun (or a `schema
//! apply`, which reads the registry) converges to it after a kill. The steps come from
//! [`sharding::tenant_steps`] (pure); this module runs them. On a replica set nothing is
//! placed: the region is recorded and the report says so.

use anyhow::{anyhow, bail, Result};
use bson::{doc, Bson, DateTime};
use mongodb::ClientSession;

use super::mover::{Held, Mover, Report};
use super::state::{MoveState, Phase};
use crate::fleet::registry::{self, Tenant};
use crate::fleet::sharding;
use crate::plan::shard::{ShardChange, ShardStep};
use crate::tenancy::Tier;

impl Mover<'_> {
    /// Where a move will leave the tenant (its tier, and region), refused here on a
    /// cluster, before anything is written, if that region's zone cannot take it; off a
    /// cluster, the note (once). With whether the server is a cluster.
    pub(super) async fn destination(
        &self,
        t: &Tenant,
        to: Tier,
        region: Option<&str>,
        creating: bool,
    ) -> Result<(Tenant, bool)> {
        let mut placed = t.clone();
        placed.tier = to;
        if let Some(r) = region {
            placed.region = Some(r.to_owned());
        }
        let plan = sharding::plan_tenant(self.conn, self.config, self.specs, &placed, creating);
        if plan.await?.is_none() {
            if let Some(note) = self.not_a_cluster_note(placed.region.as_deref()) {
                (self.progress)(&format!("{}: note: {note}", t.id));
            }
            return Ok((placed, false));
        }
        Ok((placed, true))
    }

    /// Place `tenant` on the cluster: the lines for the report (none on a replica set).
    pub(super) async fn place(&self, tenant: &Tenant, creating: bool) -> Result<Vec<String>> {
        let plan = sharding::plan_tenant(self.conn, self.config, self.specs, tenant, creating);
        match plan.await? {
            Some(steps) => self.run_steps(&tenant.id, steps).await,
            None => Ok(Vec::new()),
        }
    }

    /// Place a move's new target (created, still empty or partly copied after a kill) in
    /// the zone of the region the move takes the tenant to.
    pub(super) async fn place_new_target(&self, s: &MoveState) -> Result<()> {
        let mut t = self.tenant(&s.tenant).await?;
        t.tier = s.to_tier;
        if let Some(r) = &s.to_region {
            t.region = Some(r.clone());
        }
        self.place(&t, true).await.map(drop)
    }

    /// Remove the tenant's zone ranges from the side of a move that is removed (`tier` is
    /// that side's): a range left behind would pin a later tenant of the same name, or
    /// show as undeclared drift. Nothing on a replica set.
    pub(super) async fn release(&self, id: &str, tier: Tier) -> Result<Vec<String>> {
        let mut side = self.tenant(id).await?;
        side.tier = tier;
        side.region = None;
        let plan = sharding::plan_tenant(self.conn, self.config, self.specs, &side, false);
        let Some(steps) = plan.await? else {
            return Ok(Vec::new());
        };
        let steps = steps
            .into_iter()
            .filter(|s| matches!(s.step, ShardStep::RemoveZoneRange { .. }))
            .collect();
        self.run_steps(id, steps).await
    }

    /// Run sharding steps in order; a failure names the step and says how to continue.
    async fn run_steps(&self, id: &str, steps: Vec<ShardChange>) -> Result<Vec<String>> {
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let applied = sharding::apply_cluster(self.conn, steps, false, false).await?;
        let mut lines: Vec<String> = applied
            .done
            .iter()
            .map(|c| format!("{}: {}", c.namespace, c.summary()))
            .collect();
        if let Some((c, e)) = &applied.failed {
            bail!(
                "placing tenant `{id}`: {} ({}) failed: {e}; {} step(s) done before it; rerun the same command to continue",
                c.namespace,
                c.summary(),
                lines.len()
            );
        }
        for (c, why) in &applied.skipped {
            lines.push(format!("{}: {} not run: {why}", c.namespace, c.summary()));
        }
        for i in &applied.inconsistencies {
            lines.push(format!(
                "checkMetadataConsistency: {} on {}: {}",
                i.kind,
                i.shards.join(", "),
                i.description
            ));
        }
        for l in &lines {
            (self.progress)(&format!("{id}: {l}"));
        }
        Ok(lines)
    }

    /// On a replica set, what a region does not do there (said once per command).
    pub(super) fn not_a_cluster_note(&self, region: Option<&str>) -> Option<String> {
        let zone = region.and_then(|r| self.config.sharding.zones.get(r))?;
        Some(format!(
            "region `{}` maps to zone `{zone}`, but the server is not a sharded cluster (hello.msg is not \"isdbgrid\"): there are no zones, so the region is recorded and the data stays where the replica set keeps it (--require-sharded makes this an error)",
            region.unwrap_or_default()
        ))
    }

    /// `--region` without `--to`: record the new region, then place the tenant's data in
    /// its zone (rerun: the registry already says it, the placement continues).
    pub(super) async fn change_region(
        &self,
        held: &Held,
        id: &str,
        region: &str,
    ) -> Result<Report> {
        crate::tenancy::check_region(region).map_err(anyhow::Error::msg)?;
        let mut t = self.tenant(id).await?;
        let old = t.region.replace(region.to_owned());
        // Refused (on a cluster) before the registry is written, if it cannot be placed.
        let plan = sharding::plan_tenant(self.conn, self.config, self.specs, &t, false).await?;
        let mut notes = Vec::new();
        match old.as_deref() {
            Some(o) if o == region => notes.push(format!(
                "already in region `{region}`; its placement is checked"
            )),
            _ => {
                self.set_region(held, id, old.as_deref(), region).await?;
                notes.push(format!(
                    "region {} -> {region} in the registry",
                    old.as_deref().unwrap_or("(none)")
                ));
            }
        }
        match plan {
            None => notes.extend(self.not_a_cluster_note(Some(region))),
            Some(steps) if steps.is_empty() => {
                notes.push("its data is where the region's zone wants it".into())
            }
            Some(steps) => notes.extend(self.run_steps(id, steps).await?),
        }
        Ok(Report {
            tenant: id.to_owned(),
            from: t.tier,
            to: t.tier,
            phase: Phase::Finished,
            copied: 0,
            changes_applied: 0,
            verified: vec![],
            fence_ms: None,
            lag_ms: 0,
            source_kept_until: None,
            region: Some(region.to_owned()),
            notes,
        })
    }

    /// The registry's `region` from `old` to `region`, in a transaction fenced by the
    /// tenant's lease; an entry changed meanwhile is left alone.
    async fn set_region(
        &self,
        held: &Held,
        id: &str,
        old: Option<&str>,
        region: &str,
    ) -> Result<()> {
        let was = old.map_or(Bson::Null, |o| Bson::String(o.to_owned()));
        let filter = doc! { "tenant_id": id, "region": was, "deleted_at": { "$exists": false } };
        let update = doc! { "$set": { "region": region, "updated_at": DateTime::now() } };
        let what = format!("setting the region of `{id}`");
        let wrote = self
            .update_registry(held, filter, update, None, &what)
            .await?;
        if !wrote {
            bail!("the registry entry of `{id}` changed during the command (its region is no longer {}); nothing was changed; rerun", old.unwrap_or("unset"));
        }
        Ok(())
    }

    /// Update the tenant's registry entry under the tenant's lease (with the move's state,
    /// when given, in the same transaction): `false` when `filter` matched nothing. A
    /// validator's refusal names the field to fix.
    pub(super) async fn update_registry(
        &self,
        held: &Held,
        filter: bson::Document,
        update: bson::Document,
        s: Option<&MoveState>,
        what: &str,
    ) -> Result<bool> {
        let platform = self.platform();
        let reg = platform.collection::<bson::Document>(registry::REGISTRY);
        let mut session = held.session.lock().await;
        let wrote = held
            .lease
            .fence()
            .txn(&mut session, async |ses: &mut ClientSession| {
                let u = reg
                    .update_one(filter.clone(), update.clone())
                    .session(&mut *ses)
                    .await?;
                if u.matched_count != 1 {
                    return Ok(None);
                }
                if let Some(s) = s {
                    super::state::save(&platform, s, ses).await?;
                }
                Ok(Some(()))
            })
            .await
            .map_err(|e| match e {
                crate::migrate::lock::FenceError::Server(e) => {
                    let ns = format!("{}.{}", platform.name(), registry::REGISTRY);
                    let fix = if crate::base::driver::code_of(&e) == Some(121) {
                        "\n  fix: use a region the registry's spec allows (field `region` of saas_clients), or add it there and `caas schema apply`"
                    } else {
                        ""
                    };
                    anyhow!("{what}: {}{fix}", crate::base::driver::explain_write_error(&e, &ns))
                }
                other => anyhow!("{what}: {other}"),
            })?;
        Ok(wrote.is_some())
    }
}
