//! The copy and the catch-up of a move: documents in checkpointed batches, the changes
//! captured meanwhile, then the changes applied in rounds until few are left.
//!
//! During the copy the change stream is read every `MoveOptions::read_every` and what it shows is
//! recorded, not applied ([`state::defer`]): the resume token advances, so it stays inside
//! the server's oplog window however long the copy takes (SecantusDB keeps 100,000
//! entries; a copy of as many documents writes as many), and no change is applied to a
//! document the copy has not reached. Once the copy is done the recorded changes are
//! applied, each batch with the deletion of its records in one fenced transaction.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bson::Bson;
use mongodb::ClientSession;

use super::mover::{Held, Mover};
use super::route;
use super::state::{self, MoveState, Phase};
use super::sync;
use crate::migrate::lock;

/// The change stream a run keeps open from round to round (reopening it costs the server
/// a search of its oplog for the token).
pub(super) type Stream = Option<mongodb::change_stream::ChangeStream<bson::Document>>;

/// The longest catch-up before the cutover goes ahead anyway.
const CATCHUP_FOR: Duration = Duration::from_secs(60);

/// Changes read from the stream in one round.
const ROUND: usize = 1000;

impl Mover<'_> {
    /// Before going on with a move that has copied anything: every collection of the new
    /// location is still there. One dropped since (by hand, or by an abort cut off) would
    /// be created again bare by the next write, without its validator and indexes, and
    /// the recorded progress would no longer hold.
    pub(super) async fn copy_is_there(&self, s: &MoveState) -> Result<()> {
        let copied = s.phase > Phase::Copy || s.progress.iter().any(|p| p.copied > 0);
        let copied = copied && s.phase < Phase::Flipped;
        if !copied {
            return Ok(());
        }
        let mut names: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for p in &s.pairs {
            let db = p.to.database.as_str();
            if !names.contains_key(db) {
                let listed = self
                    .conn
                    .client
                    .database(db)
                    .list_collection_names()
                    .await?;
                names.insert(db, listed);
            }
            if !names[db].contains(&p.to.collection) {
                bail!(
                    "tenant `{}`'s move: {} of the new location is gone (dropped since the copy began), so the copy cannot be trusted; undo the move with `caas tenant move {} --abort`, then move again",
                    s.tenant, p.to.label(), s.tenant
                );
            }
        }
        Ok(())
    }

    /// Copy every collection in checkpointed batches, then build the indexes.
    pub(super) async fn copy(&self, held: &Held, mut s: MoveState) -> Result<MoveState> {
        let client = &self.conn.client;
        // The new collections with their validators (again, after a kill: idempotent).
        let r = route::route(self.config, self.specs, &s.tenant, s.from_tier, s.to_tier)
            .map_err(anyhow::Error::msg)?;
        self.create_target(&r, false).await?;
        // On a cluster: sharded and placed in the region's zone while still empty.
        self.place_new_target(&s).await?;
        let started = Instant::now();
        let mut read_at = Instant::now();
        let mut stream: Stream = None;
        for i in 0..s.pairs.len() {
            if s.progress[i].done {
                continue;
            }
            let pair = s.pairs[i].clone();
            let after = s.progress[i].last_id.clone();
            let mut cursor =
                sync::open_copy(client, &pair, &s.tenant, after.as_ref(), self.opts.batch).await?;
            while !s.progress[i].done {
                let docs = sync::next_batch(&mut cursor, &pair, self.opts.batch).await?;
                let mut next = s.clone();
                next.progress[i].copied += docs.len() as u64;
                next.progress[i].done = docs.len() < self.opts.batch;
                let last = docs
                    .last()
                    .and_then(|d| d.get("_id").ok().flatten())
                    .and_then(|v| Bson::try_from(v.to_raw_bson()).ok());
                if last.is_some() {
                    next.progress[i].last_id = last;
                }
                s = self
                    .commit_counted(held, &next, async |ses: &mut ClientSession| {
                        sync::write_batch(client, &pair, &docs, ses).await?;
                        Ok(vec![(i, docs.len() as i64)])
                    })
                    .await?;
                if read_at.elapsed() >= self.opts.read_every {
                    self.defer_changes(held, &mut s, &mut stream).await?;
                    read_at = Instant::now();
                }
            }
        }
        let copied: u64 = s.progress.iter().map(|p| p.copied).sum();
        (self.progress)(&format!(
            "{}: copied {copied} document(s) in {:.2} s; building indexes",
            s.tenant,
            started.elapsed().as_secs_f64()
        ));
        self.create_target(&r, true).await?;
        s.phase = Phase::Catchup;
        self.commit(held, &s, async |_: &mut ClientSession| Ok(()))
            .await?;
        Ok(s)
    }

    /// Read the change stream up to now and record what changed (see the module's text).
    async fn defer_changes(
        &self,
        held: &Held,
        s: &mut MoveState,
        stream: &mut Stream,
    ) -> Result<()> {
        let platform = self.platform();
        loop {
            let (got, mut next) = self.read_round(s, None, stream).await?;
            let work = work_of(s, &got);
            let move_id = s.move_id.clone();
            next.changes_applied = s.changes_applied;
            self.commit(held, &next, async |ses: &mut ClientSession| {
                state::defer(&platform, &move_id, &work, ses).await
            })
            .await
            .inspect_err(|_| *stream = None)?;
            *s = next;
            if got.events < ROUND as u64 {
                return Ok(());
            }
        }
    }

    /// Apply the changes recorded during the copy.
    async fn apply_deferred(&self, held: &Held, s: &mut MoveState) -> Result<u64> {
        let (client, platform) = (&self.conn.client, self.platform());
        let mut applied = 0;
        loop {
            let (keys, work) = state::take_pending(&platform, &s.move_id, ROUND as i64).await?;
            if keys.is_empty() {
                return Ok(applied);
            }
            let (pairs, tenant, move_id) = (s.pairs.clone(), s.tenant.clone(), s.move_id.clone());
            *s = self
                .commit_counted(held, s, async |ses: &mut ClientSession| {
                    let mut deltas = Vec::new();
                    for (i, ids) in &work {
                        deltas.push((
                            *i,
                            sync::sync_ids(client, &pairs[*i], &tenant, ids, ses).await?,
                        ));
                    }
                    state::clear_pending(&platform, &move_id, Some(&keys), Some(ses)).await?;
                    Ok(deltas)
                })
                .await?;
            applied += work.iter().map(|(_, v)| v.len() as u64).sum::<u64>();
        }
    }

    /// Apply the changes recorded during the copy, then captured changes in rounds until a
    /// round finds few; then compare everything once (while writes go on) and re-sync what
    /// differs; then the cutover.
    pub(super) async fn catch_up(&self, held: &Held, mut s: MoveState) -> Result<MoveState> {
        let deferred = self.apply_deferred(held, &mut s).await?;
        tracing::info!(
            documents = deferred,
            "move: changes during the copy applied"
        );
        let mut stream: Stream = None;
        self.rounds_until_caught_up(held, &mut s, &mut stream, &mut Vec::new())
            .await?;
        // Every document compared while writes go on. A document synced from here on (a
        // difference found now, a change in the stream after the token recorded now) is
        // compared again under the fence; one that is not stays as this comparison leaves it.
        let mut recheck = Vec::new();
        for i in 0..s.pairs.len() {
            let p = s.pairs[i].clone();
            let c = sync::compare(&self.conn.client, &p, &s.tenant, None).await?;
            if !c.differing.is_empty() {
                let tenant = s.tenant.clone();
                s = self
                    .commit_counted(held, &s, async |ses: &mut ClientSession| {
                        let d = sync::sync_ids(&self.conn.client, &p, &tenant, &c.differing, ses)
                            .await?;
                        Ok(vec![(i, d)])
                    })
                    .await?;
                recheck.push((i, c.differing.clone()));
            }
            s.verified.retain(|v| v.collection != p.collection);
            s.verified.push(state::Verified {
                collection: p.collection.clone(),
                count: c.source.count,
                digest: c.source.digest,
                changed: c.differing.len() as u64,
            });
        }
        // The comparison took a while; writes went on meanwhile.
        self.rounds_until_caught_up(held, &mut s, &mut stream, &mut recheck)
            .await?;
        s.recheck = recheck;
        (self.progress)(&format!(
            "{}: caught up (lag {} ms); cutting over",
            s.tenant, s.lag_ms
        ));
        s.phase = Phase::Cutover;
        Ok(s)
    }

    /// Apply captured changes until the stream's backlog is small: a marker written into
    /// the source database is read back within `cutover_lag`, after at most `cutover_at`
    /// changes. (An empty reply proves nothing: the server may still be scanning its oplog
    /// for this stream's next events, as SecantusDB does past a copy's inserts into the
    /// same database.) Rounds count every event of the source's collections, other
    /// tenants' too on a shared source, so a busy neighbour may keep them above the
    /// threshold: after [`CATCHUP_FOR`] the cutover goes ahead (its drain is to a marker
    /// too, so it ends regardless).
    async fn rounds_until_caught_up(
        &self,
        held: &Held,
        s: &mut MoveState,
        stream: &mut Stream,
        touched: &mut Vec<(usize, Vec<Bson>)>,
    ) -> Result<()> {
        let began = Instant::now();
        while began.elapsed() < CATCHUP_FOR {
            let mark = self.write_mark(s).await?;
            let probe = Instant::now();
            let mut n = 0;
            loop {
                let (events, saw) = self
                    .apply_round(held, s, Some(&mark), touched, stream)
                    .await?;
                n += events;
                if saw {
                    break;
                }
                if began.elapsed() >= CATCHUP_FOR {
                    return Ok(());
                }
            }
            if n <= self.opts.cutover_at && probe.elapsed() <= self.opts.cutover_lag {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Write a marker into the source database (its collection is in the stream): a round
    /// that reads it has applied every change acknowledged before it.
    pub(super) async fn write_mark(&self, s: &MoveState) -> Result<String> {
        let mark = format!("{}:{}", s.move_id, bson::oid::ObjectId::new().to_hex());
        self.conn
            .client
            .database(&s.pairs[0].from.database)
            .collection::<bson::Document>(sync::MARKS)
            .insert_one(
                bson::doc! { "_id": &mark, "tenant": &s.tenant, "at": bson::DateTime::now() },
            )
            .await?;
        Ok(mark)
    }

    /// Read the stream up to [`ROUND`] events ready now: `stream` if open (it stands at the
    /// recorded token), else one opened at the recorded token. Returns the events and the
    /// state with the new token and lag (not saved: a caller that fails to save it drops
    /// the stream, so the next round reads from the recorded token again).
    async fn read_round(
        &self,
        s: &MoveState,
        mark: Option<&str>,
        stream: &mut Stream,
    ) -> Result<(sync::Captured, MoveState)> {
        let client = &self.conn.client;
        if stream.is_none() {
            let db = &s.pairs[0].from.database;
            *stream = Some(sync::open_stream(client, db, &s.pairs, s.resume_token.as_ref()).await?);
        }
        let open = stream.as_mut().expect("opened above");
        let got = match sync::capture(open, ROUND, mark).await {
            Ok(got) => got,
            Err(e) => {
                *stream = None;
                return Err(e);
            }
        };
        let mut next = s.clone();
        next.resume_token = sync::token_of(open).or(next.resume_token);
        next.changes_applied += got.events;
        next.lag_ms = match got.newest {
            Some(t) => (lock::server_now(&self.platform()).await?.timestamp_millis() - t).max(0),
            None => 0,
        };
        Ok((got, next))
    }

    /// One round of captured changes: apply them and record the new resume token. Returns
    /// the events seen and whether the marker `mark` was among them; the `_id`s touched are
    /// added to `touched` (per pair).
    pub(super) async fn apply_round(
        &self,
        held: &Held,
        s: &mut MoveState,
        mark: Option<&str>,
        touched: &mut Vec<(usize, Vec<Bson>)>,
        stream: &mut Stream,
    ) -> Result<(u64, bool)> {
        let client = &self.conn.client;
        let t0 = Instant::now();
        let (got, next) = self.read_round(s, mark, stream).await?;
        let read = t0.elapsed();
        let work = work_of(s, &got);
        let (pairs, tenant) = (s.pairs.clone(), s.tenant.clone());
        *s = self
            .commit_counted(held, &next, async |ses: &mut ClientSession| {
                let mut deltas = Vec::new();
                for (i, ids) in &work {
                    deltas.push((
                        *i,
                        sync::sync_ids(client, &pairs[*i], &tenant, ids, ses).await?,
                    ));
                }
                Ok(deltas)
            })
            .await
            .inspect_err(|_| *stream = None)?;
        tracing::debug!(
            events = got.events,
            read_ms = read.as_millis() as u64,
            total_ms = t0.elapsed().as_millis() as u64,
            "move: catch-up round"
        );
        touched.extend(work);
        Ok((got.events, got.saw_mark))
    }
}

/// The captured `_id`s per pair of the move.
fn work_of(s: &MoveState, got: &sync::Captured) -> Vec<(usize, Vec<Bson>)> {
    got.ids
        .iter()
        .filter_map(|(coll, ids)| {
            Some((
                s.pairs.iter().position(|p| &p.from.collection == coll)?,
                ids.clone(),
            ))
        })
        .collect()
}
