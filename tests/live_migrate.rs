//! `caas migrate` on the live test server: every tier, concurrent runners, a killed
//! backfill, a failing tenant, edited files, repair, down, and bad migration files.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bson::{doc, Document};
use futures::TryStreamExt;
use mongodb::Database;

use crate::support::{caas_env, client, fixture, show, stderr, stdout, uri, TestProject};

fn project(test: &str) -> TestProject {
    TestProject::new(test, &fixture("migrate/schemas"))
        .with_migrations(&fixture("migrate/migrations"))
}

use crate::support::expect_ok as ok;

async fn counters(places: &[(Database, String, String)]) -> Vec<i64> {
    let mut out = Vec::new();
    for (db, prefix, tenant) in places {
        let d = db
            .collection::<Document>(&format!("{prefix}counters"))
            .find_one(doc! { "tenant_id": tenant })
            .await
            .unwrap()
            .unwrap();
        out.push(d.get_i64("value").unwrap());
    }
    out
}

async fn ledger(db: &Database) -> Vec<Document> {
    crate::support::find_all(db, "caas_migrations", doc! {}).await
}

#[tokio::test(flavor = "multi_thread")]
async fn up_applies_everywhere_once_and_a_second_up_does_nothing() {
    let p = project("mupall");
    let places = crate::support::migrate_fleet(&p, 3).await;
    let out = ok(&p, &["migrate", "up", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let applied: Vec<String> = runs["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "applied")
        .map(|r| r["target"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        applied,
        [
            "shared",
            "pro:pa",
            "pro:pb",
            "enterprise:ea",
            "enterprise:eb"
        ],
        "{out}"
    );
    assert_eq!(
        counters(&places).await,
        vec![1; 6],
        "the shared target runs once for both shared tenants"
    );

    let status: serde_json::Value =
        serde_json::from_str(&ok(&p, &["migrate", "status", "--json", "--exit-code"])).unwrap();
    assert_eq!(status["behind"], 0);
    assert_eq!(status["states"][2]["applied"], serde_json::json!([1, 2]));
    let again: serde_json::Value =
        serde_json::from_str(&ok(&p, &["migrate", "up", "--json"])).unwrap();
    assert!(
        again["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "up_to_date"),
        "{again}"
    );
    assert_eq!(counters(&places).await, vec![1; 6]);

    // The ledger lives with the data: shared and both Pro sets in the shared database.
    let entries = ledger(&places[0].0).await;
    let targets: BTreeSet<&str> = entries
        .iter()
        .map(|e| e.get_str("target").unwrap())
        .collect();
    assert_eq!(targets, BTreeSet::from(["shared", "pro:pa", "pro:pb"]));
    let e = &entries[0];
    for key in [
        "version",
        "name",
        "checksum",
        "status",
        "started_at",
        "finished_at",
        "duration_ms",
        "tool_version",
        "host",
    ] {
        assert!(e.contains_key(key), "ledger entries record {key}: {e}");
    }
    assert_eq!(
        ledger(&places[4].0).await.len(),
        2,
        "the enterprise database has its own ledger"
    );
    let verify = ok(&p, &["migrate", "verify"]);
    assert!(verify.contains("checksums and order match"), "{verify}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runners_at_once_apply_each_migration_exactly_once() {
    let p = project("mtwo");
    let places = crate::support::migrate_fleet(&p, 12).await;
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_caas"))
            .current_dir(p.path())
            .args(["migrate", "up", "--concurrency", "2", "--json"])
            .env("MONGODB_URI", uri())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(a.status.code(), Some(0), "{}", show(&a));
    assert_eq!(b.status.code(), Some(0), "{}", show(&b));
    assert_eq!(
        counters(&places).await,
        vec![1; 6],
        "every counter incremented exactly once"
    );
    for (db, prefix, tenant) in &places {
        let visits: Vec<Document> = db
            .collection::<Document>(&format!("{prefix}items"))
            .find(doc! { "tenant_id": tenant })
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert!(
            visits.iter().all(|d| d.get_i64("visits") == Ok(1)),
            "{tenant}: {visits:?}"
        );
    }
    let entries = ledger(&places[0].0).await;
    assert_eq!(
        entries.len(),
        6,
        "one entry per target and version: {entries:?}"
    );
    assert!(entries.iter().all(|e| e.get_str("status") == Ok("applied")));
    let locks = places[0]
        .0
        .collection::<Document>("caas_locks")
        .count_documents(doc! { "owner": { "$type": "string" } })
        .await
        .unwrap();
    assert_eq!(locks, 0, "leases are released");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_backfill_resumes_from_its_checkpoint() {
    let p = project("mkill");
    let places = crate::support::migrate_fleet(&p, 40).await;
    let (db, _, _) = &places[4];
    let mut child = Command::new(env!("CARGO_BIN_EXE_caas"))
        .current_dir(p.path())
        .args([
            "migrate",
            "up",
            "--tenant",
            "ea",
            "--batch-pause-ms",
            "150",
            "--lease-seconds",
            "2",
        ])
        .env("MONGODB_URI", uri())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the backfill has committed some batches, then kill the process.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let e = db
            .collection::<Document>("caas_migrations")
            .find_one(doc! { "version": 2 })
            .await
            .unwrap();
        let processed = e
            .as_ref()
            .and_then(|e| e.get_document("checkpoint").ok())
            .and_then(|c| c.get("processed").and_then(|v| v.as_i64()))
            .unwrap_or(0);
        if processed >= 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backfill did not start: {e:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let entry = db
        .collection::<Document>("caas_migrations")
        .find_one(doc! { "version": 2 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        entry.get_str("status"),
        Ok("running"),
        "the crash is visible in the ledger: {entry}"
    );
    let done_before = entry
        .get_document("checkpoint")
        .unwrap()
        .get("processed")
        .and_then(|v| v.as_i64())
        .unwrap();
    assert!(done_before < 40, "killed in the middle: {done_before}");
    let lock = db
        .collection::<Document>("caas_locks")
        .find_one(doc! { "owner": { "$type": "string" } })
        .await
        .unwrap();
    assert!(lock.is_some(), "the dead runner's lease is still there");

    // The rerun waits for the dead lease to expire, takes over and resumes.
    let out = p.caas(&[
        "migrate",
        "up",
        "--tenant",
        "ea",
        "--lock-timeout",
        "20",
        "--lease-seconds",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        stdout(&out).contains("resumed from checkpoint"),
        "{}",
        show(&out)
    );
    assert!(
        stderr(&out).contains(&format!(
            "resuming backfill of {}_ea.items after {done_before} document(s)",
            p.prefix
        )),
        "{}",
        show(&out)
    );
    let items: Vec<Document> = db
        .collection::<Document>("items")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(items.len(), 40);
    assert!(
        items.iter().all(|d| d.get_i64("visits") == Ok(1)),
        "no document processed twice, none skipped: {items:?}"
    );
    let entry = db
        .collection::<Document>("caas_migrations")
        .find_one(doc! { "version": 2 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.get_str("status"), Ok("applied"));
    assert_eq!(
        entry
            .get_i32("resumed")
            .ok()
            .map(i64::from)
            .or(entry.get_i64("resumed").ok()),
        Some(1)
    );
    assert_eq!(
        db.collection::<Document>("caas_locks")
            .count_documents(doc! { "owner": { "$type": "string" } })
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_tenant_does_not_stop_the_others_and_a_rerun_completes() {
    let p = project("mfail");
    let places = crate::support::migrate_fleet(&p, 2).await;
    // The spec gains a unique index, and a migration creates it early (before the next
    // `schema apply`): a migration may only create an index its spec declares.
    let spec = p.path().join("schemas/saas/items.yaml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        format!("{text}indexes:\n  - {{ keys: {{ code: 1 }}, unique: true }}\n"),
    )
    .unwrap();
    std::fs::write(
        p.path().join("migrations/V0003__unique_codes.yaml"),
        "description: Codes are unique.\nscope: tenant\nup:\n  - create_index: { collection: items, index: { keys: { code: 1 }, unique: true } }\ndown:\n  - drop_index: { collection: items, name: code_1 }\n",
    )
    .unwrap();
    let (eb, _, _) = &places[5];
    eb.collection::<Document>("items")
        .insert_one(doc! { "tenant_id": "eb", "code": "eb-0", "visits": 0_i64 })
        .await
        .unwrap();

    let out = p.caas(&["migrate", "up", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("1 target(s) failed"), "{err}");
    assert!(
        err.contains("enterprise:eb: V0003__unique_codes step 1 (create_index): code 11000"),
        "the report names tenant, step and server error: {err}"
    );
    let runs: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let failed: Vec<&str> = runs["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "failed")
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["enterprise:eb"]);
    assert!(
        runs["targets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["target"] != "enterprise:eb" && r["target"] != "platform")
            .all(|r| r["status"] == "applied"),
        "{runs}"
    );
    let status = p.caas(&["migrate", "status", "--exit-code"]);
    assert_eq!(status.status.code(), Some(1), "{}", show(&status));
    assert!(
        stdout(&status).contains("1 with failures"),
        "{}",
        show(&status)
    );

    eb.collection::<Document>("items")
        .delete_one(doc! { "code": "eb-0", "visits": 1_i64 })
        .await
        .unwrap();
    let out = p.caas(&["migrate", "up", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let runs: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let applied: Vec<&str> = runs["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "applied")
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        applied,
        ["enterprise:eb"],
        "a rerun retries only what is not applied"
    );
    assert_eq!(counters(&places).await, vec![1; 6]);
}

#[tokio::test(flavor = "multi_thread")]
async fn edited_migrations_are_refused_until_repaired_and_down_reverts_only_where_applied() {
    let p = project("medit");
    let places = crate::support::migrate_fleet(&p, 1).await;
    ok(&p, &["migrate", "up", "--tenant", "pa", "--tenant", "ea"]);
    let file = p.path().join("migrations/V0001__count_once.yaml");
    let text = std::fs::read_to_string(&file).unwrap();

    // Formatting only (CRLF, a comment): not an edit.
    std::fs::write(
        &file,
        format!("# reformatted\r\n{}", text.replace('\n', "\r\n")),
    )
    .unwrap();
    ok(&p, &["migrate", "verify"]);

    std::fs::write(&file, text.replace("value: 1", "value: 2")).unwrap();
    let out = p.caas(&["migrate", "up"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("V0001__count_once on pro:pa")
            && err.contains("V0001__count_once on enterprise:ea"),
        "{err}"
    );
    assert!(
        err.contains("caas migrate repair --accept-checksum"),
        "{err}"
    );
    assert_eq!(
        counters(&places).await,
        vec![0, 0, 1, 0, 1, 0],
        "nothing ran"
    );
    let verify = p.caas(&["migrate", "verify"]);
    assert_eq!(verify.status.code(), Some(1), "{}", show(&verify));
    assert!(
        stdout(&verify).contains("pro:pa: V0001__count_once was edited after it was applied"),
        "{}",
        show(&verify)
    );

    let repaired = ok(&p, &["migrate", "repair", "--accept-checksum"]);
    assert!(repaired.contains("2 ledger entries repaired"), "{repaired}");
    ok(&p, &["migrate", "verify"]);

    // down reverts the newest migration, only on targets that applied it.
    let out = ok(&p, &["migrate", "down", "--yes", "--steps", "2"]);
    assert!(out.contains("4 migration(s) reverted"), "{out}");
    let counts = counters(&places).await;
    assert_eq!(
        counts[2], 0,
        "pro:pa reverted V0001 (its down step decrements)"
    );
    assert_eq!(counts[0], 0, "shared never applied V0001 and is untouched");
    let status: serde_json::Value =
        serde_json::from_str(&ok(&p, &["migrate", "status", "--json"])).unwrap();
    assert_eq!(
        status["states"][2]["pending"],
        serde_json::json!([1, 2]),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_migration_files_are_located_and_nothing_runs() {
    let p = TestProject::new("mbad", &fixture("migrate/schemas"))
        .with_migrations(&fixture("migrate/bad"));
    ok(&p, &["tenant", "add", "acme", "--tier", "pro"]);
    let out = p.caas(&["migrate", "up"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    let expect = [
        (
            "V0001__unknown_step.yaml:4:5",
            "unknown variant `update_all`",
        ),
        ("V0002__bad_yaml.yaml:5:1", "invalid YAML"),
        (
            "V0003__missing_collection.yaml:5:7",
            "missing field `collection`",
        ),
        (
            "V0004__invalid_pipeline.yaml:8:11",
            "invalid update pipeline stage",
        ),
        (
            "V0005__other_tenant.yaml:6:15",
            "the filter names `tenant_id`",
        ),
        (
            "V0006__duplicate_version.yaml:1:1",
            "version 6 is also used by",
        ),
        ("V0008__partial_shared_index.yaml:5:5", "only for free"),
        (
            "V0009__wrong_scope.yaml:4:32",
            "no spec declares collection `itemz`",
        ),
        ("V7_bad_name.yaml:1:1", "separated by two underscores"),
        (
            "V0010__rename_to_dollar.yaml:4:56",
            "`$room` starts a segment with `$`",
        ),
        (
            "V0011__misspelt_step.yaml:4:5",
            "unknown variant `rename_feild`",
        ),
        (
            "V0012__lookup_unknown.yaml:8:28",
            "`$lookup` names `itemz`, which no spec declares",
        ),
        (
            "V0013__undeclared_index.yaml:4:47",
            "no spec declares an index on {\"visits\":-1}",
        ),
        ("V0014__empty_segment.yaml:4:46", "has an empty segment"),
    ];
    for (place, message) in expect {
        let line = err
            .lines()
            .find(|l| l.contains(place))
            .unwrap_or_else(|| panic!("no finding at {place}:\n{err}"));
        assert!(line.contains(message), "{place}: {line}");
    }
    assert!(err.contains("nothing ran"), "{err}");
    assert!(err.contains("did you mean `rename_field`?"), "{err}");
    let c = client().await;
    let shared = c.database(&format!("{}_shared", p.prefix));
    assert!(
        !shared
            .list_collection_names()
            .await
            .unwrap()
            .contains(&"caas_migrations".to_string()),
        "no ledger was written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn new_scaffolds_the_next_version_without_a_database() {
    let p = project("mnew");
    let out = caas_env(
        p.path(),
        &["migrate", "new", "add_customer_notes"],
        &[("MONGODB_URI", "mongodb://127.0.0.1:1/")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let file = p.path().join("migrations/V0003__add_customer_notes.yaml");
    assert!(file.exists(), "{}", show(&out));
    assert!(std::fs::read_to_string(file)
        .unwrap()
        .contains("scope: tenant"));
    let bad = caas_env(p.path(), &["migrate", "new", "bad-name"], &[]);
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_no_op_up_reads_one_ledger_per_database() {
    let p = project("mnoop");
    crate::support::migrate_fleet(&p, 0).await;
    ok(&p, &["migrate", "up"]);
    let config = p.config();
    let conn = caas_core::connect::connect(&uri(), Duration::from_secs(10))
        .await
        .unwrap();
    let specs_report = caas_core::spec::load_project(&config.specs_dir(), &[]).unwrap();
    let specs: Vec<&caas_core::spec::CollectionSpec> =
        specs_report.specs.iter().map(|s| &s.spec).collect();
    let (migrations, findings) = caas_core::migrate::load(
        &config.migrations_dir(),
        &specs,
        &[
            caas_core::tenancy::Tier::Free,
            caas_core::tenancy::Tier::Starter,
        ],
    );
    assert!(findings.is_empty(), "{findings:?}");
    let fleet = caas_core::fleet::resolve(&conn, &config, &Default::default())
        .await
        .unwrap();
    let f = caas_core::migrate::runner::Fleetwide {
        client: &conn.client,
        config: &config,
        specs: &specs,
        tenants: &fleet.tenants,
        migrations: &migrations,
    };
    let opts = caas_core::migrate::runner::UpOptions {
        to: None,
        dry_run: false,
        concurrency: 4,
        on_error: caas_core::migrate::runner::OnError::Continue,
        max_failures: None,
        lock_wait: Duration::from_secs(5),
        lease: Duration::from_secs(5),
        batch_pause: Duration::ZERO,
    };
    let before = conn.commands();
    let runs = caas_core::migrate::runner::up(&f, &fleet.targets, &opts, &|_| {})
        .await
        .unwrap();
    let trips = conn.commands() - before;
    assert!(runs.iter().all(|r| r.applied.is_empty()));
    // Ledger databases: platform, shared (free, starter and both Pro sets), ea, eb.
    assert_eq!(trips, 4, "one ledger query per database, no locks taken");
}

/// A filtered backfill whose update takes documents out of its own filter, with a batch size
/// that does not divide the count: in every tier, exactly the matching documents of that
/// tenant change, once each, and the others (and other tenants' documents in a shared
/// collection) stay as they were.
#[tokio::test(flavor = "multi_thread")]
async fn a_filtered_backfill_changes_exactly_the_matching_documents_once() {
    let p = project("mfilt");
    std::fs::write(
        p.path().join("migrations/V0003__promote_items.yaml"),
        "description: promote the items visited once\nscope: tenant\nup:\n  - backfill:\n      collection: items\n      filter: { visits: 1 }\n      batch_size: 2\n      update: { $inc: { visits: 1 } }\n",
    )
    .unwrap();
    let places = crate::support::migrate_fleet(&p, 7).await;
    // Every third item is out of the filter from the start (V0002 makes it 6, not 1).
    for (db, prefix, tenant) in &places {
        let items = db.collection::<Document>(&format!("{prefix}items"));
        for i in (0..7).step_by(3) {
            items
                .update_one(
                    doc! { "tenant_id": tenant, "code": format!("{tenant}-{i}") },
                    doc! { "$set": { "visits": 5_i64 } },
                )
                .await
                .unwrap();
        }
    }
    ok(&p, &["migrate", "up"]);
    for (db, prefix, tenant) in &places {
        let items = crate::support::tenant_items(db, prefix, tenant).await;
        let mut got: Vec<(String, i64)> = items
            .iter()
            .map(|d| {
                (
                    d.get_str("code").unwrap().to_string(),
                    d.get_i64("visits").unwrap(),
                )
            })
            .collect();
        got.sort();
        let want: Vec<(String, i64)> = (0..7)
            .map(|i| {
                let v = if i % 3 == 0 { 6 } else { 2 };
                (format!("{tenant}-{i}"), v)
            })
            .collect();
        assert_eq!(got, want, "tenant {tenant}");
        let entries = ledger(db).await;
        assert!(
            entries.iter().any(|e| e.get_i64("version") == Ok(3)
                && e.get_str("status") == Ok("applied")
                && e.get_str("target")
                    .is_ok_and(|t| t == "shared" || t.ends_with(&format!(":{tenant}")))),
            "tenant {tenant}: {entries:?}"
        );
    }
}
