//! Offboarding, live: export -> remove -> import round-trips a tenant exactly (content
//! digest per collection equal), also into another tier and under another id; hostile
//! exports and documents the current specs refuse write nothing.

use bson::{doc, Document};

use crate::support::expect_ok as ok;
use crate::support::{client, cut_then_rerun, root, show, TestProject};

fn catalogue(test: &str) -> TestProject {
    let p = TestProject::new(test, &root().join("schemas"));
    crate::support::copy_dir(&root().join("seeds"), &p.path().join("seeds"));
    crate::support::copy_dir(&root().join("migrations"), &p.path().join("migrations"));
    p
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The manifest's content digest per collection.
fn digests(dir: &std::path::Path) -> Vec<(String, String, u64)> {
    let m = json(&std::fs::read_to_string(dir.join("manifest.json")).unwrap());
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["collection"].as_str().unwrap().to_owned(),
                f["digest"].as_str().unwrap().to_owned(),
                f["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn registry_entry(p: &TestProject, id: &str) -> Option<Document> {
    client()
        .await
        .database(&format!("{}_platform", p.prefix))
        .collection::<Document>("saas_clients")
        .find_one(doc! { "tenant_id": id })
        .await
        .unwrap()
}

/// The free tenant goes out of the shared tier and comes back as a Pro set, then the
/// same export comes back as an Enterprise database under another id.
#[tokio::test(flavor = "multi_thread")]
async fn export_remove_import_round_trips_a_tenant_into_another_tier() {
    let p = catalogue("offround");
    ok(&p, &["seed"]);
    ok(&p, &["migrate", "up"]);
    let out = p.path().join("pebble-out");
    let dir = out.to_str().unwrap();
    // Refused without a decision about the data; nothing changes.
    let refused = p.caas(&["tenant", "remove", "demo-pebble", "--yes"]);
    assert_eq!(refused.status.code(), Some(2), "{}", show(&refused));
    assert!(show(&refused).contains("--no-export"), "{}", show(&refused));
    let removed = json(&ok(
        &p,
        &[
            "tenant",
            "remove",
            "demo-pebble",
            "--export",
            dir,
            "--yes",
            "--json",
        ],
    ));
    assert!(
        removed["removed"]["deleted"].as_u64().unwrap() > 0,
        "{removed}"
    );
    let reg = registry_entry(&p, "demo-pebble").await.unwrap();
    assert_eq!(reg.get_str("status").unwrap(), "churned");
    let c = client().await;
    let shared = c.database(&format!("{}_shared", p.prefix));
    let left = shared
        .collection::<Document>("users")
        .count_documents(doc! { "tenant_id": "demo-pebble" })
        .await
        .unwrap();
    assert_eq!(left, 0, "the tenant's shared documents are gone");
    let exported = digests(&out);
    assert!(exported.iter().map(|e| e.2).sum::<u64>() > 0);

    let imported = json(&ok(
        &p,
        &["tenant", "import", dir, "--tier", "pro", "--json"],
    ));
    for c in imported["import"]["collections"].as_array().unwrap() {
        let name = c["collection"].as_str().unwrap();
        let e = exported.iter().find(|e| e.0 == name).unwrap();
        assert_eq!(c["digest"].as_str().unwrap(), e.1, "{name}: digest equal");
        assert_eq!(c["inserted"].as_u64().unwrap(), e.2, "{name}: count");
    }
    let reg = registry_entry(&p, "demo-pebble").await.unwrap();
    assert_eq!(reg.get_str("status").unwrap(), "active");
    assert_eq!(reg.get_str("tier").unwrap(), "pro");
    ok(&p, &["schema", "diff", "--exit-code"]);
    let status = p.caas(&["migrate", "status"]);
    assert_eq!(status.status.code(), Some(0), "{}", show(&status));

    // Under another id, into its own database: tenant ids are rewritten, nothing else.
    let again = json(&ok(
        &p,
        &[
            "tenant",
            "import",
            dir,
            "--as",
            "pebble-two",
            "--tier",
            "enterprise",
            "--json",
        ],
    ));
    for c in again["import"]["collections"].as_array().unwrap() {
        assert_eq!(c["digest_equal"], true, "{c}");
    }
    ok(&p, &["schema", "diff", "--exit-code"]);
    // Importing onto a live tenant is refused.
    let twice = p.caas(&["tenant", "import", dir, "--tier", "pro"]);
    assert_eq!(twice.status.code(), Some(2), "{}", show(&twice));
    assert!(
        show(&twice).contains("is registered (active)"),
        "{}",
        show(&twice)
    );
}

/// An export that claims another tenant's documents, a damaged file, a FIFO, and
/// documents the current specs refuse: each is refused and nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_or_rejected_imports_write_nothing() {
    let p = catalogue("offhostile");
    ok(&p, &["seed"]);
    let out = p.path().join("harbor-out");
    let dir = out.to_str().unwrap();
    ok(&p, &["tenant", "export", "demo-harbor", "--out", dir]);
    // A folder that is not empty is not overwritten.
    let again = p.caas(&["tenant", "export", "demo-harbor", "--out", dir]);
    assert_eq!(again.status.code(), Some(2), "{}", show(&again));

    let copy = |name: &str| {
        let d = p.path().join(name);
        crate::support::copy_dir(&out, &d);
        d
    };
    // One line names another tenant: refused before anything is written.
    let evil = copy("evil");
    let users = evil.join("users.jsonl");
    let text = std::fs::read_to_string(&users).unwrap();
    std::fs::write(
        &users,
        text.replacen(
            "\"tenant_id\":\"demo-harbor\"",
            "\"tenant_id\":\"demo-pebble\"",
            1,
        ),
    )
    .unwrap();
    let r = p.caas(&[
        "tenant",
        "import",
        evil.to_str().unwrap(),
        "--as",
        "evil-co",
    ]);
    assert_eq!(r.status.code(), Some(2), "{}", show(&r));
    assert!(show(&r).contains("users.jsonl:1"), "{}", show(&r));
    assert!(show(&r).contains("not the exported tenant"), "{}", show(&r));
    assert!(registry_entry(&p, "evil-co").await.is_none());

    // A file cut short: its count and sha256 no longer match the manifest.
    let cut = copy("cut");
    let text = std::fs::read_to_string(cut.join("users.jsonl")).unwrap();
    let first = text.lines().next().unwrap().to_owned() + "\n";
    std::fs::write(cut.join("users.jsonl"), first).unwrap();
    let r = p.caas(&["tenant", "import", cut.to_str().unwrap(), "--as", "cut-co"]);
    assert_eq!(r.status.code(), Some(2), "{}", show(&r));
    assert!(
        show(&r).contains("does not match the manifest"),
        "{}",
        show(&r)
    );
    assert!(registry_entry(&p, "cut-co").await.is_none());

    // A FIFO in place of a file is not opened (it would block forever).
    let fifo = copy("fifo");
    std::fs::remove_file(fifo.join("users.jsonl")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(fifo.join("users.jsonl"))
        .status()
        .unwrap();
    assert!(made.success());
    let r = p.caas(&[
        "tenant",
        "import",
        fifo.to_str().unwrap(),
        "--as",
        "fifo-co",
    ]);
    assert_eq!(r.status.code(), Some(2), "{}", show(&r));
    assert!(show(&r).contains("not a regular file"), "{}", show(&r));

    // The specs moved on since the export: every user now needs a field none has.
    let spec = p.path().join("schemas/saas/users/users.yaml");
    let text = std::fs::read_to_string(&spec).unwrap();
    let stricter = text.replacen(
        "fields:\n",
        "fields:\n  badge_number: { type: string, required: true }\n",
        1,
    );
    assert_ne!(text, stricter, "the spec has a fields section");
    std::fs::write(&spec, stricter).unwrap();
    let r = p.caas(&[
        "tenant",
        "import",
        dir,
        "--as",
        "strict-co",
        "--tier",
        "pro",
    ]);
    assert_eq!(r.status.code(), Some(1), "{}", show(&r));
    assert!(show(&r).contains("nothing imported"), "{}", show(&r));
    assert!(show(&r).contains("users.jsonl:"), "{}", show(&r));
    assert!(registry_entry(&p, "strict-co").await.is_none());
    let c = client().await;
    let names = c
        .database(&format!("{}_shared", p.prefix))
        .list_collection_names()
        .await
        .unwrap();
    assert!(
        !names.iter().any(|n| n.starts_with("strict-co_")),
        "no collection of the rejected import is left: {names:?}"
    );
}

/// `migrate up` skips the targets of suspended tenants and says so (their fence would
/// refuse the migration's writes); `seed` leaves them alone; after `resume` both catch up.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_and_seed_skip_suspended_tenants_and_say_so() {
    let p = catalogue("offsuspend");
    ok(&p, &["seed"]);
    ok(&p, &["tenant", "suspend", "demo-quill"]);
    let up = ok(&p, &["migrate", "up"]);
    assert!(up.contains("skipped (tenant suspended)"), "{up}");
    assert!(
        up.contains("skipped: tenant(s) demo-quill suspended"),
        "{up}"
    );
    let status = p.caas(&["migrate", "status", "--json"]);
    let v = json(&crate::support::stdout(&status));
    let quill = v["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "pro:demo-quill")
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        !quill["pending"].as_array().unwrap().is_empty(),
        "the suspended tenant's migrations are still pending: {quill}"
    );
    let seeded = p.caas(&["seed"]);
    assert!(seeded.status.success(), "{}", show(&seeded));
    assert!(
        show(&seeded).contains("skipping tenant demo-quill (suspended"),
        "{}",
        show(&seeded)
    );
    ok(&p, &["tenant", "resume", "demo-quill"]);
    let up = ok(&p, &["migrate", "up"]);
    assert!(!up.contains("skipped"), "{up}");
    let status = p.caas(&["migrate", "status"]);
    assert_eq!(status.status.code(), Some(0), "{}", show(&status));

    // `migrate down` leaves a suspended tenant's target as it is, and says so.
    ok(&p, &["tenant", "suspend", "demo-quill"]);
    let down = ok(&p, &["migrate", "down", "--yes", "--steps", "1"]);
    assert!(
        down.contains("skipped: tenant(s) demo-quill suspended")
            && down.contains("caas migrate down"),
        "{down}"
    );
    let status = p.caas(&["migrate", "status", "--json"]);
    let v = json(&crate::support::stdout(&status));
    let pending = |target: &str| {
        v["states"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == target)
            .unwrap_or_else(|| panic!("{target}: {v}"))["pending"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(
        pending("pro:demo-quill"),
        0,
        "the suspended tenant kept its versions"
    );
    assert_eq!(
        pending("enterprise:demo-atlas"),
        1,
        "another tenant reverted one"
    );
}

/// Where roles are managed, they follow the tenant: after a move, a removal and an import
/// `roles diff` is clean without another `roles apply`.
#[tokio::test(flavor = "multi_thread")]
async fn service_roles_follow_moves_removals_and_imports() {
    let p = catalogue("offroles");
    ok(&p, &["seed"]);
    ok(&p, &["roles", "apply", "--yes"]);
    ok(&p, &["roles", "diff", "--exit-code"]);
    ok(
        &p,
        &[
            "tenant",
            "move",
            "demo-harbor",
            "--to",
            "enterprise",
            "--finish",
        ],
    );
    ok(&p, &["roles", "diff", "--exit-code"]);
    let out = p.path().join("harbor-out");
    let dir = out.to_str().unwrap();
    ok(
        &p,
        &["tenant", "remove", "demo-harbor", "--export", dir, "--yes"],
    );
    ok(&p, &["roles", "diff", "--exit-code"]);
    ok(&p, &["tenant", "import", dir, "--tier", "pro"]);
    ok(&p, &["roles", "diff", "--exit-code"]);
}

/// The tenant's documents per shared collection, as counts.
async fn shared_counts(p: &TestProject, id: &str) -> Vec<u64> {
    let c = client().await;
    let shared = c.database(&format!("{}_shared", p.prefix));
    let mut out = Vec::new();
    for coll in [
        "users",
        "messages",
        "conversations",
        "groups",
        "files",
        "user_keys",
    ] {
        let n = shared
            .collection::<Document>(coll)
            .count_documents(doc! { "tenant_id": id })
            .await
            .unwrap();
        out.push(n);
    }
    out
}

/// A removal reuses only the export it wrote itself: an export of an earlier life of the
/// tenant (removed, imported back, changed since) is refused, nothing deleted; a removal
/// cut off while deleting (the connection drops on a delete) refuses another folder,
/// whose export would hold only part of the tenant, and finishes with its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_removal_keeps_to_its_own_export() {
    let p = catalogue("offown");
    ok(&p, &["seed"]);
    let c = client().await;
    let users = c
        .database(&format!("{}_shared", p.prefix))
        .collection::<Document>("users");
    let old = p.path().join("pebble-old");
    let old = old.to_str().unwrap();
    ok(
        &p,
        &["tenant", "remove", "demo-pebble", "--export", old, "--yes"],
    );
    ok(&p, &["tenant", "import", old]);
    let changed = doc! { "tenant_id": "demo-pebble", "username": "alice.smith" };
    users
        .update_one(
            changed.clone(),
            doc! { "$set": { "display_name": "Changed Since" } },
        )
        .await
        .unwrap();
    let again = p.caas(&["tenant", "remove", "demo-pebble", "--export", old, "--yes"]);
    assert_eq!(again.status.code(), Some(2), "{}", show(&again));
    assert!(
        show(&again).contains("name a new folder"),
        "{}",
        show(&again)
    );
    let kept = users
        .find_one(changed)
        .await
        .unwrap()
        .expect("nothing deleted");
    assert_eq!(kept.get_str("display_name").unwrap(), "Changed Since");

    let t = "demo-harbor";
    let before = shared_counts(&p, t).await;
    let app = format!("{}-remove-fault", p.prefix);
    let data = doc! { "failCommands": ["commitTransaction"], "closeConnection": true };
    let Some(held) =
        crate::support::arm_fail_command(&app, doc! { "skip": 4, "times": 100 }, data).await
    else {
        return;
    };
    let own = p.path().join("harbor-own");
    let own = own.to_str().unwrap();
    let faulty = crate::support::named(&p.uri, &app);
    let cut = crate::support::caas_env(
        p.path(),
        &["tenant", "remove", t, "--export", own, "--yes"],
        &[("MONGODB_URI", &faulty)],
    );
    crate::support::disarm_fail_command(held).await;
    assert_eq!(cut.status.code(), Some(2), "{}", show(&cut));
    let during = shared_counts(&p, t).await;
    assert!(
        during != before && during.iter().any(|n| *n > 0),
        "deleting began and stopped: {before:?} -> {during:?}\n{}",
        show(&cut)
    );
    let other = p.path().join("harbor-other");
    let other = other.to_str().unwrap();
    let elsewhere = p.caas(&["tenant", "remove", t, "--export", other, "--yes"]);
    assert_eq!(elsewhere.status.code(), Some(2), "{}", show(&elsewhere));
    let text = show(&elsewhere);
    assert!(
        text.contains(&format!("rerun with --export {own}")),
        "{text}"
    );
    assert!(!std::path::Path::new(other).join("manifest.json").exists());
    let done = ok(&p, &["tenant", "remove", t, "--export", own, "--yes"]);
    assert!(done.contains("an earlier run finished"), "{done}");
    let whole: Vec<u64> = [
        "users",
        "messages",
        "conversations",
        "groups",
        "files",
        "user_keys",
    ]
    .iter()
    .map(|c| {
        digests(std::path::Path::new(own))
            .iter()
            .find(|d| d.0 == *c)
            .unwrap()
            .2
    })
    .collect();
    assert_eq!(
        whole, before,
        "the export holds the tenant as it was before any delete"
    );
    assert_eq!(shared_counts(&p, t).await, vec![0; 6]);
}

/// The tenant's documents per collection of its current home, as counts.
async fn home_counts(p: &TestProject, id: &str) -> Vec<(String, u64)> {
    let reg = registry_entry(p, id).await.unwrap();
    let c = client().await;
    let shared = c.database(&format!("{}_shared", p.prefix));
    let mut out = Vec::new();
    for coll in [
        "users",
        "messages",
        "conversations",
        "groups",
        "files",
        "user_keys",
    ] {
        let col = match reg.get_str("tier").unwrap() {
            "pro" => shared.collection::<Document>(&format!("{id}_{coll}")),
            "enterprise" => c
                .database(&format!("{}_{id}", p.prefix))
                .collection::<Document>(coll),
            _ => shared.collection::<Document>(coll),
        };
        let n = col.count_documents(doc! { "tenant_id": id }).await.unwrap();
        out.push((coll.to_owned(), n));
    }
    out
}

/// Removal and import of every tier, each cut off at one kind of write (a server error or
/// a dropped connection on the Nth delete, drop, dropDatabase, insert, create or commit),
/// then rerun until done: the export always holds the tenant as it was, the removal
/// leaves nothing behind, and the import brings back every document.
#[tokio::test(flavor = "multi_thread")]
async fn removals_and_imports_cut_off_at_each_kind_of_write_converge() {
    let p = catalogue("offcut");
    ok(&p, &["seed"]);
    if !crate::support::has_test_commands().await {
        return;
    }
    let trials = [
        ("demo-pebble", ("delete", 2, false), ("insert", 3, false)),
        ("demo-quill", ("drop", 1, false), ("create", 2, true)),
        (
            "demo-atlas",
            ("dropDatabase", 0, false),
            ("insert", 0, true),
        ),
        (
            "demo-pebble",
            ("commitTransaction", 5, false),
            ("commitTransaction", 4, false),
        ),
        (
            "demo-quill",
            ("delete", 0, true),
            ("createIndexes", 3, false),
        ),
        (
            "demo-harbor",
            ("commitTransaction", 1, true),
            ("insert", 7, false),
        ),
    ];
    let mut stopped = 0;
    for (trial, (t, remove_cut, import_cut)) in trials.into_iter().enumerate() {
        let before = home_counts(&p, t).await;
        assert!(before.iter().all(|b| b.1 > 0), "trial {trial}: {before:?}");
        let dir = p.path().join(format!("cut-{trial}"));
        let dir = dir.to_str().unwrap();
        let (s, runs) = cut_then_rerun(
            &p,
            &["tenant", "remove", t, "--export", dir, "--yes"],
            remove_cut,
            |_| false,
        )
        .await;
        stopped += usize::from(s);
        let exported: Vec<(String, u64)> = digests(std::path::Path::new(dir))
            .into_iter()
            .filter(|d| before.iter().any(|b| b.0 == d.0))
            .map(|d| (d.0, d.2))
            .collect();
        let mut want = before.clone();
        want.sort();
        let mut got = exported;
        got.sort();
        assert_eq!(
            got, want,
            "trial {trial}: the export holds {t} whole\n{runs:#?}"
        );
        let reg = registry_entry(&p, t).await.unwrap();
        assert_eq!(reg.get_str("status").unwrap(), "churned", "trial {trial}");
        let (s, runs) = cut_then_rerun(&p, &["tenant", "import", dir], import_cut, |_| false).await;
        stopped += usize::from(s);
        assert_eq!(
            home_counts(&p, t).await,
            before,
            "trial {trial}: {t} is back\n{runs:#?}"
        );
        let reg = registry_entry(&p, t).await.unwrap();
        assert_eq!(reg.get_str("status").unwrap(), "active", "trial {trial}");
    }
    assert!(stopped >= 8, "the cuts stopped {stopped} of 12 commands");
    let diff = p.caas(&["schema", "diff", "--exit-code"]);
    assert_eq!(diff.status.code(), Some(0), "{}", show(&diff));
}
