//! A flipped move's kept source and its grace period (`lifecycle.keep_source_hours`):
//! `--to` again after a flip, `--finish-due`, and whether a move is due.

use std::time::Duration;

use anyhow::{bail, Result};

use super::mover::{Command, Held, Mover, Report};
use super::state::{self, MoveState};
use crate::migrate::lock;
use crate::tenancy::Tier;

impl Mover<'_> {
    /// `--to` for a tenant whose last move flipped and keeps its source: the same tier
    /// reports it (or finishes it, with `--finish` or once due); another tier finishes it
    /// first once due, and is refused before.
    pub(super) async fn after_flipped(
        &self,
        held: &Held,
        s: MoveState,
        tier: Tier,
        finish: bool,
        region: Option<String>,
    ) -> Result<Report> {
        let due = self.is_due(&s).await?;
        if s.to_tier == tier && (region.is_none() || region == s.to_region) {
            return self.drive(held, s, finish || due).await;
        }
        if !due {
            let tenant = &s.tenant;
            bail!(
                "tenant `{tenant}` moved {} -> {} and its old location `{}` is kept until the grace period ends (lifecycle.keep_source_hours); remove it now with `caas tenant move {tenant} --finish`, then move the tenant again",
                s.from_tier, s.to_tier, s.from_target
            );
        }
        let tenant = s.tenant.clone();
        self.finish(held, s).await?;
        if tier == self.tenant(&tenant).await?.tier {
            let region = region.expect("another tier or another region");
            return self.change_region(held, &tenant, &region).await;
        }
        let Some(s) = self.begin(held, &tenant, tier, region.as_deref()).await? else {
            return self.registry_only_report(&tenant, tier, region).await;
        };
        self.drive(held, s, finish).await
    }

    /// `--finish-due` for a tenant whose kept source is no longer due: another run removed
    /// it (or moved the tenant again) between the listing and this tenant's lease. The work
    /// is done, not failed: the latest state says what became of it.
    pub(super) async fn nothing_due(&self, tenant: &str) -> Result<Report> {
        let Some(s) = state::read(&self.platform(), tenant).await? else {
            bail!("tenant `{tenant}` has no move; `caas tenant moves` lists them");
        };
        let note = format!(
            "another run got here first; this one removed nothing (the move is now {:?})",
            s.phase
        );
        Ok(Report::of(&s, vec![note]))
    }

    pub(super) fn keep_source(&self) -> Duration {
        Duration::from_secs(self.config.lifecycle.keep_source_hours.saturating_mul(3600))
    }

    /// Whether a flipped move's grace period is over, by the server's clock.
    pub(super) async fn is_due(&self, s: &MoveState) -> Result<bool> {
        let Some(at) = state::source_due_at(s, self.keep_source()) else {
            return Ok(false);
        };
        Ok(lock::server_now(&self.platform()).await? >= at)
    }

    /// Remove the kept source of every flipped move past its grace period, each under its
    /// tenant's lease: the tenant and what became of it (one that fails does not stop the
    /// others).
    pub async fn finish_due(&self) -> Result<Vec<(String, Result<Report>)>> {
        let mut out = Vec::new();
        for s in state::open(&self.platform()).await? {
            if self.is_due(&s).await? {
                let done = self.run(&s.tenant, Command::FinishIfDue).await;
                out.push((s.tenant, done));
            }
        }
        Ok(out)
    }
}
