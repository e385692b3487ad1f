//! `caas tenant` and `caas schema plan|apply|diff` against the live test server, run as a
//! user would run them.

use std::time::{Duration, Instant};

use bson::{doc, Document};
use mongodb::Database;

use crate::support::{caas_env, client, root, show, stderr, stdout, TestProject};

fn catalogue(test: &str) -> TestProject {
    TestProject::new(test, &root().join("schemas"))
}

use crate::support::expect_ok as ok;

fn code(p: &TestProject, args: &[&str]) -> (i32, String, String) {
    let out = p.caas(args);
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

/// Register one tenant per tier: free, starter, pro, enterprise.
fn four_tenants(p: &TestProject) {
    for (id, tier) in [
        ("free1", "free"),
        ("start1", "starter"),
        ("pro1", "pro"),
        ("ent1", "enterprise"),
    ] {
        ok(p, &["tenant", "add", id, "--tier", tier]);
    }
}

async fn db(name: &str) -> Database {
    client().await.database(name)
}

async fn index_names(db: &Database, coll: &str) -> Vec<String> {
    db.collection::<Document>(coll)
        .list_index_names()
        .await
        .unwrap()
}

fn now() -> bson::DateTime {
    bson::DateTime::now()
}

fn user(tenant: &str, username: &str) -> Document {
    doc! { "tenant_id": tenant, "username": username, "display_name": "Someone", "email": format!("{username}@example.com"),
    "pass_change": true, "role": "member", "status": "active", "created_at": now(), "updated_at": now() }
}

async fn insert_code(db: &Database, coll: &str, d: Document) -> Option<i32> {
    match db.collection::<Document>(coll).insert_one(d).await {
        Ok(_) => None,
        Err(e) => match *e.kind {
            mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => {
                Some(w.code)
            }
            other => panic!("{other:?}"),
        },
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_is_idempotent_and_diff_sees_changes_made_behind_its_back() {
    let p = catalogue("cycle");
    let pre = p.prefix.clone();
    four_tenants(&p);
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&p, &["tenant", "list", "--json"])).unwrap();
    assert_eq!(listed["tenants"].as_array().unwrap().len(), 4);

    let first = ok(&p, &["schema", "apply", "--concurrency", "3"]);
    assert!(first.contains("0 failed"), "{first}");
    let second = ok(&p, &["schema", "apply"]);
    assert!(
        second.contains("no changes: 4 target(s) match the specs"),
        "{second}"
    );
    let diff = ok(&p, &["schema", "diff", "--exit-code"]);
    assert!(diff.contains("in sync"), "{diff}");

    // Every target exists with its collections.
    let shared = db(&format!("{pre}_shared")).await;
    let names = shared.list_collection_names().await.unwrap();
    assert!(
        names.contains(&"users".into()) && names.contains(&"pro1_users".into()),
        "{names:?}"
    );
    let ent = db(&format!("{pre}_ent1")).await;
    assert_eq!(
        ent.list_collection_names().await.unwrap().len(),
        16,
        "16 saas collections in the enterprise database"
    );

    // Behind caas's back: drop an index, loosen a validator, add an index.
    shared
        .collection::<Document>("users")
        .drop_index("tenant_id_1_username_1")
        .await
        .unwrap();
    shared.run_command(doc! { "collMod": "pro1_messages", "validator": { "$jsonSchema": { "bsonType": "object" } } }).await.unwrap();
    ent.run_command(doc! { "createIndexes": "posts", "indexes": [ { "key": { "caption": 1 }, "name": "rogue_caption" } ] }).await.unwrap();

    let (status, out, err) = code(&p, &["schema", "diff", "--exit-code"]);
    assert_eq!(status, 1, "{out}{err}");
    assert!(
        out.contains("target shared: ")
            && crate::support::has_row(
                &out,
                &[
                    &format!("{pre}_shared.users"),
                    "create index tenant_id_1_username_1"
                ]
            ),
        "{out}"
    );
    assert!(
        out.contains("target pro:pro1: ")
            && crate::support::has_row(
                &out,
                &[
                    &format!("{pre}_shared.pro1_messages"),
                    "update validation: validator differs"
                ]
            ),
        "{out}"
    );
    assert!(
        out.contains("target enterprise:ent1: ")
            && crate::support::has_row(
                &out,
                &[
                    &format!("{pre}_ent1.posts"),
                    "undeclared index rogue_caption"
                ]
            ),
        "{out}"
    );
    assert!(
        out.contains("drift: 3 difference(s) in 3 of 4 target(s)"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&code(&p, &["schema", "diff", "--json"]).1).unwrap();
    assert_eq!(json["in_sync"], false);
    assert_eq!(json["drift"].as_array().unwrap().len(), 3);

    ok(&p, &["schema", "apply"]);
    let (status, out, _) = code(&p, &["schema", "diff", "--exit-code"]);
    assert_eq!(status, 1, "the undeclared index stays until --prune: {out}");
    assert!(
        out.contains("rogue_caption") && out.contains("drift: 1 difference(s)"),
        "{out}"
    );
    ok(
        &p,
        &["schema", "apply", "--yes", "--prune", "--allow-destructive"],
    );
    ok(&p, &["schema", "diff", "--exit-code"]);
    assert!(index_names(&shared, "users")
        .await
        .contains(&"tenant_id_1_username_1".to_string()));
    assert!(!index_names(&ent, "posts")
        .await
        .contains(&"rogue_caption".to_string()));

    // In each tier's target, the server rejects a document that breaks a rule and accepts a valid one.
    let cases = [
        (format!("{pre}_shared"), "users", "free1"),
        (format!("{pre}_shared"), "users", "start1"),
        (format!("{pre}_shared"), "pro1_users", "pro1"),
        (format!("{pre}_ent1"), "users", "ent1"),
    ];
    for (dbname, coll, tenant) in cases {
        let d = db(&dbname).await;
        assert_eq!(
            insert_code(&d, coll, user(tenant, &format!("ok_{tenant}"))).await,
            None,
            "{dbname}.{coll}"
        );
        let mut bad = user(tenant, &format!("bad_{tenant}"));
        bad.insert("role", "superuser");
        assert_eq!(
            insert_code(&d, coll, bad).await,
            Some(121),
            "{dbname}.{coll}: enum rule"
        );
        let mut no_contact = user(tenant, &format!("nc_{tenant}"));
        no_contact.remove("email");
        assert_eq!(
            insert_code(&d, coll, no_contact).await,
            Some(121),
            "{dbname}.{coll}: any_of_required rule"
        );
    }
    // Dedicated targets accept only their own tenant.
    assert_eq!(
        insert_code(&shared, "pro1_users", user("free1", "intruder")).await,
        Some(121)
    );
    assert_eq!(
        insert_code(&ent, "users", user("pro1", "intruder")).await,
        Some(121)
    );
    // The shared target enforces per-tenant uniqueness, not global.
    assert_eq!(
        insert_code(&shared, "users", user("start1", "ok_free1")).await,
        None,
        "same username, other tenant"
    );
    assert_eq!(
        insert_code(&shared, "users", user("free1", "ok_free1")).await,
        Some(11000),
        "unique within the tenant"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_counts_invalid_documents_and_duplicates() {
    let p = catalogue("preflight");
    let shared = db(&format!("{}_shared", p.prefix)).await;
    ok(&p, &["tenant", "add", "acme", "--tier", "free"]);
    ok(&p, &["schema", "apply", "--tier", "free"]);

    // Two documents the full validator rejects, written while it was loose.
    shared.run_command(doc! { "collMod": "messages", "validator": { "$jsonSchema": { "bsonType": "object" } } }).await.unwrap();
    let coll = shared.collection::<Document>("messages");
    coll.insert_one(doc! { "_id": "legacy-1", "tenant_id": "acme", "body": "no sender" })
        .await
        .unwrap();
    coll.insert_one(
        doc! { "_id": "legacy-2", "tenant_id": "acme", "client_message_id": "legacy-2" },
    )
    .await
    .unwrap();
    let (status, out, err) = code(&p, &["schema", "apply", "--tier", "free", "--json"]);
    assert_eq!(status, 1, "held back: {out}{err}");
    assert!(
        out.contains("2 existing document(s) fail the new validator (e.g. _id legacy-1, legacy-2)"),
        "{out}"
    );
    assert!(out.contains("--allow-invalid-docs"), "{out}");
    let validator = live_validator(&shared, "messages").await;
    assert_eq!(
        validator,
        doc! { "$jsonSchema": { "bsonType": "object" } },
        "nothing was changed"
    );
    ok(
        &p,
        &["schema", "apply", "--tier", "free", "--allow-invalid-docs"],
    );
    assert!(live_validator(&shared, "messages")
        .await
        .get_document("$jsonSchema")
        .unwrap()
        .contains_key("properties"));

    // Duplicates block a new unique index, and are shown.
    let users = shared.collection::<Document>("users");
    users.drop_index("tenant_id_1_username_1").await.unwrap();
    let a = users
        .insert_one(user("acme", "sam"))
        .await
        .unwrap()
        .inserted_id;
    let mut twin = user("acme", "sam");
    twin.insert("email", "sam2@example.com");
    let b = users.insert_one(twin).await.unwrap().inserted_id;
    let (status, out, _) = code(&p, &["schema", "apply", "--tier", "free", "--json"]);
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains("unique index tenant_id_1_username_1 would fail: 1 duplicated value(s)"),
        "{out}"
    );
    let ids = [a, b].map(|i| i.as_object_id().unwrap().to_hex());
    assert!(
        ids.iter().all(|id| out.contains(id)),
        "the duplicates' _ids are shown: {out}"
    );
    users
        .delete_one(doc! { "email": "sam2@example.com" })
        .await
        .unwrap();
    ok(&p, &["schema", "apply", "--tier", "free"]);
    ok(&p, &["schema", "diff", "--tier", "free", "--exit-code"]);
}

async fn live_validator(db: &Database, coll: &str) -> Document {
    let spec = db
        .list_collections()
        .filter(doc! { "name": coll })
        .await
        .unwrap();
    use futures::TryStreamExt;
    let specs: Vec<mongodb::results::CollectionSpecification> = spec.try_collect().await.unwrap();
    specs[0].options.validator.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn destructive_changes_need_the_flag_and_undeclared_ones_need_prune() {
    let p = catalogue("guard");
    let shared = db(&format!("{}_shared", p.prefix)).await;
    ok(&p, &["tenant", "add", "acme", "--tier", "pro"]);
    ok(&p, &["schema", "apply", "--tenant", "acme"]);
    let users = shared.collection::<Document>("acme_users");
    users.drop_index("email_1").await.unwrap();
    shared.run_command(doc! { "createIndexes": "acme_users", "indexes": [ { "key": { "email": 1 }, "name": "email_1" } ] }).await.unwrap();
    shared.create_collection("acme_leftovers").await.unwrap();

    let (status, out, _) = code(&p, &["schema", "apply", "--tenant", "acme", "--json"]);
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains("rebuild index email_1 as email_1: unique false -> true")
            && out.contains("destructive; rerun with --allow-destructive"),
        "{out}"
    );
    assert!(
        out.contains("acme_leftovers\"") && out.contains("undeclared collection"),
        "{out}"
    );
    let ix = users.list_indexes().await.unwrap();
    use futures::TryStreamExt;
    let ix: Vec<mongodb::IndexModel> = ix.try_collect().await.unwrap();
    let email = ix
        .iter()
        .find(|i| i.options.as_ref().and_then(|o| o.name.as_deref()) == Some("email_1"))
        .unwrap();
    assert_ne!(
        email.options.as_ref().unwrap().unique,
        Some(true),
        "not rebuilt without the flag"
    );

    // The rebuild goes through; acme's undeclared collection is acme's data: reported with
    // its owner and never dropped, so apply still exits 1 for it.
    let (status, out, _) = code(
        &p,
        &[
            "schema",
            "apply",
            "--yes",
            "--tenant",
            "acme",
            "--allow-destructive",
        ],
    );
    assert_eq!(status, 1, "{out}");
    assert!(out.contains("owner: pro:acme"), "{out}");
    let names = index_names(&shared, "acme_users").await;
    assert!(
        names.contains(&"email_1".to_string())
            && !names.iter().any(|n| n.ends_with("_caas_rebuild")),
        "{names:?}"
    );
    // A stray of nobody's in the shared database: dropped only with both flags.
    shared.create_collection("leftovers").await.unwrap();
    let (status, out, _) = code(&p, &["schema", "apply", "--prune"]);
    assert_eq!(status, 1, "--prune alone holds the drop back: {out}");
    assert!(shared
        .list_collection_names()
        .await
        .unwrap()
        .contains(&"leftovers".to_string()));
    let (status, out, _) = code(
        &p,
        &["schema", "apply", "--yes", "--prune", "--allow-destructive"],
    );
    assert_eq!(status, 1, "acme's collection is still held back: {out}");
    let names = shared.list_collection_names().await.unwrap();
    assert!(!names.contains(&"leftovers".to_string()), "{names:?}");
    assert!(names.contains(&"acme_leftovers".to_string()), "{names:?}");
    let (status, _, _) = code(&p, &["schema", "diff", "--tenant", "acme", "--exit-code"]);
    assert_eq!(status, 1, "acme's undeclared collection is drift");
    shared
        .collection::<Document>("acme_leftovers")
        .drop()
        .await
        .unwrap();
    ok(&p, &["schema", "diff", "--tenant", "acme", "--exit-code"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_live_state_costs_one_round_trip_per_database_and_collection() {
    let p = catalogue("trips");
    for (id, tier) in [
        ("f1", "free"),
        ("p1", "pro"),
        ("p2", "pro"),
        ("e1", "enterprise"),
        ("e2", "enterprise"),
    ] {
        ok(&p, &["tenant", "add", id, "--tier", tier]);
    }
    ok(&p, &["schema", "apply"]);
    let config = p.config();
    let conn = caas_core::connect::connect(&crate::support::uri(), Duration::from_secs(10))
        .await
        .unwrap();
    let report = caas_core::spec::load_project(&config.specs_dir(), &[]).unwrap();
    let specs: Vec<&caas_core::spec::CollectionSpec> =
        report.specs.iter().map(|s| &s.spec).collect();
    let fleet = caas_core::fleet::resolve(&conn, &config, &Default::default())
        .await
        .unwrap();
    let compiled = caas_core::fleet::desired(&specs, &fleet, &config);
    let before = conn.commands();
    let plans = caas_core::fleet::plan(&conn, &config, &fleet, &specs, &compiled, 4)
        .await
        .unwrap();
    let trips = conn.commands() - before;
    assert!(plans.plans.iter().all(|p| p.changes.is_empty()));
    // Databases: platform, billing, analytics, shared (free and both Pro sets), e1, e2.
    // Collections: 15 platform-side + 16 shared + 2 x 16 Pro sets + 2 x 16 enterprise.
    let databases = 6;
    let collections = 15 + 16 + 2 * 16 + 2 * 16;
    assert_eq!(
        trips,
        (databases + collections) as u64,
        "one listCollections per database, one listIndexes per collection"
    );

    // The streamed path `schema plan` and `diff` take: the same round trips, and after
    // drift in several databases, the same plans in the same order as reading everything first.
    let c = client().await;
    c.database(&format!("{}_e2", p.prefix))
        .collection::<Document>("posts")
        .drop_index("author_id_1_created_at_-1")
        .await
        .unwrap();
    c.database(&format!("{}_shared", p.prefix))
        .collection::<Document>("p1_users")
        .drop()
        .await
        .unwrap();
    c.database(&format!("{}_shared", p.prefix))
        .create_collection("p2_leftovers")
        .await
        .unwrap();
    let before = conn.commands();
    let mut streamed = Vec::new();
    let summary = caas_core::fleet::plan_streamed(&conn, &config, &fleet, &specs, 3, &mut |p| {
        streamed.push(p)
    })
    .await
    .unwrap();
    let trips = conn.commands() - before;
    assert_eq!(
        trips,
        (databases + collections - 1) as u64,
        "p1_users is gone, so one listIndexes fewer"
    );
    let compiled = caas_core::fleet::desired(&specs, &fleet, &config);
    let all = caas_core::fleet::plan(&conn, &config, &fleet, &specs, &compiled, 4)
        .await
        .unwrap();
    assert_eq!(summary.targets, all.plans.len());
    let live = caas_core::fleet::read_live(&conn, &config, &fleet, &specs, 4)
        .await
        .unwrap();
    assert_eq!(
        summary.namespaces_after,
        caas_core::fleet::namespace_estimate(&config, &fleet, &specs, &live),
        "the capacity estimate `apply` makes from the whole live state"
    );
    assert_eq!(streamed, all.plans);
    let changed: Vec<String> = streamed
        .iter()
        .filter(|p| !p.changes.is_empty())
        .map(|p| p.target.to_string())
        .collect();
    assert_eq!(
        changed,
        ["pro:p1", "pro:p2", "enterprise:e2"],
        "{streamed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_server_is_one_clear_error_and_passwords_never_show() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("caas.toml"), "").unwrap();
    let start = Instant::now();
    let out = caas_env(
        dir.path(),
        &["--connect-timeout", "1", "tenant", "list"],
        &[(
            "MONGODB_URI",
            "mongodb://app:s3cr3t-pw@127.0.0.1:1/?authSource=admin",
        )],
    );
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach MongoDB at mongodb://app:****@127.0.0.1:1/"),
        "{err}"
    );
    assert!(
        !err.contains("s3cr3t") && !stdout(&out).contains("s3cr3t"),
        "{err}"
    );
    assert!(
        took < Duration::from_secs(30),
        "bounded, not a hang: {took:?}"
    );

    let out = caas_env(
        dir.path(),
        &["--uri", "mongodb://app:pw-on-argv@[bad", "schema", "diff"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(!stderr(&out).contains("pw-on-argv"), "{}", show(&out));

    let out = caas_env(dir.path(), &["tenant", "list"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no MongoDB connection string; pass --uri, set MONGODB_URI"),
        "{}",
        show(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tenant_ids_write_nothing() {
    let p = catalogue("badids");
    let registry = db(&format!("{}_platform", p.prefix)).await;
    for bad in [
        "has$dollar",
        "has.dot",
        "has/slash",
        "back\\slash",
        "has space",
        "UPPER",
        "x",
        &"a".repeat(41),
    ] {
        let (status, _, err) = code(&p, &["tenant", "add", bad, "--tier", "free"]);
        assert_eq!(status, 2, "{bad:?}: {err}");
        assert!(
            err.contains("a tenant id is 2 to 40 characters"),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(
        registry
            .collection::<Document>("saas_clients")
            .count_documents(doc! {})
            .await
            .unwrap(),
        0,
        "nothing written"
    );
    assert!(
        !client()
            .await
            .list_database_names()
            .await
            .unwrap()
            .iter()
            .any(|n| n.starts_with(&p.prefix)),
        "no database created"
    );
    ok(&p, &["tenant", "add", "fine-1", "--tier", "free"]);
    let (status, _, err) = code(&p, &["tenant", "add", "fine-1", "--tier", "pro"]);
    assert_eq!(status, 2);
    assert!(
        err.contains("tenant `fine-1` is already registered (tier free)"),
        "{err}"
    );
    let (status, _, err) = code(&p, &["schema", "plan", "--tenant", "nobody"]);
    assert_eq!(status, 2);
    assert!(err.contains("tenant `nobody` is not registered"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_refusals_are_per_target_errors() {
    let p = catalogue("refusal");
    std::fs::write(
        p.path().join("schemas/saas/settings/notes.yaml"),
        "collection: notes\ndomain: saas\nfields:\n  body: { type: string }\nindexes:\n  - keys: { body: text }\n",
    )
    .unwrap();
    ok(&p, &["tenant", "add", "acme", "--tier", "pro"]);
    let (status, out, err) = code(
        &p,
        &[
            "schema",
            "apply",
            "--fail-fast",
            "--concurrency",
            "1",
            "--json",
        ],
    );
    let shared = db(&format!("{}_shared", p.prefix)).await;
    let text_supported = index_names(&shared, "notes")
        .await
        .iter()
        .any(|n| n.contains("text"));
    if text_supported {
        assert_eq!(status, 0, "a real mongod builds text indexes: {out}{err}");
    } else {
        assert_eq!(status, 2, "{out}{err}");
        assert!(
            out.contains(&format!(
                "{}_shared.notes: index tenant_id_1_body_text refused by the server: code 67",
                p.prefix
            )),
            "{out}"
        );
        let reports: serde_json::Value = serde_json::from_str(&out).unwrap();
        let status_of = |t: &str| {
            reports["targets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["target"].to_string().contains(t))
                .map(|r| r["status"].clone())
        };
        assert_eq!(
            status_of("platform"),
            Some("applied".into()),
            "other targets complete: {out}"
        );
        assert_eq!(status_of("shared"), Some("failed".into()), "{out}");
        assert_eq!(
            status_of("acme"),
            Some("not_started".into()),
            "fail-fast stops the rest: {out}"
        );
        assert!(err.contains("target(s) failed"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_formats_and_capacity_warning() {
    let p = catalogue("formats");
    let toml = std::fs::read_to_string(p.path().join("caas.toml")).unwrap();
    std::fs::write(
        p.path().join("caas.toml"),
        format!("{toml}\n[connection]\nnamespace_budget = 50\n"),
    )
    .unwrap();
    ok(&p, &["tenant", "add", "acme", "--tier", "enterprise"]);
    let (status, out, err) = code(&p, &["schema", "plan"]);
    assert_eq!(status, 0);
    assert!(
        err.contains("over the budget of 50 (connection.namespace_budget)"),
        "{err}"
    );
    assert!(
        out.contains("would change") && out.contains("safe"),
        "{out}"
    );
    let (status, _, err) = code(&p, &["schema", "diff", "--exit-code"]);
    assert_eq!(status, 1, "acme's collections are missing: {err}");
    assert!(
        err.contains("over the budget of 50 (connection.namespace_budget)"),
        "diff warns too: {err}"
    );
    let script = ok(&p, &["schema", "plan", "--format", "mongosh"]);
    assert!(
        script.contains(&format!(
            "db.getSiblingDB(\"{}_acme\").createCollection(\"users\"",
            p.prefix
        )),
        "{script}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&p, &["schema", "plan", "--json"])).unwrap();
    assert_eq!(
        json["targets"].as_array().unwrap().len(),
        3,
        "platform, shared, enterprise:acme"
    );
    assert_eq!(
        json["targets"][2]["changes"][0]["change"],
        "create_collection"
    );
    assert_eq!(json["targets"][2]["changes"][0]["safety"], "safe");
    // -C and --config select another project.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::rename(p.path().join("caas.toml"), p.path().join("other.toml")).unwrap();
    let out = caas_env(
        elsewhere.path(),
        &[
            "-C",
            p.path().to_str().unwrap(),
            "--config",
            "other.toml",
            "schema",
            "plan",
            "--json",
        ],
        &[("MONGODB_URI", &crate::support::uri())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    std::fs::rename(p.path().join("other.toml"), p.path().join("caas.toml")).unwrap();
}

/// Tenant ids may contain `_`, so one Pro tenant's prefix (`acme_`) can start another's
/// collections (`acme_eu_users`) or the shared tiers' (`user_` starts `user_sessions`):
/// pruning a Pro tenant must leave both alone.
#[tokio::test(flavor = "multi_thread")]
async fn pruning_a_pro_tenant_never_drops_another_targets_collections() {
    let p = catalogue("prefix");
    let shared = db(&format!("{}_shared", p.prefix)).await;
    ok(&p, &["tenant", "add", "acme", "--tier", "pro"]);
    ok(&p, &["tenant", "add", "acme_eu", "--tier", "pro"]);
    ok(&p, &["schema", "apply"]);
    shared.create_collection("acme_leftovers").await.unwrap();
    let (status, out, _) = code(
        &p,
        &[
            "schema",
            "apply",
            "--tenant",
            "acme",
            "--prune",
            "--yes",
            "--allow-destructive",
            "--json",
        ],
    );
    assert_eq!(status, 1, "{out}");
    let names = shared.list_collection_names().await.unwrap();
    assert!(
        names.contains(&"acme_leftovers".to_string()) && out.contains("owner: pro:acme"),
        "acme's undeclared collection is acme's data, never pruned: {names:?}\n{out}"
    );
    shared
        .collection::<Document>("acme_leftovers")
        .drop()
        .await
        .unwrap();
    for c in [
        "acme_eu_users",
        "acme_eu_user_sessions",
        "acme_eu_messages",
        "acme_users",
    ] {
        assert!(names.contains(&c.to_string()), "{c} kept: {names:?}");
    }
    let (status, out, _) = code(&p, &["schema", "diff", "--exit-code"]);
    assert_eq!(status, 0, "both sets still match the specs: {out}");

    // A Pro tenant called `user`: its prefix starts the shared tiers' `user_sessions`,
    // `user_keys`... which hold every free and starter tenant's data.
    ok(&p, &["tenant", "add", "f1", "--tier", "free"]);
    ok(&p, &["tenant", "add", "user", "--tier", "pro"]);
    ok(&p, &["schema", "apply"]);
    let (status, out, _) = code(
        &p,
        &[
            "schema",
            "apply",
            "--tenant",
            "user",
            "--prune",
            "--yes",
            "--allow-destructive",
            "--json",
        ],
    );
    assert_eq!(status, 0, "{out}");
    let names = shared.list_collection_names().await.unwrap();
    for c in ["user_sessions", "user_keys", "user_devices", "user_users"] {
        assert!(names.contains(&c.to_string()), "{c} kept: {names:?}");
    }
    let (status, out, _) = code(&p, &["schema", "diff", "--exit-code"]);
    assert_eq!(status, 0, "nothing reported as undeclared: {out}");
}

/// With a spec named `eu_users`, Pro tenants `acme` and `acme_eu` would share
/// `acme_eu_users`: the second registration is refused and nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_whose_collections_would_collide_is_refused() {
    let p = catalogue("collide");
    std::fs::write(
        p.path().join("schemas/saas/users/eu_users.yaml"),
        "collection: eu_users\ndomain: saas\nowner: user-service\ndescription: Users of the EU region.\nfields:\n  email: { type: string, required: true, max_length: 254 }\n",
    )
    .unwrap();
    ok(&p, &["tenant", "add", "acme", "--tier", "pro"]);
    let (status, _, err) = code(&p, &["tenant", "add", "acme_eu", "--tier", "pro"]);
    assert_eq!(status, 2, "{err}");
    assert!(
        err.contains("tenant `acme_eu` cannot be added")
            && err.contains(
                ".acme_eu_users would be both pro:acme's `eu_users` and pro:acme_eu's `users`"
            ),
        "{err}"
    );
    let registry = db(&format!("{}_platform", p.prefix)).await;
    let ids: Vec<String> = registry
        .collection::<Document>("saas_clients")
        .distinct("tenant_id", doc! {})
        .await
        .unwrap()
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids, ["acme"], "nothing written for acme_eu");
    // A library caller of `registry::add` gets the same check (it lives in the engine).
    let config = p.config();
    let loaded = caas_core::project::load(&config).unwrap();
    let specs: Vec<_> = loaded.iter().map(|l| &l.spec).collect();
    let err = caas_core::fleet::registry::add(
        &registry,
        &config,
        Some(&specs),
        "acme_eu",
        caas_core::tenancy::Tier::Pro,
        Default::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cannot be added"), "{err:#}");
    ok(&p, &["tenant", "add", "acme_eu", "--tier", "enterprise"]);
    ok(&p, &["schema", "apply"]);
}
