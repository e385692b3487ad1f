//! `caas tenant move`: the phases up to the cutover (refusals, the new target, the copy,
//! catching up). [`super::cutover`] has the cutover, the flip, `--finish` and `--abort`.
//!
//! Everything runs under the tenant's lease (`tenant:<id>` in the platform database's
//! `caas_locks`), and every write that records progress commits in one transaction with
//! the data it records, fenced by that lease: a rerun after `kill -9` continues from the
//! last commit, and a runner that lost its lease commits nothing more.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bson::{doc, DateTime};
use mongodb::{ClientSession, Database};
use tokio::sync::Mutex;

use super::route::{self, Route};
use super::state::{self, MoveState, Phase, Progress};
use super::sync;
use crate::config::Config;
use crate::connect::Connection;
use crate::fleet::registry::{self, Selection, Tenant};
use crate::migrate::lock::{self, FenceError, Lease};
use crate::migrate::Migration;
use crate::plan::Action;
use crate::spec::CollectionSpec;
use crate::tenancy::Tier;

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start or continue a move to this tier (and finish it at once with `finish`); with
    /// `region`, to that region too (the new target is placed in its zone).
    To {
        tier: Tier,
        finish: bool,
        region: Option<String>,
    },
    /// Change the tenant's region where it is: the registry, then (on a cluster) its data
    /// into the region's zone.
    Region(String),
    /// Remove the kept source of a flipped move.
    Finish,
    /// Remove the kept source of a flipped move once its grace period is over.
    FinishIfDue,
    /// Undo a move that has not flipped: drop the new copy, lift the fence.
    Abort,
}

/// How often the copy reads the change stream, by default.
pub const READ_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
pub struct MoveOptions {
    pub batch: usize,
    pub lock_wait: Duration,
    pub lease: Duration,
    /// Cut over once a marker written into the source database is read back within
    /// `cutover_lag`, with no more than `cutover_at` changes before it.
    pub cutover_at: u64,
    pub cutover_lag: Duration,
    /// How often the copy reads the change stream (and records what changed).
    pub read_every: Duration,
    /// Stop (as if killed) once this phase is reached: for tests of resumption.
    pub stop_after: Option<Phase>,
}

impl Default for MoveOptions {
    fn default() -> Self {
        MoveOptions {
            batch: 500,
            lock_wait: Duration::from_secs(5),
            lease: lock::LEASE,
            cutover_at: 50,
            cutover_lag: Duration::from_millis(250),
            read_every: READ_EVERY,
            stop_after: None,
        }
    }
}

/// The engine of one move command.
pub struct Mover<'a> {
    pub conn: &'a Connection,
    pub config: &'a Config,
    pub specs: &'a [&'a CollectionSpec],
    pub migrations: &'a [Migration],
    pub opts: MoveOptions,
    pub progress: &'a (dyn Fn(&str) + Sync),
}

/// The tenant's lease and the session its fenced transactions run on.
pub(super) struct Held {
    pub lease: Lease,
    pub session: Mutex<ClientSession>,
}

/// How a move command ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub tenant: String,
    pub from: Tier,
    pub to: Tier,
    pub phase: Phase,
    pub copied: u64,
    pub changes_applied: u64,
    pub verified: Vec<state::Verified>,
    pub fence_ms: Option<i64>,
    pub lag_ms: i64,
    /// A flipped move's kept source is removed after this (RFC 3339).
    pub source_kept_until: Option<String>,
    /// The region the command took the tenant to (`--region`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub notes: Vec<String>,
}

impl Report {
    pub(super) fn of(s: &MoveState, notes: Vec<String>) -> Report {
        Report {
            tenant: s.tenant.clone(),
            from: s.from_tier,
            to: s.to_tier,
            phase: s.phase,
            copied: s.progress.iter().map(|p| p.copied).sum(),
            changes_applied: s.changes_applied,
            verified: s.verified.clone(),
            fence_ms: s.fence_ms,
            lag_ms: s.lag_ms,
            source_kept_until: None,
            region: s.to_region.clone(),
            notes,
        }
    }
}

impl Mover<'_> {
    pub(super) fn platform(&self) -> Database {
        self.conn.client.database(&self.config.databases.platform)
    }

    pub async fn run(&self, tenant: &str, cmd: Command) -> Result<Report> {
        crate::tenancy::check_tenant_id(tenant).map_err(anyhow::Error::msg)?;
        let platform = self.platform();
        let session = self.conn.client.start_session().await?;
        let lsid = session.id().clone();
        let lease = lock::acquire(
            &platform,
            &format!("tenant:{tenant}"),
            &crate::migrate::runner::new_owner(),
            self.opts.lock_wait,
            self.opts.lease,
            lsid,
        )
        .await
        .map_err(|e| {
            anyhow!(
                "tenant `{tenant}`: another caas run is moving, suspending or removing it: {e:#}"
            )
        })?;
        let held = Held {
            lease,
            session: Mutex::new(session),
        };
        let result = self.run_held(&held, tenant, cmd).await;
        let released = held.lease.release().await;
        let report = result?;
        released?;
        Ok(report)
    }

    async fn run_held(&self, held: &Held, tenant: &str, cmd: Command) -> Result<Report> {
        let platform = self.platform();
        let current = state::read(&platform, tenant)
            .await?
            .filter(|s| s.phase.is_open());
        match (cmd, current) {
            (Command::Region(_), Some(s)) => bail!(
                "tenant `{tenant}` is being moved {} -> {} (phase {:?}); change its region when the move has ended: `caas tenant move {tenant} --finish`, or `--abort`",
                s.from_tier, s.to_tier, s.phase
            ),
            (Command::Region(region), None) => self.change_region(held, tenant, &region).await,
            (Command::Finish, Some(s)) => self.finish(held, s).await,
            (Command::FinishIfDue, Some(s)) if self.is_due(&s).await? => self.finish(held, s).await,
            (Command::FinishIfDue, _) => self.nothing_due(tenant).await,
            (Command::Abort, Some(s)) => self.abort(held, s).await,
            (Command::Finish | Command::Abort, None) => {
                bail!("tenant `{tenant}` has no move in progress; `caas tenant moves` lists them")
            }
            (Command::To { .. }, Some(s)) if s.aborting_at.is_some() => bail!(
                "tenant `{tenant}`'s move {} -> {} was being aborted when it stopped: part of its copy is removed, so it cannot go on; finish the abort with `caas tenant move {tenant} --abort`, then move again",
                s.from_tier, s.to_tier
            ),
            (Command::To { tier, finish, region }, Some(s)) if s.phase == Phase::Flipped => {
                self.after_flipped(held, s, tier, finish, region).await
            }
            (Command::To { tier, finish, region }, Some(s)) => {
                let other_region = region.is_some() && region != s.to_region;
                if s.to_tier != tier || other_region {
                    bail!(
                        "tenant `{tenant}` is already being moved {} -> {}{} (phase {:?}); continue it with `caas tenant move {tenant} --to {}`, or undo it with `--abort`",
                        s.from_tier, s.to_tier,
                        s.to_region.as_deref().map(|r| format!(" (region {r})")).unwrap_or_default(),
                        s.phase, s.to_tier
                    );
                }
                self.drive(held, s, finish).await
            }
            (Command::To { tier, finish, region }, None) => {
                // `--to` its own tier with `--region`: a region change where it is.
                if let Some(r) = &region {
                    if self.tenant(tenant).await?.tier == tier {
                        return self.change_region(held, tenant, r).await;
                    }
                }
                let Some(s) = self.begin(held, tenant, tier, region.as_deref()).await? else {
                    return self.registry_only_report(tenant, tier, region).await;
                };
                self.drive(held, s, finish).await
            }
        }
    }

    /// Run the phases from where the state stands.
    pub(super) async fn drive(
        &self,
        held: &Held,
        mut s: MoveState,
        finish: bool,
    ) -> Result<Report> {
        let stop = self.opts.stop_after;
        self.copy_is_there(&s).await?;
        while s.phase < Phase::Flipped {
            if stop.is_some_and(|p| s.phase > p) {
                return Ok(Report::of(
                    &s,
                    vec![format!(
                        "stopped after phase {:?} (--stop-after)",
                        stop.expect("some")
                    )],
                ));
            }
            s = match s.phase {
                Phase::Copy => self.copy(held, s).await?,
                Phase::Catchup => self.catch_up(held, s).await?,
                _ => self.cutover(held, s).await?,
            };
        }
        let keep = self.keep_source();
        if finish || keep.is_zero() {
            return self.finish(held, s).await;
        }
        let until = state::source_due_at(&s, keep)
            .and_then(|t| t.try_to_rfc3339_string().ok())
            .unwrap_or_default();
        let note = format!(
            "the old location `{}` is kept read-only until {until} (lifecycle.keep_source_hours), then `caas tenant move --finish-due` removes it; `caas tenant move {} --finish` removes it now",
            s.from_target, s.tenant
        );
        let mut report = Report::of(&s, vec![note]);
        report.source_kept_until = Some(until);
        Ok(report)
    }

    /// A fenced transaction that writes `s` last (with whatever `body` wrote before it).
    pub(super) async fn commit<F>(&self, held: &Held, s: &MoveState, body: F) -> Result<()>
    where
        F: AsyncFn(&mut ClientSession) -> mongodb::error::Result<()>,
    {
        self.commit_counted(held, s, async |ses: &mut ClientSession| {
            body(ses).await.map(|()| Vec::new())
        })
        .await
        .map(drop)
    }

    /// [`Self::commit`] for a body that writes to the target and returns how it changed the
    /// target's count of the tenant's documents, per pair: the state saved (and returned)
    /// carries the new counts.
    pub(super) async fn commit_counted<F>(
        &self,
        held: &Held,
        s: &MoveState,
        body: F,
    ) -> Result<MoveState>
    where
        F: AsyncFn(&mut ClientSession) -> mongodb::error::Result<Vec<(usize, i64)>>,
    {
        let platform = self.platform();
        let mut session = held.session.lock().await;
        held.lease
            .fence()
            .txn(&mut session, async |ses: &mut ClientSession| {
                let deltas = body(&mut *ses).await?;
                let mut saved = s.clone();
                for (i, d) in deltas {
                    saved.progress[i].target_count += d;
                }
                state::save(&platform, &saved, ses).await?;
                Ok(Some(saved))
            })
            .await
            .map_err(|e| match e {
                FenceError::Lost(l) => anyhow::Error::new(l),
                FenceError::Server(e) => anyhow!(
                    "recording the move of `{}`: {}",
                    s.tenant,
                    crate::base::driver::describe(&e)
                ),
            })?
            .ok_or_else(|| anyhow!("recording the move of `{}`: nothing was written", s.tenant))
    }

    pub(super) async fn tenant(&self, id: &str) -> Result<Tenant> {
        let (live, _) = registry::list_all(&self.platform(), self.config).await?;
        live.into_iter().find(|t| t.id == id).ok_or_else(|| {
            anyhow!("tenant `{id}` is not registered; `caas tenant list` shows who is")
        })
    }

    /// Check everything, open the change stream and record the move (before anything is
    /// created: a kill after this point is seen by `--abort` and by the rerun). None: a registry change was enough (both tiers share a layout).
    pub(super) async fn begin(
        &self,
        held: &Held,
        id: &str,
        to: Tier,
        region: Option<&str>,
    ) -> Result<Option<MoveState>> {
        let t = self.tenant(id).await?;
        if t.status == "suspended" {
            bail!("tenant `{id}` is suspended; `caas tenant resume {id}` first, then move it");
        }
        registry::check_placement(self.config, id, to).map_err(anyhow::Error::msg)?;
        if let Some(r) = region {
            crate::tenancy::check_region(r).map_err(anyhow::Error::msg)?;
        }
        let r =
            route::route(self.config, self.specs, id, t.tier, to).map_err(anyhow::Error::msg)?;
        let (placed, cluster) = self.destination(&t, to, region, !r.registry_only()).await?;
        if r.registry_only() {
            self.flip_registry(held, &r, None, region).await?;
            if region.is_some() && cluster {
                self.place(&placed, false).await?;
            }
            return Ok(None);
        }
        self.refuse_occupied(&r).await?;
        self.refuse_over_budget(&r).await?;
        self.check_ledgers(&r).await?;
        let mut stream =
            sync::open_stream(&self.conn.client, &r.pairs[0].from.database, &r.pairs, None).await?;
        // The driver learns the stream's position from its first reply; a change read
        // here is harmless, since the copy that follows reads every document as it is now.
        let _ = stream.next_if_any().await?;
        if sync::token_of(&stream).is_none() {
            bail!("the change stream on {} gave no resume token; caas needs one to move a tenant online", r.pairs[0].from.database);
        }
        let now = DateTime::now();
        let s = MoveState {
            tenant: id.to_owned(),
            move_id: bson::oid::ObjectId::new().to_hex(),
            from_tier: r.from_tier,
            to_tier: to,
            from_target: r.from.to_string(),
            to_target: r.to.to_string(),
            to_region: region.map(str::to_owned),
            phase: Phase::Copy,
            progress: vec![Progress::default(); r.pairs.len()],
            pairs: r.pairs.clone(),
            resume_token: sync::token_of(&stream),
            flip_token: None,
            drained_at: None,
            aborting_at: None,
            changes_applied: 0,
            lag_ms: 0,
            verified: vec![],
            recheck: vec![],
            fence_raised_at: None,
            fence_ms: None,
            owner: held.lease.fence().id().to_owned(),
            started_at: now,
            updated_at: now,
            flipped_at: None,
            ended_at: None,
        };
        self.commit(held, &s, async |_: &mut ClientSession| Ok(()))
            .await?;
        (self.progress)(&format!(
            "{id}: moving {} -> {} ({} collection(s))",
            r.from,
            r.to,
            r.pairs.len()
        ));
        Ok(Some(s))
    }

    pub(super) async fn registry_only_report(
        &self,
        id: &str,
        to: Tier,
        region: Option<String>,
    ) -> Result<Report> {
        let t = self.tenant(id).await?;
        Ok(Report {
            tenant: id.to_owned(),
            from: t.tier,
            to,
            phase: Phase::Finished,
            copied: 0,
            changes_applied: 0,
            verified: vec![],
            fence_ms: Some(0),
            lag_ms: 0,
            source_kept_until: None,
            region,
            notes: vec![format!(
                "{} and {to} share a layout: only the registry changed",
                t.tier
            )],
        })
    }

    /// Refuse a target namespace that already holds documents of (or for) the tenant.
    async fn refuse_occupied(&self, r: &Route) -> Result<()> {
        for p in &r.pairs {
            let n = sync::count(&self.conn.client, &p.to, &r.tenant).await?;
            if n > 0 {
                bail!(
                    "{} already holds {n} document(s){}; caas will not move tenant `{}` on top of them (remove them, or `caas tenant move {} --abort` if an earlier move left them)",
                    p.to.label(),
                    if p.to.shared { format!(" of tenant `{}`", r.tenant) } else { String::new() },
                    r.tenant,
                    r.tenant
                );
            }
        }
        Ok(())
    }

    /// Refuse a move whose new target would take the deployment over its namespace budget.
    async fn refuse_over_budget(&self, r: &Route) -> Result<()> {
        let mut fleet =
            crate::fleet::resolve(self.conn, self.config, &Selection::default()).await?;
        for t in fleet.tenants.iter_mut().filter(|t| t.id == r.tenant) {
            t.tier = r.to_tier;
        }
        fleet.targets =
            registry::resolve_targets(&fleet.tenants, self.config, &Selection::default())?;
        let live = crate::fleet::read_live(self.conn, self.config, &fleet, self.specs, 4).await?;
        let after = crate::fleet::namespace_estimate(self.config, &fleet, self.specs, &live);
        let budget = self.config.connection.namespace_budget;
        if after as u64 > budget {
            bail!(
                "moving tenant `{}` to {} would bring the databases caas manages to about {after} collections and indexes, over the budget of {budget} (connection.namespace_budget in caas.toml); raise the budget or move the tenant to a tier without its own collections",
                r.tenant, r.to_tier
            );
        }
        Ok(())
    }

    /// The ledgers of both targets, compared before anything is written.
    pub(super) async fn ledger_copies(
        &self,
        r: &Route,
    ) -> Result<Vec<crate::migrate::ledger::Entry>> {
        use crate::migrate::status::{applies_to, ledger_db};
        let client = &self.conn.client;
        let (from, to) = (r.from.to_string(), r.to.to_string());
        let mut source = crate::migrate::ledger::read(
            &client.database(&ledger_db(&r.from, self.config)),
            std::slice::from_ref(&from),
        )
        .await?;
        let mut dest = crate::migrate::ledger::read(
            &client.database(&ledger_db(&r.to, self.config)),
            std::slice::from_ref(&to),
        )
        .await?;
        let versions: Vec<u32> = self
            .migrations
            .iter()
            .filter(|m| applies_to(m, &r.to, self.config) && applies_to(m, &r.from, self.config))
            .map(|m| m.version)
            .collect();
        route::ledger_for_destination(
            r,
            &versions,
            &source.remove(&from).unwrap_or_default(),
            &dest.remove(&to).unwrap_or_default(),
        )
        .map_err(anyhow::Error::msg)
    }

    async fn check_ledgers(&self, r: &Route) -> Result<()> {
        self.ledger_copies(r).await.map(drop)
    }

    /// Create the new target from the specs: its collections with their validators first
    /// (`indexes: false`), then, after the copy, everything else (a bulk load into
    /// collections without secondary indexes is faster; BENCHMARKS.md has the figures).
    pub(super) async fn create_target(&self, r: &Route, indexes: bool) -> Result<()> {
        let mut fleet = crate::fleet::resolve(
            self.conn,
            self.config,
            &Selection {
                tenants: vec![r.tenant.clone()],
                tiers: vec![],
            },
        )
        .await?;
        for t in fleet.tenants.iter_mut().filter(|t| t.id == r.tenant) {
            t.tier = r.to_tier;
        }
        fleet.targets = vec![r.to.clone()];
        let compiled = crate::fleet::desired(self.specs, &fleet, self.config);
        let mut plans =
            crate::fleet::plan(self.conn, self.config, &fleet, self.specs, &compiled, 4)
                .await?
                .plans;
        for p in &mut plans {
            p.changes.retain(|c| {
                !c.undeclared && (indexes || matches!(c.action, Action::CreateCollection { .. }))
            });
        }
        let opts = crate::apply::ApplyOptions {
            concurrency: 1,
            ..Default::default()
        };
        for report in crate::apply::apply(&self.conn.client, plans, opts, &|_| {}).await {
            if let Some(e) = report.error {
                bail!("creating {} for tenant `{}`: {e}", report.target, r.tenant);
            }
        }
        Ok(())
    }

    /// Point the registry at the tenant's new tier (and data location) in one write, with
    /// the move's state when there is one.
    pub(super) async fn flip_registry(
        &self,
        held: &Held,
        r: &Route,
        s: Option<&MoveState>,
        region: Option<&str>,
    ) -> Result<()> {
        let location = registry::data_location(self.config, &r.tenant, r.to_tier);
        let filter = doc! { "tenant_id": &r.tenant, "tier": r.from_tier.as_str() };
        let mut set = doc! { "tier": r.to_tier.as_str(), "data_location": location, "updated_at": DateTime::now() };
        if let Some(region) = region {
            set.insert("region", region);
        }
        let update = doc! { "$set": set };
        let what = format!("flipping the registry entry of `{}`", r.tenant);
        if !self.update_registry(held, filter, update, s, &what).await? {
            bail!("the registry entry of `{}` is no longer tier {}: someone changed it during the move; nothing was flipped", r.tenant, r.from_tier);
        }
        Ok(())
    }
}
