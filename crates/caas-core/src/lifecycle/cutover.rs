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

use anyhow::{bail, Result};
use bson::{doc, Bson, DateTime};
use mongodb::ClientSession;

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
        let (from_db, to_db) = (
            client.database(&ledger_db(&r.from, self.config)),
            client.database(&ledger_db(&r.to, self.config)),
        );
        let from_lease = crate::migrate::runner::lease_target(client, &from_db, &r.from.to_string(), self.opts.lock_wait, self.opts.lease).await?;
        let to_lease = match r.to.kind {
            TargetKind::Shared => None,
            _ => Some(crate::migrate::runner::lease_target(client, &to_db, &r.to.to_string(), self.opts.lock_wait, self.opts.lease).await?),
        };
        let resumed = s.phase == Phase::Cutover && s.fence_raised_at.is_some();
        if !resumed {
            s.phase = Phase::Cutover;
            s.fence_raised_at = Some(DateTime::now());
            self.commit(held, &s, async |_: &mut ClientSession| Ok(())).await?;
        }
        let fenced_at = Instant::now();
        for p in &s.pairs {
            wfence::raise(client, &platform, &p.from, &s.tenant).await?;
        }
        tracing::info!(ms = fenced_at.elapsed().as_millis() as u64, "move: fence raised");
        let verified = self.drain_and_verify(held, &mut s, resumed).await;
        tracing::info!(ms = fenced_at.elapsed().as_millis() as u64, "move: drained and verified");
        let verified = match verified {
            Ok(v) => v,
            Err(e) => {
                // Writes go on at the old location; the next run cuts over again.
                for p in &s.pairs {
                    wfence::lift(client, &platform, &p.from, &s.tenant).await?;
                }
                s.phase = Phase::Catchup;
                s.fence_raised_at = None;
                self.commit(held, &s, async |_: &mut ClientSession| Ok(())).await?;
                release(from_lease, to_lease).await;
                return Err(e.context(format!("tenant `{}`: the cutover did not verify; the fence is lifted and writes go on at the old location; rerun to try again", s.tenant)));
            }
        };
        let result = async {
            let copies = self.ledger_copies(&r).await?;
            tracing::info!(ms = fenced_at.elapsed().as_millis() as u64, "move: ledger read");
            if let Some((lease, session)) = &to_lease {
                let mut ses = session.lock().await;
                for e in copies {
                    ledger::record(lease.fence(), &mut ses, e).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                }
            }
            let mut next = s.clone();
            next.verified = verified;
            next.phase = Phase::Flipped;
            next.flipped_at = Some(DateTime::now());
            next.flip_token = next.resume_token.clone();
            next.fence_ms = Some(fenced_at.elapsed().as_millis() as i64);
            self.flip_registry(held, &r, Some(&next)).await?;
            anyhow::Ok(next)
        }
        .await;
        release(from_lease, to_lease).await;
        let next = result?;
        (self.progress)(&format!(
            "{}: flipped to {} ({}); writes were refused for {} ms",
            next.tenant, next.to_tier, next.to_target, next.fence_ms.unwrap_or(0)
        ));
        Ok(next)
    }

    /// Drain changes up to a marker written after the fence, then compare: counts of every
    /// collection, and the documents touched since the full comparison (all of them when
    /// the run resumed a cutover and does not know which were touched).
    async fn drain_and_verify(&self, held: &Held, s: &mut MoveState, full: bool) -> Result<Vec<Verified>> {
        let client = &self.conn.client;
        let mut touched = Vec::new();
        for attempt in 0..3 {
            let mark = format!("{}:{attempt}:{}", s.move_id, bson::oid::ObjectId::new().to_hex());
            client
                .database(&s.pairs[0].from.database)
                .collection::<bson::Document>(sync::MARKS)
                .insert_one(doc! { "_id": &mark, "tenant": &s.tenant, "at": DateTime::now() })
                .await?;
            tracing::info!("move: marker written");
            let mut rounds = 0;
            while !self.apply_round(held, s, Some(&mark), &mut touched).await?.1 {
                rounds += 1;
                if rounds > 200 {
                    bail!("the change stream did not show the marker {mark} after 200 rounds");
                }
            }
            let mut out = Vec::new();
            let mut differing = Vec::new();
            for (i, p) in s.pairs.iter().enumerate() {
                let ids: Vec<Bson> = touched.iter().filter(|(j, _)| *j == i).flat_map(|(_, v)| v.clone()).collect();
                let c = sync::compare(client, p, &s.tenant, if full { None } else { Some(&ids) }).await?;
                let (a, b) = (sync::count(client, &p.from, &s.tenant).await?, sync::count(client, &p.to, &s.tenant).await?);
                if !c.equal() || a != b {
                    differing.push((i, c.differing.clone(), p.collection.clone(), a, b));
                }
                out.push(Verified { collection: p.collection.clone(), count: a, digest: c.source.digest });
            }
            if differing.is_empty() {
                return Ok(out);
            }
            // A delete that landed after the marker: sync what differs and drain again.
            for (i, ids, ..) in &differing {
                let (pair, tenant) = (s.pairs[*i].clone(), s.tenant.clone());
                let now = s.clone();
                self.commit(held, &now, async |ses: &mut ClientSession| sync::sync_ids(client, &pair, &tenant, ids, ses).await.map(drop)).await?;
            }
            if attempt == 2 {
                let (_, _, coll, a, b) = &differing[0];
                bail!("{coll}: {a} document(s) at the source, {b} at the target after three drains");
            }
        }
        unreachable!("the loop returns or fails")
    }

    /// Replay deletes that reached the fenced source after the flip, then remove the source.
    pub(super) async fn finish(&self, held: &Held, mut s: MoveState) -> Result<Report> {
        if s.phase != Phase::Flipped {
            bail!(
                "tenant `{}`'s move is in phase {:?}; it finishes only after the flip (`caas tenant move {} --to {}` continues it)",
                s.tenant, s.phase, s.tenant, s.to_tier
            );
        }
        let client = &self.conn.client;
        let db = s.pairs[0].from.database.clone();
        let mut replayed = 0;
        loop {
            let mut stream = sync::open_stream(client, &db, &s.pairs, s.resume_token.as_ref()).await?;
            let got = sync::capture(&mut stream, 1000, None).await?;
            let mut next = s.clone();
            next.resume_token = sync::token_of(&stream).or(next.resume_token);
            let work: Vec<(usize, Vec<Bson>)> = got
                .deleted
                .iter()
                .filter_map(|(c, ids)| Some((s.pairs.iter().position(|p| &p.from.collection == c)?, ids.clone())))
                .collect();
            let pairs = s.pairs.clone();
            self.commit(held, &next, async |ses: &mut ClientSession| {
                for (i, ids) in &work {
                    sync::delete_ids(client, &pairs[*i], ids, ses).await?;
                }
                Ok(())
            })
            .await?;
            replayed += work.iter().map(|(_, v)| v.len()).sum::<usize>();
            s = next;
            if got.events == 0 {
                break;
            }
        }
        let r = self.route_of(&s)?;
        self.remove_side(&r, true).await?;
        s.phase = Phase::Finished;
        s.ended_at = Some(DateTime::now());
        self.commit(held, &s, async |_: &mut ClientSession| Ok(())).await?;
        let mut notes = vec![format!("removed the source {}", r.from)];
        if replayed > 0 {
            notes.push(format!("{replayed} delete(s) sent to the old location after the flip were applied at the new one"));
        }
        Ok(Report::of(&s, notes))
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
        self.remove_side(&r, false).await?;
        s.phase = Phase::Aborted;
        s.ended_at = Some(DateTime::now());
        self.commit(held, &s, async |_: &mut ClientSession| Ok(())).await?;
        Ok(Report::of(&s, vec![format!("dropped the copy in {}; {} is as before", r.to, r.from)]))
    }

    /// Remove the tenant's data from one side of the move (the source on finish, the
    /// target on abort), lifting the fence of the source either way.
    async fn remove_side(&self, r: &Route, source: bool) -> Result<()> {
        let client = &self.conn.client;
        let platform = self.platform();
        let target = if source { &r.from } else { &r.to };
        for p in &r.pairs {
            let ns = if source { &p.from } else { &p.to };
            let coll = client.database(&ns.database).collection::<bson::Document>(&ns.collection);
            if ns.shared {
                coll.delete_many(ns.filter(&r.tenant)).await?;
            } else if matches!(target.kind, TargetKind::CollectionSet { .. }) {
                coll.drop().await?;
            }
        }
        match &target.kind {
            TargetKind::Database { tenant, .. } => client.database(&self.config.databases.tenant_database(tenant)).drop().await?,
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

type TargetLease = (crate::migrate::lock::Lease, tokio::sync::Mutex<mongodb::ClientSession>);

async fn release(a: TargetLease, b: Option<TargetLease>) {
    let _ = a.0.release().await;
    if let Some(b) = b {
        let _ = b.0.release().await;
    }
}
