//! Exactly once, whatever runs beside it: two `down`s at once, `down` killed at random
//! points, `down` during `up`, a runner paused past its lease, `repair` beside `up`, a
//! backfill over `_id`s of mixed BSON types, a connection cut mid-transaction, `seed`
//! killed at random points, `seed --reset` after `migrate up`, racing `tenant add`s.
//! Every counter and visit in the fixture migrations is an `$inc`: applied twice, it shows.

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use mongodb::Database;

use crate::faults::{totals, Lcg};
use crate::support::expect_ok as ok;
use crate::support::{client, fixture, migrate_fleet, root, show, stderr, TestProject};

fn project(test: &str) -> TestProject {
    TestProject::new(test, &fixture("migrate/schemas"))
        .with_migrations(&fixture("migrate/migrations"))
}

fn spawn(p: &TestProject, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_caas"))
        .current_dir(p.path())
        .args(args)
        .env("MONGODB_URI", &p.uri)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: &str) {
    Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
}

async fn wait(child: Child) -> Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

async fn entries(db: &Database, filter: Document) -> Vec<Document> {
    crate::support::find_all(db, "caas_migrations", filter).await
}

/// The ledger databases of [`migrate_fleet`]'s places: shared (free, starter, Pro), ea, eb.
fn ledger_dbs(places: &[(Database, String, String)]) -> [&Database; 3] {
    [&places[0].0, &places[4].0, &places[5].0]
}

async fn held_leases(places: &[(Database, String, String)]) -> u64 {
    let mut n = 0;
    for db in ledger_dbs(places) {
        n += db
            .collection::<Document>("caas_locks")
            .count_documents(doc! { "owner": { "$type": "string" } })
            .await
            .unwrap();
    }
    n
}

/// A version's status on every target: (target, status).
async fn statuses(places: &[(Database, String, String)], version: i64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for db in ledger_dbs(places) {
        for e in entries(db, doc! { "version": version }).await {
            out.push((
                e.get_str("target").unwrap().to_owned(),
                e.get_str("status").unwrap().to_owned(),
            ));
        }
    }
    out.sort();
    out
}

/// Wait until the entry of `version` on some target has committed at least `n` documents
/// of a backfill (or the step index passed `step`).
pub(crate) async fn wait_progress(db: &Database, version: i64, n: i64, step: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = entries(db, doc! { "version": version })
            .await
            .iter()
            .any(|e| {
                let cp = e.get_document("checkpoint").ok();
                let processed = cp
                    .and_then(|c| c.get("processed").and_then(Bson::as_i64))
                    .unwrap_or(0);
                let at = cp
                    .and_then(|c| c.get("step"))
                    .and_then(|b| b.as_i32().map(i64::from).or(b.as_i64()))
                    .unwrap_or(0);
                e.get_str("status") == Ok("running") && (processed >= n || at > step)
            });
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "version {version} made no progress"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Start `migrate up --tenant ea` with pauses between batches and kill it once `version`'s
/// backfill on `db` has committed `processed` documents.
async fn kill_ea_mid_backfill(
    p: &TestProject,
    db: &Database,
    version: i64,
    processed: i64,
    pause_ms: &str,
) {
    let killed = spawn(
        p,
        &[
            "migrate",
            "up",
            "--tenant",
            "ea",
            "--batch-pause-ms",
            pause_ms,
            "--lease-seconds",
            "1",
        ],
    );
    wait_progress(db, version, processed, 1).await;
    signal(&killed, "-KILL");
    wait(killed).await;
}

const TRIAL: &str = "description: One more increment and visit, and back.\nscope: tenant\nup:\n  - update_many: { collection: counters, update: { $inc: { value: 1 } } }\n  - backfill: { collection: items, batch_size: 3, update: { $inc: { visits: 1 } } }\ndown:\n  - backfill: { collection: items, batch_size: 3, update: { $inc: { visits: -1 } } }\n  - update_many: { collection: counters, update: { $inc: { value: -1 } } }\n";

#[tokio::test(flavor = "multi_thread")]
async fn two_downs_at_once_revert_each_version_once() {
    let p = project("xtwodown");
    let places = migrate_fleet(&p, 12).await;
    ok(&p, &["migrate", "up"]);
    let args = ["migrate", "down", "--yes", "--steps", "1"];
    let (a, b) = (spawn(&p, &args), spawn(&p, &args));
    let (a, b) = (wait(a).await, wait(b).await);
    assert_eq!(a.status.code(), Some(0), "{}", show(&a));
    assert_eq!(b.status.code(), Some(0), "{}", show(&b));
    // Two `--steps 1` at once end as two in a row: V0002, then V0001, each reverted once.
    let (counters, visits) = totals(&places).await;
    assert_eq!(counters, vec![0; 6], "V0001 reverted once everywhere");
    assert!(
        visits.iter().all(|v| *v == 0),
        "V0002 reverted once: {visits:?}"
    );
    for v in [1, 2] {
        assert!(
            statuses(&places, v)
                .await
                .iter()
                .all(|(_, s)| s == "reverted"),
            "{:?}",
            statuses(&places, v).await
        );
    }
    assert_eq!(held_leases(&places).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn down_killed_at_random_points_is_finished_by_the_rerun() {
    let p = project("xkilldown");
    let places = migrate_fleet(&p, 18).await;
    ok(&p, &["migrate", "up"]);
    let seed = 0xd0_u64;
    let mut rng = Lcg(seed);
    for trial in 0..10_i64 {
        let version = 10 + trial;
        let file = p
            .path()
            .join(format!("migrations/V{version:04}__trial_{trial}.yaml"));
        std::fs::write(&file, TRIAL).unwrap();
        ok(&p, &["migrate", "up"]);
        // Kill once the revert has visibly begun (some item already back at 1), plus a random
        // delay: mid-batch, between steps, between targets, or after the end.
        let child = spawn(
            &p,
            &[
                "migrate",
                "down",
                "--yes",
                "--to",
                "2",
                "--lease-seconds",
                "1",
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, visits) = totals(&places).await;
            if visits.contains(&1) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "trial {trial}: the revert never began"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let kill_after = Duration::from_millis(rng.below(150));
        tokio::time::sleep(kill_after).await;
        signal(&child, "-KILL");
        wait(child).await;
        let out = p.caas(&[
            "migrate",
            "down",
            "--yes",
            "--to",
            "2",
            "--lock-timeout",
            "15",
            "--lease-seconds",
            "1",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "trial {trial} (seed {seed:#x}, killed after {kill_after:?}): {}",
            show(&out)
        );
        let (counters, visits) = totals(&places).await;
        assert_eq!(
            counters,
            vec![1; 6],
            "trial {trial}, killed after {kill_after:?}"
        );
        assert!(
            visits.iter().all(|v| *v == 1),
            "trial {trial}, killed after {kill_after:?}: {visits:?}"
        );
        let st = statuses(&places, version).await;
        assert_eq!(st.len(), 5, "{st:?}");
        assert!(
            st.iter().all(|(_, s)| s == "reverted"),
            "trial {trial}: {st:?}"
        );
        std::fs::remove_file(file).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn down_during_up_never_reverts_under_a_newer_version() {
    let p = project("xdownup");
    let places = migrate_fleet(&p, 24).await;
    let up = spawn(
        &p,
        &[
            "migrate",
            "up",
            "--concurrency",
            "1",
            "--batch-pause-ms",
            "40",
        ],
    );
    // Start `down` while V0002 is half way on the shared target: V0001 is applied there.
    wait_progress(&places[0].0, 2, 6, 1).await;
    let down = spawn(
        &p,
        &[
            "migrate",
            "down",
            "--yes",
            "--steps",
            "1",
            "--lock-timeout",
            "60",
        ],
    );
    let (up, down) = (wait(up).await, wait(down).await);
    assert_eq!(up.status.code(), Some(0), "{}", show(&up));
    assert_eq!(down.status.code(), Some(0), "{}", show(&down));
    // Whatever order they ran in, every target's data matches its ledger.
    for (db, prefix, tenant) in &places {
        let target = match (prefix.as_str(), db.name() == places[0].0.name()) {
            ("", true) => "shared".to_string(),
            ("", false) => format!("enterprise:{tenant}"),
            _ => format!("pro:{tenant}"),
        };
        let status = |v: i64| {
            let db = if target.starts_with("enterprise") {
                db.clone()
            } else {
                places[0].0.clone()
            };
            let target = target.clone();
            async move {
                entries(&db, doc! { "target": &target, "version": v })
                    .await
                    .first()
                    .map(|e| e.get_str("status").unwrap().to_owned())
            }
        };
        let (v1, v2) = (status(1).await, status(2).await);
        assert!(
            !(v1.as_deref() == Some("reverted") && v2.as_deref() == Some("applied")),
            "{target}: V0001 reverted under an applied V0002"
        );
        let (counters, visits) = totals(&[(db.clone(), prefix.clone(), tenant.clone())]).await;
        assert_eq!(
            counters[0],
            i64::from(v1.as_deref() == Some("applied")),
            "{target}: {v1:?}"
        );
        let want = i64::from(v2.as_deref() == Some("applied"));
        assert!(
            visits.iter().all(|v| *v == want),
            "{target}: V0002 {v2:?}, visits {visits:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runner_paused_past_its_lease_writes_nothing_after_the_takeover() {
    let p = project("xpause");
    let places = migrate_fleet(&p, 24).await;
    ok(&p, &["migrate", "up"]);
    let ea = places[4].0.clone();
    let mut rng = Lcg(0x57_0b);
    let mut exercised = 0;
    for trial in 0..20_i64 {
        let version = 10 + trial;
        std::fs::write(
            p.path()
                .join(format!("migrations/V{version:04}__pause_{trial}.yaml")),
            TRIAL,
        )
        .unwrap();
        let a = spawn(
            &p,
            &[
                "migrate",
                "up",
                "--tenant",
                "ea",
                "--lease-seconds",
                "1",
                "--batch-pause-ms",
                "60",
            ],
        );
        wait_progress(&ea, version, 3 + rng.below(9) as i64, 1).await;
        signal(&a, "-STOP");
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        let b = spawn(
            &p,
            &[
                "migrate",
                "up",
                "--tenant",
                "ea",
                "--lease-seconds",
                "1",
                "--lock-timeout",
                "20",
            ],
        );
        // Let the paused runner continue at some point during or after the takeover.
        tokio::time::sleep(Duration::from_millis(rng.below(800))).await;
        signal(&a, "-CONT");
        let (a, b) = (wait(a).await, wait(b).await);
        assert_eq!(b.status.code(), Some(0), "trial {trial}: {}", show(&b));
        let (counters, visits) = totals(&places[4..5]).await;
        let want = 2 + trial;
        assert_eq!(
            counters,
            vec![want],
            "trial {trial}: a: {}\nb: {}",
            show(&a),
            show(&b)
        );
        assert!(
            visits.iter().all(|v| *v == want),
            "trial {trial}: visits {visits:?}\na: {}\nb: {}",
            show(&a),
            show(&b)
        );
        let e = entries(&ea, doc! { "version": version }).await;
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].get_str("status"),
            Ok("applied"),
            "trial {trial}: {:?}",
            e[0]
        );
        if a.status.code() == Some(2) {
            let err = stderr(&a);
            assert!(
                err.contains("lost the lease on enterprise:ea") && err.contains("taken over by"),
                "trial {trial}: the paused runner names the new holder: {err}"
            );
            exercised += 1;
        } else {
            assert_eq!(a.status.code(), Some(0), "trial {trial}: {}", show(&a));
        }
        let lock = ea
            .collection::<Document>("caas_locks")
            .find_one(doc! { "_id": "enterprise:ea" })
            .await
            .unwrap()
            .unwrap();
        assert!(
            lock.get("owner").is_some_and(|o| *o == Bson::Null),
            "{lock}"
        );
    }
    assert!(
        exercised >= 15,
        "the paused runner lost its lease in {exercised} of 20 trials"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_clears_failed_entries_only_and_never_one_a_runner_holds() {
    let p = project("xrepair");
    let places = migrate_fleet(&p, 24).await;
    let up = spawn(
        &p,
        &[
            "migrate",
            "up",
            "--concurrency",
            "1",
            "--batch-pause-ms",
            "150",
        ],
    );
    wait_progress(&places[0].0, 2, 6, 1).await;
    let repair = p.caas(&["migrate", "repair", "--clear-failed"]);
    let during: Vec<Document> = entries(&places[0].0, doc! {}).await;
    assert_eq!(
        repair.status.code(),
        Some(2),
        "{}\n{during:?}",
        show(&repair)
    );
    assert!(
        stderr(&repair).contains("shared: held by")
            && stderr(&repair).contains("nothing was repaired there"),
        "{}",
        show(&repair)
    );
    let up = wait(up).await;
    assert_eq!(up.status.code(), Some(0), "{}", show(&up));
    let again = ok(&p, &["migrate", "up", "--json"]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert!(
        again["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "up_to_date"),
        "nothing runs twice: {again}"
    );
    let (counters, visits) = totals(&places).await;
    assert_eq!(counters, vec![1; 6]);
    assert!(visits.iter().all(|v| *v == 1), "{visits:?}");

    // A runner killed mid-backfill: repair leaves its entry for `up`, which resumes it.
    std::fs::write(p.path().join("migrations/V0010__more.yaml"), TRIAL).unwrap();
    kill_ea_mid_backfill(&p, &places[4].0, 10, 6, "60").await;
    let repaired = ok(
        &p,
        &[
            "migrate",
            "repair",
            "--clear-failed",
            "--tenant",
            "ea",
            "--lock-timeout",
            "5",
        ],
    );
    assert!(
        repaired.contains("was interrupted") && repaired.contains("0 ledger entries repaired"),
        "{repaired}"
    );
    let status = ok(&p, &["migrate", "status", "--tenant", "ea"]);
    assert!(status.contains("interrupted"), "{status}");
    ok(
        &p,
        &["migrate", "up", "--tenant", "ea", "--lease-seconds", "1"],
    );
    let (counters, visits) = totals(&places[4..5]).await;
    assert_eq!(counters, vec![2]);
    assert!(visits.iter().all(|v| *v == 2), "{visits:?}");
}

/// `_id`s of every common type, unique per tenant (the shared collection holds two tenants).
fn mixed_ids(tenant_no: i64) -> Vec<Bson> {
    let base = bson::DateTime::from_millis(1_700_000_000_000 + tenant_no * 100_000);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(Bson::Int32((tenant_no * 100 + i) as i32));
        ids.push(Bson::Int64(tenant_no * 100 + 50 + i));
        ids.push(Bson::Double((tenant_no * 100) as f64 + 70.5 + i as f64));
        ids.push(Bson::String(format!("t{tenant_no}-s{i:02}")));
        ids.push(Bson::ObjectId(bson::oid::ObjectId::new()));
        ids.push(Bson::DateTime(bson::DateTime::from_millis(
            base.timestamp_millis() + i,
        )));
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_over_mixed_id_types_visits_every_document_once() {
    let p = project("xmixed");
    // The legacy documents fail the validator (it wants ObjectId `_id`s): a transitional
    // migration updates them without validation.
    let v2 = p.path().join("migrations/V0002__visit_items.yaml");
    let text = std::fs::read_to_string(&v2).unwrap();
    std::fs::write(&v2, format!("bypass_validation: true\n{text}")).unwrap();
    let places = migrate_fleet(&p, 0).await;
    for (n, (db, prefix, tenant)) in places.iter().enumerate() {
        let docs: Vec<Document> = mixed_ids(n as i64)
            .into_iter()
            .enumerate()
            .map(|(i, id)| doc! { "_id": id, "tenant_id": tenant, "code": format!("{tenant}-{i}"), "visits": 0_i64 })
            .collect();
        // Data older than the validator (which wants ObjectId `_id`s).
        db.collection::<Document>(&format!("{prefix}items"))
            .insert_many(docs)
            .bypass_document_validation(true)
            .await
            .unwrap();
    }
    // Killed part-way on one target, so the rerun resumes after an `_id` of some bracket.
    kill_ea_mid_backfill(&p, &places[4].0, 2, 10, "80").await;
    ok(
        &p,
        &[
            "migrate",
            "up",
            "--lock-timeout",
            "15",
            "--lease-seconds",
            "1",
        ],
    );
    let (_, visits) = totals(&places).await;
    assert_eq!(visits.len(), 6 * 30);
    assert!(
        visits.iter().all(|v| *v == 1),
        "every document exactly once: {visits:?}"
    );
    let st = statuses(&places, 2).await;
    assert!(st.iter().all(|(_, s)| s == "applied"), "{st:?}");
}

/// A TCP proxy between caas and the server that can cut connections the way a network does.
struct Proxy {
    port: u16,
    /// 0: pass everything; 1: cut every connection that sends `commitTransaction`;
    /// 2: a partition (every connection cut, new ones closed at once).
    mode: Arc<AtomicU8>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(0));
        let m = mode.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let m = m.clone();
                tokio::spawn(async move {
                    if m.load(Ordering::SeqCst) == 2 {
                        return;
                    }
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = cr.read(&mut buf).await.unwrap_or(0);
                            let mode = m.load(Ordering::SeqCst);
                            let commit = buf[..n].windows(17).any(|w| w == b"commitTransaction");
                            if n == 0 || mode == 2 || (mode == 1 && commit) {
                                return;
                            }
                            if sw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let down = async {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = sr.read(&mut buf).await.unwrap_or(0);
                            if n == 0
                                || m.load(Ordering::SeqCst) == 2
                                || cw.write_all(&buf[..n]).await.is_err()
                            {
                                return;
                            }
                        }
                    };
                    tokio::select! { _ = up => {}, _ = down => {} }
                });
            }
        });
        Proxy { port, mode }
    }

    fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_cut_mid_transaction_never_blocks_the_rerun() {
    let server = crate::support::PrivateServer::start();
    let p = TestProject::new_on("xcut", &fixture("migrate/schemas"), server.uri())
        .with_migrations(&fixture("migrate/migrations"));
    let places = migrate_fleet(&p, 30).await;
    let proxy = Proxy::start(server.port).await;
    // 1: the commit of a backfill batch never reaches the server (nor its retries).
    // 2: a partition: nothing reaches the server any more, not even the release.
    for (round, mode, tenant) in [(1, 1_u8, "ea"), (2, 2, "eb")] {
        proxy.mode.store(0, Ordering::SeqCst);
        let runner = Command::new(env!("CARGO_BIN_EXE_caas"))
            .current_dir(p.path())
            .args([
                "migrate",
                "up",
                "--tenant",
                tenant,
                "--batch-pause-ms",
                "50",
                "--lease-seconds",
                "2",
                "--lock-timeout",
                "2",
                "--connect-timeout",
                "2",
            ])
            .env("MONGODB_URI", proxy.uri())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let db = &places[if tenant == "ea" { 4 } else { 5 }].0;
        wait_progress(db, 2, 9, 1).await;
        proxy.mode.store(mode, Ordering::SeqCst);
        let started = Instant::now();
        let out = wait(runner).await;
        assert_eq!(out.status.code(), Some(2), "round {round}: {}", show(&out));
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "round {round}: the cut runner gives up by itself"
        );
        // The advised rerun, straight to the server, succeeds on its first try.
        let rerun = p.caas(&[
            "migrate",
            "up",
            "--tenant",
            tenant,
            "--lease-seconds",
            "2",
            "--lock-timeout",
            "20",
        ]);
        assert_eq!(
            rerun.status.code(),
            Some(0),
            "round {round}: {}\nthe cut runner: {}",
            show(&rerun),
            show(&out)
        );
        let i = if tenant == "ea" { 4 } else { 5 };
        let (counters, visits) = totals(&places[i..i + 1]).await;
        assert_eq!(counters, vec![1], "round {round}");
        assert!(visits.iter().all(|v| *v == 1), "round {round}: {visits:?}");
    }
}

fn catalogue(test: &str) -> TestProject {
    let p = TestProject::new(test, &root().join("schemas"));
    crate::support::copy_dir(&root().join("seeds"), &p.path().join("seeds"));
    crate::support::copy_dir(&root().join("migrations"), &p.path().join("migrations"));
    p
}

/// Documents per collection of the project's databases, caas's own collections left out.
async fn data_counts(prefix: &str) -> Vec<(String, String, u64)> {
    crate::live_seed::counts(prefix)
        .await
        .into_iter()
        .filter(|(_, c, _)| !c.starts_with("caas_"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_killed_at_random_points_is_finished_by_seed_or_cleaned_by_reset() {
    let p = catalogue("xseedkill");
    ok(&p, &["tenant", "add", "realco", "--tier", "free"]);
    ok(&p, &["schema", "apply"]);
    let before = data_counts(&p.prefix).await;
    let platform = client().await.database(&format!("{}_platform", p.prefix));
    let mut rng = Lcg(0x5eed);
    for trial in 0..20 {
        let kill_after = Duration::from_millis(50 + rng.below(2_500));
        let child = spawn(&p, &["seed", "--lease-seconds", "1"]);
        tokio::time::sleep(kill_after).await;
        signal(&child, "-KILL");
        wait(child).await;
        if trial % 2 == 0 {
            ok(
                &p,
                &["seed", "--lease-seconds", "1", "--lock-timeout", "20"],
            );
            let again = ok(&p, &["seed", "--json"]);
            let v: serde_json::Value = serde_json::from_str(&again).unwrap();
            assert_eq!(
                v["inserted"], 0,
                "trial {trial} (killed after {kill_after:?}): the rerun finished the seed: {again}"
            );
            let demo = platform
                .collection::<Document>("saas_clients")
                .count_documents(doc! { "demo": true })
                .await
                .unwrap();
            assert_eq!(demo, 4, "trial {trial}");
        } else {
            ok(
                &p,
                &[
                    "seed",
                    "--reset",
                    "--yes",
                    "--lease-seconds",
                    "1",
                    "--lock-timeout",
                    "20",
                ],
            );
            assert_eq!(
                data_counts(&p.prefix).await,
                before,
                "trial {trial} (killed after {kill_after:?}): reset left exactly the pre-seed data"
            );
            let tenants: serde_json::Value =
                serde_json::from_str(&ok(&p, &["tenant", "list", "--json"])).unwrap();
            assert_eq!(
                tenants["tenants"].as_array().unwrap().len(),
                1,
                "trial {trial}: {tenants}"
            );
        }
    }
    // Two seeds at once: they take turns, both succeed.
    let (a, b) = (spawn(&p, &["seed"]), spawn(&p, &["seed"]));
    let (a, b) = (wait(a).await, wait(b).await);
    assert_eq!(a.status.code(), Some(0), "{}", show(&a));
    assert_eq!(b.status.code(), Some(0), "{}", show(&b));
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_reset_after_migrate_up_keeps_what_a_migration_wrote() {
    let p = catalogue("xseedmig");
    ok(&p, &["tenant", "add", "realco", "--tier", "free"]);
    ok(&p, &["schema", "apply"]);
    ok(&p, &["seed"]);
    ok(&p, &["migrate", "up"]);
    let out = ok(&p, &["seed", "--reset", "--yes"]);
    assert!(
        out.contains("kept 4 seeded document(s)") && out.contains("V0003__seed_plan_catalogue"),
        "{out}"
    );
    let billing = client().await.database(&format!("{}_billing", p.prefix));
    let mut codes: Vec<String> = billing
        .collection::<Document>("plans")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .map(|d| d.get_str("code").unwrap().to_owned())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "enterprise_yearly",
            "free_monthly",
            "pro_monthly",
            "starter_monthly"
        ]
    );
    let status: serde_json::Value =
        serde_json::from_str(&ok(&p, &["migrate", "status", "--json", "--exit-code"])).unwrap();
    assert_eq!(status["behind"], 0, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_tenant_adds_register_each_id_once() {
    let p = project("xrace");
    let children: Vec<(usize, Child)> = (0..10)
        .flat_map(|i| {
            let id = format!("t{i}");
            [
                (i, spawn(&p, &["tenant", "add", &id, "--tier", "pro"])),
                (
                    i,
                    spawn(&p, &["tenant", "add", &id, "--tier", "enterprise"]),
                ),
            ]
        })
        .collect();
    let mut wins = [0; 10];
    for (i, c) in children {
        let out = wait(c).await;
        match out.status.code() {
            Some(0) => wins[i] += 1,
            Some(2) => assert!(
                stderr(&out).contains(&format!("tenant `t{i}` is already registered")),
                "{}",
                show(&out)
            ),
            _ => panic!("{}", show(&out)),
        }
    }
    assert_eq!(wins, [1; 10], "exactly one registration per id");
    let list: serde_json::Value =
        serde_json::from_str(&ok(&p, &["tenant", "list", "--json"])).unwrap();
    assert_eq!(list["tenants"].as_array().unwrap().len(), 10, "{list}");
    ok(&p, &["schema", "apply"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unlock_never_removes_a_live_lease_unless_told_whose() {
    let p = project("xunlock");
    let places = migrate_fleet(&p, 30).await;
    let runner = spawn(
        &p,
        &["migrate", "up", "--tenant", "ea", "--batch-pause-ms", "200"],
    );
    wait_progress(&places[4].0, 2, 3, 1).await;
    let refused = p.caas(&["migrate", "unlock", "--tenant", "ea"]);
    assert_eq!(refused.status.code(), Some(2), "{}", show(&refused));
    let err = stderr(&refused);
    assert!(
        err.contains("enterprise:ea: held by") && err.contains("--force --owner"),
        "{err}"
    );
    let no_owner = p.caas(&["migrate", "unlock", "--tenant", "ea", "--force"]);
    assert_eq!(no_owner.status.code(), Some(2), "{}", show(&no_owner));
    let lock = places[4]
        .0
        .collection::<Document>("caas_locks")
        .find_one(doc! { "_id": "enterprise:ea" })
        .await
        .unwrap()
        .unwrap();
    let owner = lock.get_str("owner").unwrap().to_owned();
    let evicted = ok(
        &p,
        &[
            "migrate", "unlock", "--yes", "--tenant", "ea", "--force", "--owner", &owner,
        ],
    );
    assert!(evicted.contains("released the lease of"), "{evicted}");
    let out = wait(runner).await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("lost the lease on enterprise:ea"),
        "{}",
        show(&out)
    );
    ok(&p, &["migrate", "up", "--tenant", "ea"]);
    let (counters, visits) = totals(&places[4..5]).await;
    assert_eq!(counters, vec![1]);
    assert!(visits.iter().all(|v| *v == 1), "{visits:?}");
}

/// A fenced transaction that outlasts several renewal periods still commits, exactly once:
/// the renewer never writes the document the transaction's fencing write checks. (On the
/// fence that stamped the lease document itself, every attempt conflicted with a renewal
/// and retried until the deadline: a slow server or a long `update_many` could never
/// commit, which is how `faults::sigkill_...` failed with WriteConflict under load.)
#[tokio::test(flavor = "multi_thread")]
async fn a_fenced_transaction_longer_than_the_renewal_interval_commits() {
    use caas_core::migrate::lock;
    let prefix = crate::support::unique_prefix("longtxn");
    let c = client().await;
    let db = c.database(&format!("{prefix}_db"));
    let work = db.collection::<Document>("work");
    work.insert_one(doc! { "_id": 1, "n": 0 }).await.unwrap();
    let mut session = c.start_session().await.unwrap();
    let lsid = session.id().clone();
    // 600 ms lease: renewed every 200 ms; the body below takes 900 ms.
    let lease = lock::acquire(
        &db,
        "t",
        "tester",
        Duration::from_secs(3),
        Duration::from_millis(600),
        lsid,
    )
    .await
    .unwrap();
    let started = Instant::now();
    let out = lease
        .fence()
        .txn(&mut session, async |s| {
            work.update_one(doc! { "_id": 1 }, doc! { "$inc": { "n": 1 } })
                .session(&mut *s)
                .await?;
            tokio::time::sleep(Duration::from_millis(900)).await;
            Ok(Some(()))
        })
        .await;
    assert!(
        out.is_ok(),
        "the long transaction did not commit after {:?}: {:?}",
        started.elapsed(),
        out.err()
    );
    let n = work
        .find_one(doc! { "_id": 1 })
        .await
        .unwrap()
        .unwrap()
        .get_i32("n")
        .unwrap();
    assert_eq!(n, 1, "applied exactly once");
    // The lease is still ours (renewed all along), and an eviction still fences it.
    let ids = vec!["t".to_owned()];
    let report = lock::unlock(&db, &ids, Some("tester")).await.unwrap();
    assert_eq!(report.released.len(), 1);
    let mut session2 = c.start_session().await.unwrap();
    let after = lease
        .fence()
        .txn(&mut session2, async |s| {
            work.update_one(doc! { "_id": 1 }, doc! { "$inc": { "n": 1 } })
                .session(&mut *s)
                .await?;
            Ok(Some(()))
        })
        .await;
    assert!(
        after.is_err(),
        "an evicted holder's transaction must not commit"
    );
    let n = work
        .find_one(doc! { "_id": 1 })
        .await
        .unwrap()
        .unwrap()
        .get_i32("n")
        .unwrap();
    assert_eq!(n, 1, "the evicted write left nothing");
    let _ = lease.release().await;
    crate::support::drop_databases(&crate::support::uri(), &prefix);
}
