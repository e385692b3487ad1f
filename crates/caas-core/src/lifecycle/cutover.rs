//! The cutover (fence, drain, verify, ledger, flip), `--finish` and `--abort`.
//!
//! What an application sees: until the fence, nothing. From the fence on, every insert or
//! update of the tenant's documents at the old location fails at once with code 121
//! (DocumentValidationFailure; on mongod its errInfo carries the title `caas write fence`);
//! reads go on. The application re-reads the tenant's registry entry and retries; once
//! the registry is flipped (the same second, typically well under one), the entry names
//! the new location and the retried write succeeds there. Deletes are not refused by
//! MongoDB's validators: a delete sent to the old location before the flip is drained
//! into the new one; one sent after the flip is replayed there by `--finish`.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use bson::{doc, Bson, DateTime};
use mongodb::ClientSession;

use super::catchup::Stream;
use super::mover::{Held, Mover, Report};
use super::route::{self, Route};
use super::state::{MoveState, Phase, Verified};
use super::{sync, wfence};
use crate::migrate::ledger;
use crate::migrate::status::ledger_db;
use crate::tenancy::TargetKind;

impl Mover<'_> {
    pub(super) fn route_of(&self, s: &MoveState) -> Result<Route> {
        let mut r = route::route(self.config, self.specs, &s.tenant, s.from_tier, s.to_tier)
            .map_err(anyhow::Error::msg)?;
        // The collections recorded when the move began are the ones that moved.
        r.pairs = s.pairs.clone();
        Ok(r)
    }

    /// Fence, drain to a marker, verify, copy the ledger, flip the registry.
    pub(super) async fn cutover(&self, held: &Held, mut s: MoveState) -> Result<MoveState> {
        let r = self.route_of(&s)?;
        let client = &self.conn.client;
        let platform = self.platform();
        // Migrations of both targets wait while the ledger is compared and copied.
        let (from_lease, to_lease) = self.lease_both(&r).await?;
        let resumed = s.phase == Phase::Cutover && s.fence_raised_at.is_some();
        if !resumed {
            s.phase = Phase::Cutover;
            s.fence_raised_at = Some(DateTime::now());
            self.commit(held, &s, async |_: &mut ClientSession| Ok(()))
                .await?;
        }
        // Opened before the fence: its first round trips are not part of the window.
        let mut stream: Stream = Some(
            sync::open_stream(
                client,
                &s.pairs[0].from.database,
                &s.pairs,
                s.resume_token.as_ref(),
            )
            .await?,
        );
        let fenced_at = Instant::now();
        for p in &s.pairs {
            wfence::raise(client, &platform, &p.from, &s.tenant).await?;
        }
        tracing::info!(
            ms = fenced_at.elapsed().as_millis() as u64,
            "move: fence raised"
        );
        let verified = self
            .drain_and_verify(held, &mut s, resumed, &mut stream)
            .await;
        tracing::info!(
            ms = fenced_at.elapsed().as_millis() as u64,
            "move: drained and verified"
        );
        let verified = match verified {
            Ok(v) => v,
            Err(e) => {
                let lifted = self.back_to_catchup(held, &mut s).await;
                release(from_lease, to_lease).await;
                lifted?;
                return Err(e.context(format!("tenant `{}`: the cutover did not verify; the fence is lifted and writes go on at the old location; rerun to try again", s.tenant)));
            }
        };
        let mut next = s.clone();
        next.verified = verified;
        next.phase = Phase::Flipped;
        next.flipped_at = Some(DateTime::now());
        next.flip_token = next.resume_token.clone();
        let result = self
            .ledger_and_flip(held, &r, &to_lease, next, fenced_at)
            .await;
        release(from_lease, to_lease).await;
        let next = result?;
        // Services read the tenant at its new location from now on.
        let roles = super::follow::follow_roles(self.conn, self.config, self.specs).await?;
        if roles > 0 {
            (self.progress)(&format!(
                "{}: {roles} service role(s) updated to follow the tenant",
                next.tenant
            ));
        }
        (self.progress)(&format!(
            "{}: flipped to {} ({}); writes were refused for {} ms",
            next.tenant,
            next.to_tier,
            next.to_target,
            next.fence_ms.unwrap_or(0)
        ));
        Ok(next)
    }

    /// The migration leases of the source target and, unless it is the shared target
    /// (whose ledger a tenant does not own), of the destination.
    async fn lease_both(&self, r: &Route) -> Result<(TargetLease, Option<TargetLease>)> {
        let client = &self.conn.client;
        let lease = |t: &crate::tenancy::Target| {
            let db = client.database(&ledger_db(t, self.config));
            let name = t.to_string();
            async move {
                crate::migrate::runner::lease_target(
                    client,
                    &db,
                    &name,
                    self.opts.lock_wait,
                    self.opts.lease,
                )
                .await
            }
        };
        let from = lease(&r.from).await?;
        let to = match r.to.kind {
            TargetKind::Shared => None,
            _ => match lease(&r.to).await {
                Ok(l) => Some(l),
                Err(e) => {
                    release(from, None).await;
                    return Err(e.into());
                }
            },
        };
        Ok((from, to))
    }

    /// A cutover that did not verify: lift the fence so writes go on at the old location,
    /// and record the move as catching up again.
    async fn back_to_catchup(&self, held: &Held, s: &mut MoveState) -> Result<()> {
        let platform = self.platform();
        for p in &s.pairs {
            wfence::lift(&self.conn.client, &platform, &p.from, &s.tenant).await?;
        }
        s.phase = Phase::Catchup;
        s.fence_raised_at = None;
        self.commit(held, s, async |_: &mut ClientSession| Ok(()))
            .await
    }

    /// Copy the ledger entries the destination lacks, then flip the registry and record
    /// the flip in one fenced transaction.
    async fn ledger_and_flip(
        &self,
        held: &Held,
        r: &Route,
        to_lease: &Option<TargetLease>,
        mut next: MoveState,
        fenced_at: Instant,
    ) -> Result<MoveState> {
        let copies = self.ledger_copies(r).await?;
        tracing::info!(
            ms = fenced_at.elapsed().as_millis() as u64,
            "move: ledger read"
        );
        if let Some((lease, session)) = to_lease {
            let mut ses = session.lock().await;
            for e in copies {
                ledger::record(lease.fence(), &mut ses, e)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        next.fence_ms = Some(fenced_at.elapsed().as_millis() as i64);
        self.flip_registry(held, r, Some(&next), next.to_region.as_deref())
            .await?;
        Ok(next)
    }

    /// Drain changes up to a marker written after the fence, then compare each collection:
    /// the documents touched since the full comparison of the catch-up, one by one (all of
    /// them when the run resumed a cutover and does not know which were touched). Every
    /// other document is as that comparison left it, equal on both sides, so the work under
    /// the fence is in proportion to the writes since, not to the tenant's size. The fence
    /// stops inserts and updates, not deletes (MongoDB does not validate them): a touched
    /// document deleted after the marker differs, is synced, and the drain runs again. A
    /// delete after the last drain is replayed by `--finish`.
    async fn drain_and_verify(
        &self,
        held: &Held,
        s: &mut MoveState,
        full: bool,
        stream: &mut Stream,
    ) -> Result<Vec<Verified>> {
        let client = &self.conn.client;
        let full = full
            || s.pairs
                .iter()
                .any(|p| !s.verified.iter().any(|v| v.collection == p.collection));
        let mut touched = std::mem::take(&mut s.recheck);
        self.drain(held, s, &mut touched, stream).await?;
        let mut out = Vec::new();
        for i in 0..s.pairs.len() {
            let p = s.pairs[i].clone();
            let mut attempt = 0;
            loop {
                let mut ids: Vec<Bson> = touched
                    .iter()
                    .filter(|(j, _)| *j == i)
                    .flat_map(|(_, v)| v.clone())
                    .collect();
                ids.sort_by_key(|b| bson::to_vec(&doc! { "v": b }).unwrap_or_default());
                ids.dedup();
                let c = sync::compare(client, &p, &s.tenant, (!full).then_some(&ids[..])).await?;
                if c.equal() {
                    let before = s.verified.iter().find(|v| v.collection == p.collection);
                    out.push(match (full, before) {
                        (false, Some(v)) => Verified {
                            collection: p.collection.clone(),
                            count: s.progress[i].target_count.max(0) as u64,
                            digest: v.digest.clone(),
                            changed: v.changed + ids.len() as u64,
                        },
                        _ => Verified {
                            collection: p.collection.clone(),
                            count: c.source.count,
                            digest: c.source.digest,
                            changed: 0,
                        },
                    });
                    break;
                }
                attempt += 1;
                if attempt == 20 {
                    bail!(
                        "{}: {} document(s) still differ between source and target after 20 drains",
                        p.collection,
                        c.differing.len()
                    );
                }
                let (tenant, now) = (s.tenant.clone(), s.clone());
                let differing = c.differing.clone();
                *s = self
                    .commit_counted(held, &now, async |ses: &mut ClientSession| {
                        let d = sync::sync_ids(client, &p, &tenant, &differing, ses).await?;
                        Ok(vec![(i, d)])
                    })
                    .await?;
                self.drain(held, s, &mut touched, stream).await?;
            }
        }
        Ok(out)
    }

    /// Write a marker into the source database and apply changes until it shows up.
    async fn drain(
        &self,
        held: &Held,
        s: &mut MoveState,
        touched: &mut Vec<(usize, Vec<Bson>)>,
        stream: &mut Stream,
    ) -> Result<()> {
        let mark = self.write_mark(s).await?;
        for _ in 0..200 {
            if self
                .apply_round(held, s, Some(&mark), touched, stream)
                .await?
                .1
            {
                return Ok(());
            }
        }
        bail!("the change stream did not show the marker {mark} after 200 rounds")
    }

    /// Replay deletes that reached the fenced source after the flip, then remove the source.
    pub(super) async fn finish(&self, held: &Held, s: MoveState) -> Result<Report> {
        if s.phase != Phase::Flipped {
            bail!(
                "tenant `{}`'s move is in phase {:?}; it finishes only after the flip (`caas tenant move {} --to {}` continues it)",
                s.tenant, s.phase, s.tenant, s.to_tier
            );
        }
        let (mut s, replayed) = self.replay_late_deletes(held, s).await?;
        let client = &self.conn.client;
        let db = s.pairs[0].from.database.clone();
        let r = self.route_of(&s)?;
        let released = self.release(&s.tenant, s.from_tier).await?;
        self.remove_side(&r, true).await?;
        sync::clear_marks(client, &db, &s.tenant).await?;
        super::state::clear_pending(&self.platform(), &s.move_id, None, None).await?;
        s.phase = Phase::Finished;
        s.ended_at = Some(DateTime::now());
        self.commit(held, &s, async |_: &mut ClientSession| Ok(()))
            .await?;
        let mut notes = vec![format!("removed the source {}", r.from)];
        let n = released.len();
        notes.extend((n > 0).then(|| format!("released {n} zone range(s) of the source")));
        let roles = super::follow::follow_roles(self.conn, self.config, self.specs).await?;
        if roles > 0 {
            notes.push(format!(
                "{roles} service role(s) updated to follow the tenant"
            ));
        }
        if replayed > 0 {
            notes.push(format!("{replayed} delete(s) sent to the old location after the flip were applied at the new one"));
        }
        Ok(Report::of(&s, notes))
    }

    /// Replay at the new location the deletes that reached the fenced source after the
    /// flip, up to a marker written now. Once done (recorded in the move's state), never
    /// again: what the source shows after that is its own removal.
    async fn replay_late_deletes(
        &self,
        held: &Held,
        mut s: MoveState,
    ) -> Result<(MoveState, usize)> {
        if s.drained_at.is_some() {
            return Ok((s, 0));
        }
        let client = &self.conn.client;
        let db = s.pairs[0].from.database.clone();
        let mut replayed = 0;
        // Up to a marker written now: other tenants of a shared source keep writing, so
        // "no more events" may never come; every delete acknowledged before it is replayed.
        let mark = format!(
            "{}:finish:{}",
            s.move_id,
            bson::oid::ObjectId::new().to_hex()
        );
        client
            .database(&db)
            .collection::<bson::Document>(sync::MARKS)
            .insert_one(doc! { "_id": &mark, "tenant": &s.tenant, "at": DateTime::now() })
            .await?;
        let mut stream = sync::open_stream(client, &db, &s.pairs, s.resume_token.as_ref()).await?;
        for round in 0.. {
            if round == 1000 {
                bail!("the change stream on {db} did not show the marker {mark} after 1000 rounds; rerun `caas tenant move {} --finish`", s.tenant);
            }
            let got = sync::capture(&mut stream, 1000, Some(&mark)).await?;
            let mut next = s.clone();
            next.resume_token = sync::token_of(&stream).or(next.resume_token);
            // Recorded with the last replay, in one transaction: a kill after it cannot
            // make a rerun take the removal's deletes for the application's.
            next.drained_at = got.saw_mark.then(DateTime::now);
            let work: Vec<(usize, Vec<Bson>)> = got
                .deleted
                .iter()
                .filter_map(|(c, ids)| {
                    Some((
                        s.pairs.iter().position(|p| &p.from.collection == c)?,
                        ids.clone(),
                    ))
                })
                .collect();
            let (pairs, tenant) = (s.pairs.clone(), s.tenant.clone());
            self.commit(held, &next, async |ses: &mut ClientSession| {
                for (i, ids) in &work {
                    sync::delete_ids(client, &pairs[*i], &tenant, ids, ses).await?;
                }
                Ok(())
            })
            .await?;
            replayed += work.iter().map(|(_, v)| v.len()).sum::<usize>();
            s = next;
            if got.saw_mark {
                break;
            }
        }
        Ok((s, replayed))
    }

    /// Undo a move that has not flipped: lift the fence, drop the new copy. The registry
    /// was never changed.
    pub(super) async fn abort(&self, held: &Held, mut s: MoveState) -> Result<Report> {
        if s.phase >= Phase::Flipped {
            bail!(
                "tenant `{}` was already flipped to {}: its applications write there, so dropping it would lose their writes; move it back with `caas tenant move {} --to {}`",
                s.tenant, s.to_target, s.tenant, s.from_tier
            );
        }
        let r = self.route_of(&s)?;
        if s.aborting_at.is_none() {
            s.aborting_at = Some(DateTime::now());
            self.commit(held, &s, async |_: &mut ClientSession| Ok(()))
                .await?;
        }
        self.release(&s.tenant, s.to_tier).await?;
        self.remove_side(&r, false).await?;
        let source = &s.pairs[0].from.database;
        sync::clear_marks(&self.conn.client, source, &s.tenant).await?;
        super::state::clear_pending(&self.platform(), &s.move_id, None, None).await?;
        s.phase = Phase::Aborted;
        s.ended_at = Some(DateTime::now());
        self.commit(held, &s, async |_: &mut ClientSession| Ok(()))
            .await?;
        Ok(Report::of(
            &s,
            vec![format!(
                "dropped the copy in {}; {} is as before",
                r.to, r.from
            )],
        ))
    }

    /// Remove the tenant's data from one side of the move (the source on finish, the
    /// target on abort), lifting the fence of the source either way.
    async fn remove_side(&self, r: &Route, source: bool) -> Result<()> {
        let client = &self.conn.client;
        let platform = self.platform();
        let target = if source { &r.from } else { &r.to };
        let again = if source { "--finish" } else { "--abort" };
        for p in &r.pairs {
            let ns = if source { &p.from } else { &p.to };
            let coll = client
                .database(&ns.database)
                .collection::<bson::Document>(&ns.collection);
            let removed = if ns.shared {
                coll.delete_many(ns.filter(&r.tenant)).await.map(drop)
            } else if matches!(target.kind, TargetKind::CollectionSet { .. }) {
                coll.drop().await
            } else {
                Ok(())
            };
            removed.with_context(|| {
                format!(
                    "removing tenant `{}`'s documents from {} (stopped part-way; the other side is untouched): rerun `caas tenant move {} {again}`",
                    r.tenant, ns.label(), r.tenant
                )
            })?;
        }
        match &target.kind {
            TargetKind::Database { tenant, .. } => {
                client
                    .database(&self.config.databases.tenant_database(tenant))
                    .drop()
                    .await?
            }
            TargetKind::CollectionSet { .. } => {
                client
                    .database(&ledger_db(target, self.config))
                    .collection::<bson::Document>(ledger::LEDGER)
                    .delete_many(doc! { "target": target.to_string() })
                    .await?;
            }
            _ => {}
        }
        for p in &r.pairs {
            wfence::lift(client, &platform, &p.from, &r.tenant).await?;
        }
        Ok(())
    }
}

type TargetLease = (
    crate::migrate::lock::Lease,
    tokio::sync::Mutex<mongodb::ClientSession>,
);

async fn release(a: TargetLease, b: Option<TargetLease>) {
    let _ = a.0.release().await;
    if let Some(b) = b {
        let _ = b.0.release().await;
    }
}
