//! `caas seed` on the live test server.

use argon2::password_hash::{phc::PasswordHash, PasswordVerifier};
use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use mongodb::Database;

use crate::support::{client, root, show, stderr, stdout, TestProject};

fn catalogue(test: &str) -> TestProject {
    let p = TestProject::new(test, &root().join("schemas"));
    crate::support::copy_dir(&root().join("seeds"), &p.path().join("seeds"));
    crate::support::copy_dir(&root().join("migrations"), &p.path().join("migrations"));
    p
}

use crate::support::expect_ok as ok;

async fn all_docs(db: &Database, coll: &str) -> Vec<Document> {
    db.collection::<Document>(coll)
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// Every (database, collection) of the project's databases, with its document count.
pub(crate) async fn counts(prefix: &str) -> Vec<(String, String, u64)> {
    let c = client().await;
    let mut out = Vec::new();
    for db in c
        .list_database_names()
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.starts_with(prefix))
    {
        let d = c.database(&db);
        for coll in d.list_collection_names().await.unwrap() {
            if coll.starts_with("system.") {
                continue;
            }
            let n = d
                .collection::<Document>(&coll)
                .count_documents(doc! {})
                .await
                .unwrap();
            out.push((db.clone(), coll, n));
        }
    }
    out.sort();
    out
}

fn contains_str(b: &Bson, needle: &str) -> bool {
    match b {
        Bson::String(s) => s.contains(needle),
        Bson::Document(d) => d.values().any(|v| contains_str(v, needle)),
        Bson::Array(a) => a.iter().any(|v| contains_str(v, needle)),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_fills_every_collection_of_every_tier_and_stays_in_sync() {
    let p = catalogue("seedall");
    ok(&p, &["schema", "apply"]);
    ok(&p, &["migrate", "up"]);
    let out = p.caas(&["seed", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tenants_registered"], 4);
    assert_eq!(report["failed"], 0);
    assert_eq!(
        report["unchanged"], 4,
        "the plans V0003 inserted are left as they are: {report}"
    );

    // Every catalogue collection in every target has documents.
    let pre = &p.prefix;
    let c = counts(pre).await;
    let empty: Vec<&(String, String, u64)> = c
        .iter()
        .filter(|(_, coll, n)| *n == 0 && !coll.starts_with("caas_"))
        .collect();
    assert!(empty.is_empty(), "empty collections: {empty:?}");
    let shared = format!("{pre}_shared");
    let in_db = |db: &str| {
        c.iter()
            .filter(|(d, coll, _)| d == db && !coll.starts_with("caas_"))
            .count()
    };
    assert_eq!(
        in_db(&format!("{pre}_demo-atlas")),
        16,
        "the enterprise demo tenant's database holds all 16 saas collections"
    );
    assert_eq!(
        c.iter()
            .filter(|(d, coll, _)| *d == shared && coll.starts_with("demo-quill_"))
            .count(),
        16,
        "the Pro demo tenant's collection set"
    );
    assert_eq!(
        c.iter()
            .filter(|(d, coll, _)| *d == shared
                && !coll.contains('-')
                && !coll.starts_with("caas_"))
            .count(),
        16,
        "the shared collections"
    );
    let platform_side: usize = [
        format!("{pre}_platform"),
        format!("{pre}_billing"),
        format!("{pre}_analytics"),
    ]
    .iter()
    .map(|d| in_db(d))
    .sum();
    assert_eq!(platform_side, 15);

    let diff = ok(&p, &["schema", "diff", "--exit-code"]);
    assert!(diff.contains("in sync"), "{diff}");
    let again: serde_json::Value =
        serde_json::from_slice(&p.caas(&["seed", "--json"]).stdout).unwrap();
    assert_eq!(
        again["inserted"], 0,
        "a second seed inserts nothing: {again}"
    );
    assert_eq!(again["unchanged"], report["inserted"].as_u64().unwrap() + 4);
    let ledger = client()
        .await
        .database(&shared)
        .collection::<Document>("caas_migrations")
        .count_documents(doc! { "target": "pro:demo-quill" })
        .await
        .unwrap();
    assert_eq!(ledger, 0, "seeding never writes the migration ledger");

    // References are consistent: every message's sender is a participant of its conversation.
    let db = client().await.database(&format!("{pre}_demo-atlas"));
    let convs = all_docs(&db, "conversations").await;
    for m in all_docs(&db, "messages").await {
        let conv = convs
            .iter()
            .find(|c| c.get("_id") == m.get("conversation_id"))
            .expect("conversation exists");
        assert!(
            conv.get_array("participant_ids")
                .unwrap()
                .contains(m.get("sender_id").unwrap()),
            "{m}"
        );
    }
    let users = all_docs(&db, "users").await;
    assert!(
        users.iter().all(|u| u
            .get_str("email")
            .unwrap()
            .ends_with("@demo-atlas.example.com")),
        "reserved example domains"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_passwords_are_argon2id_and_no_secret_is_stored_in_plain_text() {
    let p = catalogue("seedpw");
    ok(&p, &["schema", "apply"]);
    ok(&p, &["seed", "--tier", "enterprise"]);
    let db = client().await.database(&format!("{}_demo-atlas", p.prefix));
    let user = db
        .collection::<Document>("users")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    let hash = user.get_str("password_hash").unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let parsed = PasswordHash::new(hash).unwrap();
    assert!(
        argon2::Argon2::default()
            .verify_password(b"demo123", &parsed)
            .is_ok(),
        "the stored hash verifies against demo123"
    );
    assert!(argon2::Argon2::default()
        .verify_password(b"demo124", &parsed)
        .is_err());
    assert_eq!(
        user.get_bool("pass_change"),
        Ok(true),
        "seeded accounts must change their password"
    );
    let admin = client()
        .await
        .database(&format!("{}_platform", p.prefix))
        .collection::<Document>("platform_admins")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert!(admin
        .get_str("password_hash")
        .unwrap()
        .starts_with("$argon2id$"));
    // No stored value anywhere holds the password.
    for (dbname, coll, _) in counts(&p.prefix).await {
        for d in all_docs(&client().await.database(&dbname), &coll).await {
            assert!(
                !contains_str(&Bson::Document(d.clone()), "demo123"),
                "{dbname}.{coll}: {d}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_removes_demo_data_and_nothing_else() {
    let p = catalogue("seedreset");
    ok(&p, &["tenant", "add", "realco", "--tier", "free"]);
    ok(&p, &["schema", "apply"]);
    let shared = client().await.database(&format!("{}_shared", p.prefix));
    let now = bson::DateTime::now();
    shared
        .collection::<Document>("users")
        .insert_one(doc! { "tenant_id": "realco", "username": "real.user", "display_name": "Real", "email": "real@realco.example.com", "pass_change": false, "role": "admin", "status": "active", "created_at": now, "updated_at": now })
        .await
        .unwrap();
    let before = counts(&p.prefix).await;
    ok(&p, &["seed"]);
    assert!(counts(&p.prefix).await.iter().map(|c| c.2).sum::<u64>() > 500);
    let out = ok(&p, &["seed", "--reset", "--yes"]);
    assert!(out.contains("removed"), "{out}");
    let after: Vec<(String, String, u64)> = counts(&p.prefix)
        .await
        .into_iter()
        .filter(|(_, c, _)| !c.starts_with("caas_"))
        .collect();
    let before: Vec<(String, String, u64)> = before
        .into_iter()
        .filter(|(_, c, _)| !c.starts_with("caas_"))
        .collect();
    assert_eq!(
        after, before,
        "exactly the pre-seed collections and counts remain"
    );
    let users = all_docs(&shared, "users").await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].get_str("username"), Ok("real.user"));
    let tenants = ok(&p, &["tenant", "list", "--json"]);
    let tenants: serde_json::Value = serde_json::from_str(&tenants).unwrap();
    assert_eq!(tenants["tenants"].as_array().unwrap().len(), 1, "{tenants}");
    ok(&p, &["schema", "diff", "--exit-code"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_seed_value_gives_the_same_data() {
    let (a, b) = (catalogue("seeddeta"), catalogue("seeddetb"));
    for p in [&a, &b] {
        ok(p, &["schema", "apply"]);
        ok(p, &["seed", "--tenant", "demo-atlas", "--seed-value", "7"]);
    }
    let strip = |docs: Vec<Document>| -> Vec<Document> {
        docs.into_iter()
            .map(|mut d| {
                d.remove("tenant_id");
                d
            })
            .collect()
    };
    let da = strip(
        all_docs(
            &client().await.database(&format!("{}_demo-atlas", a.prefix)),
            "messages",
        )
        .await,
    );
    let db = strip(
        all_docs(
            &client().await.database(&format!("{}_demo-atlas", b.prefix)),
            "messages",
        )
        .await,
    );
    assert_eq!(da, db, "identical messages for the same seed value");
    let ua = all_docs(
        &client().await.database(&format!("{}_demo-atlas", a.prefix)),
        "users",
    )
    .await;
    assert!(
        ua.iter()
            .any(|u| u.get_str("username") == Ok("alice.smith")),
        "names read as real"
    );
    ok(&b, &["seed", "--reset", "--yes"]);
    ok(&b, &["seed", "--tenant", "demo-atlas", "--seed-value", "8"]);
    let dc = strip(
        all_docs(
            &client().await.database(&format!("{}_demo-atlas", b.prefix)),
            "messages",
        )
        .await,
    );
    assert_ne!(da, dc, "another seed value gives other data");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fixture_that_breaks_a_validator_is_named_and_the_rest_is_reported() {
    let p = catalogue("seedbad");
    let file = p.path().join("seeds/demo.yaml");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "name: Sam Support, role: support",
        "name: Sam Support, role: superuser",
    );
    std::fs::write(&file, text).unwrap();
    ok(&p, &["schema", "apply"]);
    let out = p.caas(&["seed", "--tier", "free"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("rejected:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("platform_admins")
            && line.contains("target platform")
            && line.contains("`role`")
            && line.contains("enum"),
        "{line}"
    );
    assert!(
        !text.contains("0 rejected") && text.contains("1 rejected"),
        "{text}"
    );
    assert!(
        text.contains("caas_shared.users") || text.contains("_shared.users"),
        "the rest of the run is reported: {text}"
    );
    assert!(
        stderr(&out).contains("1 document(s) were rejected"),
        "{}",
        show(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn production_is_refused_without_force() {
    let p = catalogue("seedprod");
    let toml = std::fs::read_to_string(p.path().join("caas.toml")).unwrap();
    std::fs::write(
        p.path().join("caas.toml"),
        format!("{toml}[connection]\nproduction = true\n"),
    )
    .unwrap();
    let out = p.caas(&["seed"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("marked production (`[connection] production = true` in caas.toml)"),
        "{}",
        show(&out)
    );
    assert!(stderr(&out).contains("--force"));
    assert!(
        !client()
            .await
            .list_database_names()
            .await
            .unwrap()
            .iter()
            .any(|d| d.starts_with(&p.prefix)),
        "nothing written"
    );
    std::fs::write(p.path().join("caas.toml"), &toml).unwrap();
    let out = crate::support::caas_env(
        p.path(),
        &["seed"],
        &[
            ("MONGODB_URI", &crate::support::uri()),
            ("CAAS_ENVIRONMENT", "production"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("CAAS_ENVIRONMENT=production"),
        "{}",
        show(&out)
    );
    ok(&p, &["schema", "apply"]);
    let out = crate::support::caas_env(
        p.path(),
        &["seed", "--force", "--tier", "free"],
        &[
            ("MONGODB_URI", &crate::support::uri()),
            ("CAAS_ENVIRONMENT", "production"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}
