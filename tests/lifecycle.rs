//! Tenant lifecycle, live: moves between tiers under concurrent writers, `kill -9` at
//! random points then a rerun, `--abort` at each phase, refusals, suspend and resume.

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bson::oid::ObjectId;
use bson::{doc, DateTime, Document};
use mongodb::{Client, Collection};

use crate::faults::Lcg;
use crate::support::expect_ok as ok;
use crate::support::{client, root, show, stdout, TestProject};

fn catalogue(test: &str) -> TestProject {
    let p = TestProject::new(test, &root().join("schemas"));
    crate::support::copy_dir(&root().join("seeds"), &p.path().join("seeds"));
    crate::support::copy_dir(&root().join("migrations"), &p.path().join("migrations"));
    p
}

/// Where the registry says a tenant's logical collection lives now.
async fn locate(c: &Client, prefix: &str, tenant: &str, coll: &str) -> Collection<Document> {
    let reg = c
        .database(&format!("{prefix}_platform"))
        .collection::<Document>("saas_clients")
        .find_one(doc! { "tenant_id": tenant })
        .await
        .unwrap()
        .unwrap();
    let shared = c.database(&format!("{prefix}_shared"));
    match reg.get_str("tier").unwrap() {
        "pro" => shared.collection(&format!("{tenant}_{coll}")),
        "enterprise" => c.database(&format!("{prefix}_{tenant}")).collection(coll),
        _ => shared.collection(coll),
    }
}

/// What a writer did: its model of the tenant's reactions it wrote.
#[derive(Default, Debug)]
struct Model {
    live: BTreeMap<ObjectId, String>,
    deleted: Vec<ObjectId>,
    refused: u64,
    anomalies: Vec<String>,
}

fn is_refusal(e: &mongodb::error::Error) -> bool {
    caas_core::lifecycle::wfence::is_fence_refusal(e)
}

/// Insert, update and delete the tenant's reactions at a steady rate, following the
/// registry before every write and retrying writes the fence refuses.
async fn writer(prefix: String, tenant: String, stop: Arc<AtomicBool>) -> Model {
    let c = client().await;
    let mut m = Model::default();
    let mut rng = Lcg(tenant.len() as u64 * 7919);
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let coll = locate(&c, &prefix, &tenant, "reactions").await;
        let op = if m.live.len() < 3 { 0 } else { rng.below(5) };
        let result = match op {
            0..=2 => {
                let id = ObjectId::new();
                let emoji = format!("e{i}");
                let now = DateTime::now();
                let d = doc! { "_id": id, "tenant_id": &tenant, "message_id": ObjectId::new(), "conversation_id": ObjectId::new(), "user_id": ObjectId::new(), "emoji": &emoji, "created_at": now, "updated_at": now };
                coll.insert_one(d).await.map(|_| {
                    m.live.insert(id, emoji);
                })
            }
            3 => {
                let id = *m
                    .live
                    .keys()
                    .nth(rng.below(m.live.len() as u64) as usize)
                    .unwrap();
                let emoji = format!("u{i}");
                match coll
                    .update_one(
                        doc! { "_id": id },
                        doc! { "$set": { "emoji": &emoji, "updated_at": DateTime::now() } },
                    )
                    .await
                {
                    Ok(r) => {
                        if r.matched_count != 1 {
                            m.anomalies.push(format!(
                                "update of {id} at {} matched {}",
                                coll.namespace(),
                                r.matched_count
                            ));
                        }
                        m.live.insert(id, emoji);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            _ => {
                let id = *m
                    .live
                    .keys()
                    .nth(rng.below(m.live.len() as u64) as usize)
                    .unwrap();
                match coll.delete_one(doc! { "_id": id }).await {
                    Ok(r) => {
                        if r.deleted_count != 1 {
                            m.anomalies.push(format!(
                                "delete of {id} at {} deleted {}",
                                coll.namespace(),
                                r.deleted_count
                            ));
                        }
                        m.live.remove(&id);
                        m.deleted.push(id);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(()) => i += 1,
            Err(e) if is_refusal(&e) => {
                m.refused += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{tenant}: a write failed with something other than the fence: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    m
}

/// The tenant's reactions now (where the registry says), as `_id -> emoji`.
async fn reactions(c: &Client, prefix: &str, tenant: &str) -> BTreeMap<ObjectId, String> {
    let coll = locate(c, prefix, tenant, "reactions").await;
    let ns = coll.namespace();
    crate::support::find_all(&c.database(&ns.db), &ns.coll, doc! { "tenant_id": tenant })
        .await
        .into_iter()
        .map(|d| {
            (
                d.get_object_id("_id").unwrap(),
                d.get_str("emoji").unwrap().to_owned(),
            )
        })
        .collect()
}

/// Document counts of every collection of a tenant's current location (its own documents).
async fn tenant_counts(
    c: &Client,
    prefix: &str,
    tenant: &str,
    colls: &[&str],
) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for coll in colls {
        let n = locate(c, prefix, tenant, coll)
            .await
            .count_documents(doc! { "tenant_id": tenant })
            .await
            .unwrap();
        out.push((coll.to_string(), n));
    }
    out
}

const SOME: &[&str] = &[
    "users",
    "messages",
    "conversations",
    "groups",
    "files",
    "posts",
    "tenant_settings",
];

/// Every collection a tenant moves with (the tenant-scoped collections of the catalogue).
const ALL: &[&str] = &[
    "users",
    "messages",
    "conversations",
    "groups",
    "files",
    "posts",
    "tenant_settings",
    "reactions",
    "prekey_bundles",
    "user_keys",
    "group_members",
    "media_metadata",
    "read_receipts",
    "user_devices",
    "user_relationships",
    "user_sessions",
];

fn check_model(
    before: &BTreeMap<ObjectId, String>,
    after: &BTreeMap<ObjectId, String>,
    m: &Model,
    who: &str,
) {
    assert!(m.anomalies.is_empty(), "{who}: {:?}", m.anomalies);
    let mut want = before.clone();
    for id in &m.deleted {
        want.remove(id);
    }
    want.extend(m.live.clone());
    assert_eq!(after.len(), want.len(), "{who}: reaction count");
    assert!(
        after == &want,
        "{who}: the tenant's reactions differ from the writer's model"
    );
}

/// The move test: free -> pro -> enterprise -> starter while writers run for the
/// tenant and two others; at the end the data equals the writers' models, the others are
/// untouched, diff and migrate status are clean, and each new target's ledger had the
/// versions the tenant's data already had.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_moves_through_every_tier_while_writers_run() {
    let p = catalogue("mvwrite");
    ok(&p, &["seed"]);
    ok(&p, &["migrate", "up"]);
    let c = client().await;
    let (mover, others) = ("demo-pebble", ["demo-harbor", "demo-quill"]);
    let mut before = BTreeMap::new();
    for t in [mover, others[0], others[1]] {
        before.insert(t, reactions(&c, &p.prefix, t).await);
    }
    let other_counts: Vec<_> =
        futures::future::join_all(others.iter().map(|t| tenant_counts(&c, &p.prefix, t, SOME)))
            .await;
    let mover_counts = tenant_counts(&c, &p.prefix, mover, SOME).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = [mover, others[0], others[1]]
        .iter()
        .map(|t| tokio::spawn(writer(p.prefix.clone(), t.to_string(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shared_ledger = c
        .database(&format!("{}_shared", p.prefix))
        .collection::<Document>("caas_migrations");
    let shared_versions = shared_ledger
        .count_documents(doc! { "target": "shared", "status": "applied" })
        .await
        .unwrap();
    for to in ["pro", "enterprise", "starter"] {
        let out = ok(
            &p,
            &[
                "tenant",
                "move",
                mover,
                "--to",
                to,
                "--finish",
                "--json",
                // Small batches, the stream read after each: the writers' changes during
                // the copy are recorded and applied after it.
                "--batch",
                "5",
                "--read-changes-every",
                "0",
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["move"]["phase"], "finished", "{out}");
        assert!(
            v["move"]["verified"].as_array().unwrap().len() >= 10,
            "{out}"
        );
        let ledger = match to {
            "pro" => shared_ledger.clone(),
            "enterprise" => c
                .database(&format!("{}_{mover}", p.prefix))
                .collection("caas_migrations"),
            _ => continue,
        };
        let moved = ledger
            .count_documents(
                doc! { "target": format!("{to}:{mover}"), "moved_from": { "$exists": true } },
            )
            .await
            .unwrap();
        assert_eq!(
            moved, shared_versions,
            "{to}: the new target's ledger holds the versions its data had"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut models = Vec::new();
    for w in writers {
        models.push(w.await.unwrap());
    }
    for (t, m) in [mover, others[0], others[1]].iter().zip(&models) {
        let after = reactions(&c, &p.prefix, t).await;
        check_model(&before[t], &after, m, t);
    }
    assert!(
        models[0].refused > 0 || models[0].live.len() > 3,
        "the mover's writer ran"
    );
    for (t, counts) in others.iter().zip(other_counts) {
        assert_eq!(
            tenant_counts(&c, &p.prefix, t, SOME).await,
            counts,
            "{t} is untouched"
        );
    }
    assert_eq!(
        tenant_counts(&c, &p.prefix, mover, SOME).await,
        mover_counts,
        "{mover}'s other data moved whole"
    );
    // Nothing is left behind: no Pro set, no Enterprise database, no fence.
    let names = c
        .database(&format!("{}_shared", p.prefix))
        .list_collection_names()
        .await
        .unwrap();
    assert!(
        !names.iter().any(|n| n.starts_with(&format!("{mover}_"))),
        "{names:?}"
    );
    let dbs = c.list_database_names().await.unwrap();
    assert!(!dbs.contains(&format!("{}_{mover}", p.prefix)), "{dbs:?}");
    // Nor the catch-up markers its three moves wrote into the shared source.
    let marks = c
        .database(&format!("{}_shared", p.prefix))
        .collection::<Document>("caas_move_marks")
        .count_documents(doc! { "tenant": mover })
        .await
        .unwrap();
    assert_eq!(marks, 0, "the moves' markers are removed when they end");
    let diff = p.caas(&["schema", "diff", "--exit-code"]);
    assert_eq!(diff.status.code(), Some(0), "{}", show(&diff));
    let status = p.caas(&["migrate", "status", "--exit-code"]);
    assert_eq!(status.status.code(), Some(0), "{}", show(&status));
    let reg = p.caas(&["tenant", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&reg)).unwrap();
    let me = v["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == mover)
        .unwrap()
        .clone();
    assert_eq!(me["tier"], "starter", "{me}");
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

async fn wait(child: Child) -> Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

/// Everything of the tenant that must survive a move whole: per collection, its documents.
async fn snapshot(c: &Client, prefix: &str, tenant: &str) -> Vec<(String, Vec<Document>)> {
    let mut out = Vec::new();
    for coll in ALL {
        let col = locate(c, prefix, tenant, coll).await;
        let mut docs = crate::support::find_all(
            &c.database(&col.namespace().db),
            &col.namespace().coll,
            doc! { "tenant_id": tenant },
        )
        .await;
        docs.sort_by_key(|d| {
            d.get_object_id("_id")
                .map(|o| o.to_hex())
                .unwrap_or_default()
        });
        out.push((coll.to_string(), docs));
    }
    out
}

/// `kill -9` at random points of a move, then the same command again: it converges to
/// the same result as an uninterrupted move (10 trials, alternating directions).
#[tokio::test(flavor = "multi_thread")]
async fn a_move_killed_at_random_points_is_finished_by_the_rerun() {
    let p = catalogue("mvkill");
    ok(&p, &["seed"]);
    let c = client().await;
    let t = "demo-pebble";
    let original = snapshot(&c, &p.prefix, t).await;
    let mut rng = Lcg(0x90e);
    for trial in 0..10 {
        let to = ["pro", "free", "enterprise", "free"][trial % 4];
        let args = [
            "tenant",
            "move",
            t,
            "--to",
            to,
            "--finish",
            "--batch",
            "10",
            "--read-changes-every",
            "0",
            "--lease-seconds",
            "1",
        ];
        let child = spawn(&p, &args);
        tokio::time::sleep(Duration::from_millis(100 + rng.below(2_000))).await;
        let _ = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status();
        let killed = wait(child).await;
        let mut rerun: Vec<&str> = args.to_vec();
        rerun.extend(["--lock-timeout", "20"]);
        let out = p.caas(&rerun);
        let text = show(&out);
        let moves: serde_json::Value =
            serde_json::from_str(&ok(&p, &["tenant", "moves", "--json"])).unwrap();
        if !out.status.success() {
            // The killed run may have finished before the kill: the rerun then says so.
            assert!(
                text.contains("already"),
                "trial {trial}: {text}\nkilled run: {}",
                show(&killed)
            );
            let f = p.caas(&["tenant", "move", t, "--finish"]);
            assert!(
                f.status.success() || show(&f).contains("no move in progress"),
                "{}",
                show(&f)
            );
        }
        assert_eq!(
            moves["moves"].as_array().unwrap().len(),
            0,
            "trial {trial}: {moves}"
        );
        assert_eq!(
            snapshot(&c, &p.prefix, t).await,
            original,
            "trial {trial} ({to}): the tenant's data is whole\nrerun: {text}\nkilled run: {}",
            show(&killed)
        );
        let reg = c
            .database(&format!("{}_platform", p.prefix))
            .collection::<Document>("saas_clients")
            .find_one(doc! { "tenant_id": t })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reg.get_str("tier").unwrap(), to, "trial {trial}");
    }
    let diff = p.caas(&["schema", "diff", "--exit-code"]);
    assert_eq!(diff.status.code(), Some(0), "{}", show(&diff));
}

/// A move cut off at one write after another (the connection dropped on the Nth `insert`,
/// `update`, `delete`, `drop`, `create`, `createIndexes` or `commitTransaction` of the caas
/// process), then run again until it ends: every cut point leaves the tenant whole, in
/// one place, with no move open. Deterministic where the random kills above are not.
#[tokio::test(flavor = "multi_thread")]
async fn a_move_cut_off_at_each_kind_of_write_is_finished_by_the_rerun() {
    let p = catalogue("mvcut");
    ok(&p, &["seed"]);
    let c = client().await;
    let t = "demo-pebble";
    let original = snapshot(&c, &p.prefix, t).await;
    if !crate::support::has_test_commands().await {
        return;
    }
    // (command, how many of them pass first, dropped connection rather than a server error)
    let cuts = [
        ("delete", 3, false),
        ("update", 1, false),
        ("commitTransaction", 3, false),
        ("delete", 4, true),
        ("create", 5, true),
        ("createIndexes", 2, false),
        ("commitTransaction", 12, false),
        ("drop", 0, false),
        ("delete", 10, false),
        ("delete", 1, false),
        ("update", 6, false),
        ("commitTransaction", 30, false),
        ("insert", 0, true),
        ("insert", 2, false),
        ("insert", 9, false),
    ];
    let mut fired = 0;
    for (trial, (command, skip, drop_it)) in cuts.into_iter().enumerate() {
        let to = ["pro", "free", "enterprise", "free"][trial % 4];
        let args = ["tenant", "move", t, "--to", to, "--finish", "--batch", "10"];
        // An interrupted `--finish` after the flip: the move ends with `--finish`.
        let settles = |o: &Output| {
            show(o).contains("already")
                && ok(&p, &["tenant", "move", t, "--finish"]).contains("finished")
        };
        let cut = (command, skip, drop_it);
        let (stopped, runs) = crate::support::cut_then_rerun(&p, &args, cut, settles).await;
        fired += usize::from(stopped);
        let label = format!("trial {trial}: cut at {command} #{}", skip + 1);
        let moves: serde_json::Value =
            serde_json::from_str(&ok(&p, &["tenant", "moves", "--json"])).unwrap();
        assert_eq!(
            moves["moves"].as_array().unwrap().len(),
            0,
            "{label}: {moves}"
        );
        assert_eq!(
            snapshot(&c, &p.prefix, t).await,
            original,
            "{label}: the tenant's data is whole\n{runs:#?}"
        );
    }
    assert!(
        fired * 3 >= cuts.len() * 2,
        "the cuts stopped {fired} of {} moves",
        cuts.len()
    );
    let diff = p.caas(&["schema", "diff", "--exit-code"]);
    assert_eq!(diff.status.code(), Some(0), "{}", show(&diff));
}

/// `--finish` whose removal of the source is cut off (the connection drops on a delete,
/// as a kill or a network fault would leave it): the rerun removes the rest and keeps
/// every document at the new location. The removal's own deletes show on the source's
/// change stream after the point `--finish` recorded; before the fix the rerun replayed
/// them as late application deletes and emptied the tenant at its new home (seen as an
/// intermittent failure of the random-kill test above).
#[tokio::test(flavor = "multi_thread")]
async fn a_finish_cut_off_mid_removal_never_replays_its_own_deletes() {
    let p = catalogue("mvdrain");
    ok(&p, &["seed"]);
    let c = client().await;
    let t = "demo-pebble";
    let original = snapshot(&c, &p.prefix, t).await;
    ok(&p, &["tenant", "move", t, "--to", "pro"]);
    let app = format!("{}-finish-fault", p.prefix);
    // Three deletes pass, then one drops its connection: a removal stopped part-way.
    let data = doc! { "failCommands": ["delete"], "closeConnection": true };
    let Some(held) =
        crate::support::arm_fail_command(&app, doc! { "skip": 3, "times": 1 }, data).await
    else {
        return;
    };
    let faulty = crate::support::named(&p.uri, &app);
    let cut = crate::support::caas_env(
        p.path(),
        &["tenant", "move", t, "--finish"],
        &[("MONGODB_URI", &faulty)],
    );
    crate::support::disarm_fail_command(held).await;
    assert_eq!(cut.status.code(), Some(2), "{}", show(&cut));
    let shared = c.database(&format!("{}_shared", p.prefix));
    let mut left = Vec::new();
    for coll in ALL {
        let n = shared
            .collection::<Document>(coll)
            .count_documents(doc! { "tenant_id": t })
            .await
            .unwrap();
        left.push(n);
    }
    assert!(
        left.contains(&0) && left.iter().any(|n| *n > 0),
        "the removal should have stopped part-way: {left:?}\n{}",
        show(&cut)
    );
    let rerun = ok(&p, &["tenant", "move", t, "--finish"]);
    assert!(!rerun.contains("delete(s) sent"), "{rerun}");
    assert_eq!(
        snapshot(&c, &p.prefix, t).await,
        original,
        "the tenant's data is whole at its new location"
    );
    for coll in ALL {
        let n = shared
            .collection::<Document>(coll)
            .count_documents(doc! { "tenant_id": t })
            .await
            .unwrap();
        assert_eq!(n, 0, "{coll}: the source is removed");
    }
}

/// `--abort` cut off part-way through dropping the copy: the move cannot be continued
/// over a half-dropped copy (its recorded progress no longer holds); the abort is
/// finished by rerunning it, and the original state is back.
#[tokio::test(flavor = "multi_thread")]
async fn an_abort_cut_off_part_way_is_finished_not_continued() {
    let p = catalogue("mvabcut");
    ok(&p, &["seed"]);
    let c = client().await;
    let t = "demo-pebble";
    let original = world(&c, &p, t).await;
    ok(
        &p,
        &[
            "tenant",
            "move",
            t,
            "--to",
            "pro",
            "--stop-after",
            "catchup",
        ],
    );
    let app = format!("{}-abort-fault", p.prefix);
    let data = doc! { "failCommands": ["drop"], "closeConnection": true };
    let Some(held) =
        crate::support::arm_fail_command(&app, doc! { "skip": 3, "times": 1 }, data).await
    else {
        return;
    };
    let faulty = crate::support::named(&p.uri, &app);
    let cut = crate::support::caas_env(
        p.path(),
        &["tenant", "move", t, "--abort"],
        &[("MONGODB_URI", &faulty)],
    );
    crate::support::disarm_fail_command(held).await;
    assert_eq!(cut.status.code(), Some(2), "{}", show(&cut));
    assert!(show(&cut).contains("--abort"), "{}", show(&cut));
    let on = p.caas(&["tenant", "move", t, "--to", "pro"]);
    assert_eq!(on.status.code(), Some(2), "{}", show(&on));
    assert!(show(&on).contains("was being aborted"), "{}", show(&on));
    let out = ok(&p, &["tenant", "move", t, "--abort"]);
    assert!(out.contains("aborted"), "{out}");
    assert!(
        world(&c, &p, t).await == original,
        "the abort, finished, restored everything"
    );
}

/// A collection of the new location dropped by hand during a move: going on would let
/// the next write create it bare (no validator, no indexes) over a copy that no longer
/// holds; the move refuses, naming the collection, and `--abort` still restores all.
#[tokio::test(flavor = "multi_thread")]
async fn a_move_whose_copy_lost_a_collection_refuses_to_go_on() {
    let p = catalogue("mvgone");
    ok(&p, &["seed"]);
    let c = client().await;
    let t = "demo-quill";
    let original = world(&c, &p, t).await;
    ok(
        &p,
        &[
            "tenant",
            "move",
            t,
            "--to",
            "enterprise",
            "--stop-after",
            "copy",
        ],
    );
    let db = c.database(&format!("{}_{t}", p.prefix));
    db.collection::<Document>("messages").drop().await.unwrap();
    let on = p.caas(&["tenant", "move", t, "--to", "enterprise"]);
    assert_eq!(on.status.code(), Some(2), "{}", show(&on));
    let text = show(&on);
    assert!(
        text.contains(&format!("{}_{t}.messages", p.prefix)),
        "{text}"
    );
    assert!(text.contains("--abort"), "{text}");
    assert!(
        !db.list_collection_names()
            .await
            .unwrap()
            .contains(&"messages".to_string()),
        "nothing created it again"
    );
    ok(&p, &["tenant", "move", t, "--abort"]);
    assert!(
        world(&c, &p, t).await == original,
        "the abort restored everything"
    );
}

/// The state a move must leave untouched when aborted: the registry entry, the source's
/// documents and collection options, and every collection name.
async fn world(
    c: &Client,
    p: &TestProject,
    t: &str,
) -> (
    Document,
    Vec<(String, Vec<Document>)>,
    Vec<String>,
    Vec<Document>,
) {
    let mut reg = c
        .database(&format!("{}_platform", p.prefix))
        .collection::<Document>("saas_clients")
        .find_one(doc! { "tenant_id": t })
        .await
        .unwrap()
        .unwrap();
    reg.remove("updated_at");
    let mut names = Vec::new();
    let mut options = Vec::new();
    for db in c
        .list_database_names()
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.starts_with(&p.prefix))
    {
        let mut specs: Vec<mongodb::results::CollectionSpecification> = {
            use futures::TryStreamExt;
            c.database(&db)
                .list_collections()
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap()
        };
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        for s in specs.into_iter().filter(|s| !s.name.starts_with("caas_")) {
            names.push(format!("{db}.{}", s.name));
            options.push(bson::to_document(&s.options).unwrap());
        }
    }
    (reg, snapshot(c, &p.prefix, t).await, names, options)
}

/// `--abort` at each phase before the flip restores the original state exactly; after
/// the flip it refuses (the tenant writes at the new location).
#[tokio::test(flavor = "multi_thread")]
async fn abort_at_each_phase_restores_the_original_state() {
    let p = catalogue("mvabort");
    ok(&p, &["seed"]);
    let c = client().await;
    for t in ["demo-pebble", "demo-quill"] {
        let to = if t == "demo-pebble" {
            "enterprise"
        } else {
            "free"
        };
        let original = world(&c, &p, t).await;
        for phase in ["copy", "catchup"] {
            ok(
                &p,
                &[
                    "tenant",
                    "move",
                    t,
                    "--to",
                    to,
                    "--stop-after",
                    phase,
                    "--batch",
                    "20",
                ],
            );
            let out = ok(&p, &["tenant", "move", t, "--abort"]);
            assert!(out.contains("aborted"), "{out}");
            assert!(
                world(&c, &p, t).await == original,
                "{t}: abort after {phase} restored everything"
            );
        }
        // Killed in the middle of anything (the cutover included), then aborted.
        let child = spawn(
            &p,
            &[
                "tenant",
                "move",
                t,
                "--to",
                to,
                "--batch",
                "5",
                "--lease-seconds",
                "1",
            ],
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        let _ = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status();
        wait(child).await;
        let out = p.caas(&["tenant", "move", t, "--abort", "--lock-timeout", "20"]);
        if out.status.success() || show(&out).contains("no move in progress") {
            // Aborted, or killed before the move was recorded: either way nothing is left.
            assert!(
                world(&c, &p, t).await == original,
                "{t}: abort after a kill restored everything: {}",
                show(&out)
            );
        } else {
            assert!(show(&out).contains("already flipped"), "{}", show(&out));
            ok(&p, &["tenant", "move", t, "--finish"]);
            continue;
        }
        ok(&p, &["tenant", "move", t, "--to", to]);
        let out = p.caas(&["tenant", "move", t, "--abort"]);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        assert!(show(&out).contains("already flipped"), "{}", show(&out));
        ok(&p, &["tenant", "move", t, "--finish"]);
    }
}

/// Refused clearly, writing nothing: an unknown tenant, the tier it has, a target that
/// holds data, a move already in progress (to another tier), a suspended tenant.
#[tokio::test(flavor = "multi_thread")]
async fn moves_that_cannot_be_done_are_refused_before_writing() {
    let p = catalogue("mvrefuse");
    ok(&p, &["seed"]);
    let c = client().await;
    let refused = |args: &[&str], says: &str| {
        let out = p.caas(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        assert!(
            show(&out).contains(says),
            "{args:?} should say `{says}`: {}",
            show(&out)
        );
    };
    refused(
        &["tenant", "move", "nobody", "--to", "pro"],
        "not registered",
    );
    refused(
        &["tenant", "move", "demo-pebble", "--to", "free"],
        "already free",
    );
    refused(&["tenant", "move", "../x", "--to", "pro"], "tenant");
    // A stray collection with data where the new Pro set would go.
    let stray = c
        .database(&format!("{}_shared", p.prefix))
        .collection::<Document>("demo-pebble_users");
    stray.insert_one(doc! { "x": 1 }).await.unwrap();
    refused(
        &["tenant", "move", "demo-pebble", "--to", "pro"],
        "already holds 1 document",
    );
    stray.drop().await.unwrap();
    ok(
        &p,
        &[
            "tenant",
            "move",
            "demo-pebble",
            "--to",
            "pro",
            "--stop-after",
            "copy",
        ],
    );
    refused(
        &["tenant", "move", "demo-pebble", "--to", "enterprise"],
        "already being moved free -> pro",
    );
    ok(&p, &["tenant", "move", "demo-pebble", "--abort"]);
    refused(
        &["tenant", "move", "demo-pebble", "--finish"],
        "no move in progress",
    );
    // Suspended tenants are read-only until resumed, and cannot move.
    ok(&p, &["tenant", "suspend", "demo-harbor"]);
    let users = c
        .database(&format!("{}_shared", p.prefix))
        .collection::<Document>("users");
    let e = users
        .update_one(
            doc! { "tenant_id": "demo-harbor" },
            doc! { "$set": { "locale": "de" } },
        )
        .await
        .unwrap_err();
    assert!(is_refusal(&e), "{e}");
    users
        .update_one(
            doc! { "tenant_id": "demo-pebble" },
            doc! { "$set": { "locale": "de" } },
        )
        .await
        .unwrap();
    refused(
        &["tenant", "move", "demo-harbor", "--to", "pro"],
        "suspended",
    );
    let diff = p.caas(&["schema", "diff", "--exit-code"]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "a fence is not drift: {}",
        show(&diff)
    );
    ok(&p, &["tenant", "resume", "demo-harbor"]);
    users
        .update_one(
            doc! { "tenant_id": "demo-harbor" },
            doc! { "$set": { "locale": "de" } },
        )
        .await
        .unwrap();
    let diff = p.caas(&["schema", "diff", "--exit-code"]);
    assert_eq!(diff.status.code(), Some(0), "{}", show(&diff));
}

/// A document the source holds but the specs no longer accept (written before the
/// validator, or under `validationLevel: moderate`) moves as it is: a move does not lose
/// data the source acknowledged; `schema audit` is where such documents are reported.
#[tokio::test(flavor = "multi_thread")]
async fn a_document_the_target_validator_refuses_still_moves() {
    let p = catalogue("mvinvalid");
    ok(&p, &["seed"]);
    let c = client().await;
    let users = c
        .database(&format!("{}_shared", p.prefix))
        .collection::<Document>("users");
    let id = ObjectId::new();
    c.database(&format!("{}_shared", p.prefix))
        .run_command(doc! {
            "insert": "users",
            "documents": [{ "_id": id, "tenant_id": "demo-pebble", "legacy": true }],
            "bypassDocumentValidation": true,
        })
        .await
        .unwrap();
    assert!(users.find_one(doc! { "_id": id }).await.unwrap().is_some());
    ok(
        &p,
        &["tenant", "move", "demo-pebble", "--to", "pro", "--finish"],
    );
    let moved = locate(&c, &p.prefix, "demo-pebble", "users").await;
    let d = moved.find_one(doc! { "_id": id }).await.unwrap();
    assert_eq!(
        d,
        Some(doc! { "_id": id, "tenant_id": "demo-pebble", "legacy": true }),
        "the document moved unchanged"
    );
    assert!(users.find_one(doc! { "_id": id }).await.unwrap().is_none());
}

/// Isolation on a shared destination: a change captured for the moving tenant (a document
/// inserted and deleted during the move) must not delete another tenant's document that
/// happens to use the same `_id` in the shared collection.
#[tokio::test(flavor = "multi_thread")]
async fn a_captured_delete_never_reaches_another_tenants_document() {
    let p = catalogue("mvisolate");
    ok(&p, &["seed"]);
    let c = client().await;
    let shared = c.database(&format!("{}_shared", p.prefix));
    // demo-pebble (free) owns `_id: "welcome"` in the shared groups collection.
    shared
        .run_command(doc! {
            "insert": "groups",
            "documents": [{ "_id": "welcome", "tenant_id": "demo-pebble", "name": "pebble's" }],
            "bypassDocumentValidation": true,
        })
        .await
        .unwrap();
    ok(
        &p,
        &[
            "tenant",
            "move",
            "demo-quill",
            "--to",
            "free",
            "--stop-after",
            "copy",
        ],
    );
    // demo-quill briefly has a document with the same `_id` at its source.
    shared
        .run_command(doc! {
            "insert": "demo-quill_groups",
            "documents": [{ "_id": "welcome", "name": "quill's" }],
            "bypassDocumentValidation": true,
        })
        .await
        .unwrap();
    shared
        .collection::<Document>("demo-quill_groups")
        .delete_one(doc! { "_id": "welcome" })
        .await
        .unwrap();
    ok(
        &p,
        &["tenant", "move", "demo-quill", "--to", "free", "--finish"],
    );
    let kept = shared
        .collection::<Document>("groups")
        .find_one(doc! { "_id": "welcome" })
        .await
        .unwrap();
    assert_eq!(
        kept.and_then(|d| d.get_str("tenant_id").ok().map(str::to_owned)),
        Some("demo-pebble".to_owned()),
        "the other tenant's document is untouched"
    );
}

/// Date a flipped move back by `hours`, as if its grace period had passed.
async fn date_flip_back(c: &Client, prefix: &str, tenant: &str, hours: i64) {
    let at = DateTime::from_millis(DateTime::now().timestamp_millis() - hours * 3_600_000);
    let r = c
        .database(&format!("{prefix}_platform"))
        .collection::<Document>("caas_tenant_moves")
        .update_one(
            doc! { "_id": tenant, "phase": "flipped" },
            doc! { "$set": { "flipped_at": at } },
        )
        .await
        .unwrap();
    assert_eq!(r.modified_count, 1, "{tenant} has a flipped move");
}

/// The old location of a flipped move is kept for `lifecycle.keep_source_hours` (168 by
/// default): `--finish-due` leaves it and a move to another tier is refused meanwhile;
/// once the grace period is over `--finish-due` removes it, and so does the tenant's next
/// move before it begins. With 0 hours a move removes its old location at the flip.
#[tokio::test(flavor = "multi_thread")]
async fn the_kept_source_is_removed_after_its_grace_period() {
    let p = catalogue("mvgrace");
    ok(&p, &["seed"]);
    let c = client().await;
    let shared = c.database(&format!("{}_shared", p.prefix));
    let left = async |coll: &str, filter: Document| {
        shared
            .collection::<Document>(coll)
            .count_documents(filter)
            .await
            .unwrap()
    };
    let pebble = || doc! { "tenant_id": "demo-pebble" };
    let out = ok(
        &p,
        &["tenant", "move", "demo-pebble", "--to", "pro", "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["move"]["phase"], "flipped", "{out}");
    let until = v["move"]["source_kept_until"].as_str().expect("kept until");
    let days = (DateTime::parse_rfc3339_str(until)
        .unwrap()
        .timestamp_millis()
        - DateTime::now().timestamp_millis()) as f64
        / 86_400_000.0;
    assert!((6.9..7.01).contains(&days), "kept until {until}");
    let kept = left("users", pebble()).await;
    assert!(kept > 0);
    let list = ok(&p, &["tenant", "moves"]);
    assert!(list.contains("old location kept until"), "{list}");

    let out = ok(&p, &["tenant", "move", "--finish-due"]);
    assert!(out.contains("0 kept source(s)"), "{out}");
    assert_eq!(left("users", pebble()).await, kept, "not due: kept");
    let refused = p.caas(&["tenant", "move", "demo-pebble", "--to", "enterprise"]);
    assert_eq!(refused.status.code(), Some(2), "{}", show(&refused));
    assert!(
        show(&refused).contains("caas tenant move demo-pebble --finish"),
        "{}",
        show(&refused)
    );
    let dbs = c.list_database_names().await.unwrap();
    assert!(
        !dbs.contains(&format!("{}_demo-pebble", p.prefix)),
        "nothing written"
    );

    // Due: two runs at once both succeed (the second finds the work done), one removes.
    date_flip_back(&c, &p.prefix, "demo-pebble", 169).await;
    let args = ["tenant", "move", "--finish-due"];
    let (first, second) = (spawn(&p, &args), spawn(&p, &args));
    for out in [wait(first).await, wait(second).await] {
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        assert!(show(&out).contains("removed, 0 failed"), "{}", show(&out));
    }
    assert_eq!(left("users", pebble()).await, 0, "due: removed");
    assert!(ok(&p, &["tenant", "moves"]).contains("0 move(s) in progress"));

    // Due when the tenant moves again: the kept Pro set goes first.
    ok(&p, &["tenant", "move", "demo-pebble", "--to", "enterprise"]);
    assert!(left("demo-pebble_users", doc! {}).await > 0, "kept");
    date_flip_back(&c, &p.prefix, "demo-pebble", 200).await;
    ok(&p, &["tenant", "move", "demo-pebble", "--to", "starter"]);
    let names = shared.list_collection_names().await.unwrap();
    assert!(
        !names.iter().any(|n| n.starts_with("demo-pebble_")),
        "{names:?}"
    );
    assert_eq!(
        left("users", pebble()).await,
        kept,
        "back in the shared target"
    );

    // 0 hours: the old location goes at the flip.
    let toml = p.path().join("caas.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, format!("{text}[lifecycle]\nkeep_source_hours = 0\n")).unwrap();
    let out = ok(&p, &["tenant", "move", "demo-quill", "--to", "enterprise"]);
    assert!(out.contains("phase finished"), "{out}");
    let names = shared.list_collection_names().await.unwrap();
    assert!(
        !names.iter().any(|n| n.starts_with("demo-quill_")),
        "{names:?}"
    );
}
