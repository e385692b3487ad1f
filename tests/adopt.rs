//! Adopting caas on a deployment that exists: `schema pull` (round trip from what caas
//! applied; inference from hand-made data; constructs the spec language cannot say; bad
//! input), `migrate baseline` and `schema audit`, live on the test server.

use bson::{doc, Bson, Document};

use crate::support::{client, root, show, stdout, TestProject};

/// A second project on the same databases (same caas.toml), with no specs.
fn empty_twin(p: &TestProject) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(p.path().join("caas.toml"), dir.path().join("caas.toml")).unwrap();
    dir
}

fn run(dir: &std::path::Path, uri: &str, args: &[&str]) -> std::process::Output {
    crate::support::caas_env(dir, args, &[("MONGODB_URI", uri)])
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(out)))
}

/// The round trip of the issue: apply the catalogue for a tenant per tier, pull into a
/// folder with no specs, and the pulled specs lint clean, diff clean, and document the same
/// collections.
#[test]
fn pull_round_trips_the_catalogue_for_every_tier() {
    let p = TestProject::new("pull_round", &root().join("schemas"));
    for (id, tier) in [("fr", "free"), ("pr", "pro"), ("en", "enterprise")] {
        let out = p.caas(&["tenant", "add", id, "--tier", tier]);
        assert!(out.status.success(), "{}", show(&out));
    }
    let out = p.caas(&["schema", "apply", "--yes"]);
    assert!(out.status.success(), "{}", show(&out));

    let twin = empty_twin(&p);
    let pulled = run(twin.path(), &p.uri, &["schema", "pull", "--json"]);
    assert_eq!(pulled.status.code(), Some(0), "{}", show(&pulled));
    let report = json(&pulled);
    let specs = report["specs"].as_array().unwrap();
    let originals = std::fs::read_dir(root().join("schemas"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap())
        .map(|e| e.unwrap().path())
        .flat_map(|p| {
            if p.is_dir() {
                std::fs::read_dir(p)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect()
            } else {
                vec![p]
            }
        })
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .count();
    assert_eq!(
        specs.len(),
        originals,
        "one spec per logical collection, not per tenant copy"
    );
    let users = specs.iter().find(|s| s["collection"] == "users").unwrap();
    assert_eq!(
        users["copies"], 2,
        "the Pro set and Enterprise copies are one spec"
    );
    for s in specs {
        if s["origin"] == "validator" {
            assert_eq!(s["differences"], serde_json::json!([]), "{s:#}");
            assert_eq!(s["copies_differing"], serde_json::json!([]), "{s:#}");
        }
    }
    let lint = run(twin.path(), &p.uri, &["schema", "lint"]);
    assert_eq!(lint.status.code(), Some(0), "{}", show(&lint));
    let diff = run(twin.path(), &p.uri, &["schema", "diff", "--exit-code"]);
    assert_eq!(diff.status.code(), Some(0), "{}", show(&diff));
    assert!(
        stdout(&diff).contains("in sync: 4 target(s)"),
        "{}",
        show(&diff)
    );

    // The docs of the pulled project name the same collections and tiers.
    let names = |dir: &std::path::Path| {
        let out = dir.join("docs-out");
        let d = run(dir, &p.uri, &["docs", "--out", out.to_str().unwrap()]);
        assert!(d.status.success(), "{}", show(&d));
        let index = std::fs::read_to_string(out.join("README.md")).unwrap();
        let mut lines: Vec<String> = index
            .lines()
            .filter(|l| l.starts_with('|') && l.contains(".md"))
            .map(|l| l.split('|').nth(1).unwrap_or("").trim().to_owned())
            .collect();
        lines.sort();
        lines
    };
    let (ours, theirs) = (names(p.path()), names(twin.path()));
    assert!(!ours.is_empty());
    assert_eq!(ours, theirs);
}

async fn insert(db: &str, coll: &str, docs: Vec<Document>) {
    client()
        .await
        .database(db)
        .collection::<Document>(coll)
        .insert_many(docs)
        .await
        .unwrap();
}

/// Hand-made data, no validators: the pulled spec's validator accepts every document,
/// mixed fields are reported with their counts, and the tenants are found and registered.
#[tokio::test(flavor = "multi_thread")]
async fn pull_infers_specs_that_accept_every_document_and_finds_the_tenants() {
    let p = TestProject::new("pull_infer", &crate::support::fixture("migrate/schemas"));
    std::fs::remove_dir_all(p.path().join("schemas")).unwrap();
    let shared = format!("{}_shared", p.prefix);
    let mut notes = Vec::new();
    for (i, t) in ["acme", "bolt", "acme", "cora", "bolt", "acme"]
        .iter()
        .enumerate()
    {
        let mut d = doc! {
            "tenant_id": *t,
            "title": format!("note {i}"),
            "score": if i % 2 == 0 { Bson::Int32(i as i32) } else { Bson::Double(i as f64 + 0.5) },
            "code": if i < 4 { Bson::String(format!("c{i}")) } else { Bson::Int32(i as i32) },
            "tags": [["a", "b"], ["c"]],
            "where": { "type": "Point", "coordinates": [13.4 + i as f64, 52.5] },
            "author": { "name": "Ada", "roles": ["owner"] },
            "created_at": bson::DateTime::now(),
        };
        if i % 3 == 0 {
            d.insert("archived_at", bson::DateTime::now());
        }
        notes.push(d);
    }
    insert(&shared, "notes", notes).await;
    // A Pro tenant's set member and an Enterprise tenant's database, by name.
    insert(&shared, "dyna_notes", vec![doc! { "tenant_id": "dyna", "title": "x", "score": 1, "code": "c", "tags": [], "where": { "type": "Point", "coordinates": [0.0, 0.0] }, "author": { "name": "B", "roles": [] }, "created_at": bson::DateTime::now() }]).await;
    insert(&format!("{}_evox", p.prefix), "notes", vec![doc! { "tenant_id": "evox", "title": "y", "score": 2, "code": "d", "tags": [["z"]], "where": { "type": "Point", "coordinates": [1.0, 1.0] }, "author": { "name": "C", "roles": ["x"] }, "created_at": bson::DateTime::now() }]).await;
    let db = client().await.database(&format!("{}_platform", p.prefix));
    db.collection::<Document>("hand_made")
        .insert_one(doc! { "k": 1 })
        .await
        .unwrap();
    db.run_command(doc! { "create": "recent", "viewOn": "hand_made", "pipeline": [] })
        .await
        .unwrap();
    // A peer tool's ledger (migrate-mongo's) is not application data.
    db.collection::<Document>("changelog")
        .insert_one(
            doc! { "fileName": "20240101-add-status.js", "appliedAt": bson::DateTime::now() },
        )
        .await
        .unwrap();

    let out = p.caas(&["schema", "pull", "--register", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    let specs = report["specs"].as_array().unwrap();
    let notes_spec = specs.iter().find(|s| s["collection"] == "notes").unwrap();
    assert_eq!(notes_spec["origin"], "sample");
    assert_eq!(notes_spec["sampled"], 6);
    assert_eq!(notes_spec["refused"], 0, "{notes_spec:#}");
    assert_eq!(notes_spec["copies"], 2, "{notes_spec:#}");
    let said: Vec<String> = notes_spec["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            format!(
                "{}: {}",
                n["at"].as_str().unwrap(),
                n["message"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        said.iter()
            .any(|n| n.starts_with("code: mixed types") && n.contains("int 2, string 4")),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|n| n.starts_with("score: mixed types") && n.contains("`number`")),
        "{said:?}"
    );
    let text = std::fs::read_to_string(p.path().join("schemas/saas/notes.yaml")).unwrap();
    for expected in [
        "where: { type: geo_point",
        "archived_at: { type: date }",
        "code: { type: any",
        "# mixed types in the sample",
    ] {
        assert!(text.contains(expected), "{expected}:\n{text}");
    }
    let tenants: Vec<(String, String)> = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_owned(),
                t["tier"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (id, tier) in [
        ("acme", "free"),
        ("bolt", "free"),
        ("cora", "free"),
        ("dyna", "pro"),
        ("evox", "enterprise"),
    ] {
        assert!(
            tenants.contains(&(id.to_owned(), tier.to_owned())),
            "{id} {tier}: {tenants:?}"
        );
    }
    assert_eq!(report["registered"].as_array().unwrap().len(), 5);
    assert!(
        report["skipped"].to_string().contains("recent"),
        "the view is skipped with a note"
    );
    assert!(
        report["skipped"]
            .to_string()
            .contains("migrate-mongo's migration ledger"),
        "{}",
        report["skipped"]
    );
    assert!(!specs.iter().any(|s| s["collection"] == "changelog"));
    // Asked to, every tenant copy is sampled: 6 shared + 1 Pro set + 1 Enterprise document.
    let every = p.caas(&[
        "schema",
        "pull",
        "--dry-run",
        "--sample-every-copy",
        "--json",
    ]);
    assert_eq!(every.status.code(), Some(0), "{}", show(&every));
    let every = json(&every);
    let notes_every = every["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["collection"] == "notes")
        .unwrap()
        .clone();
    assert_eq!(
        (
            notes_every["sampled"].clone(),
            notes_every["refused"].clone()
        ),
        (8.into(), 0.into()),
        "{notes_every:#}"
    );

    // Apply the pulled validators, then audit: every existing document passes them.
    let lint = p.caas(&["schema", "lint"]);
    assert_eq!(lint.status.code(), Some(0), "{}", show(&lint));
    let apply = p.caas(&["schema", "apply", "--yes"]);
    assert!(apply.status.success(), "{}", show(&apply));
    let audit = p.caas(&["schema", "audit", "--json"]);
    assert_eq!(audit.status.code(), Some(0), "{}", show(&audit));
    assert_eq!(json(&audit)["failing"], 0);
    let again = p.caas(&["schema", "pull"]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "no overwrite without --merge: {}",
        show(&again)
    );
    assert!(
        crate::support::stderr(&again).contains("--merge"),
        "{}",
        show(&again)
    );
}

/// A validator with constructs the field language cannot say: they are kept as raw rules
/// (never dropped), named in notes, and the applied result still refuses what it refused.
#[tokio::test(flavor = "multi_thread")]
async fn unexpressible_validator_constructs_are_kept_as_raw_rules() {
    let p = TestProject::new("pull_raw", &crate::support::fixture("migrate/schemas"));
    std::fs::remove_dir_all(p.path().join("schemas")).unwrap();
    let db = client().await.database(&format!("{}_platform", p.prefix));
    let validator = doc! {
        "$jsonSchema": {
            "bsonType": "object",
            "required": ["sku"],
            "properties": {
                "sku": { "bsonType": "string", "pattern": "^[A-Z]+$" },
                "price": { "oneOf": [ { "bsonType": "int", "minimum": 0 }, { "bsonType": "string", "enum": ["free"] } ] },
                "qty": { "bsonType": "int", "exclusiveMinimum": true, "minimum": 0 },
            },
            "patternProperties": { "^x_": { "bsonType": "string" } },
        },
        "status": { "$in": ["on", "off"] },
    };
    db.run_command(doc! { "create": "products", "validator": validator })
        .await
        .unwrap();
    let out = p.caas(&["schema", "pull", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let spec = json(&out)["specs"][0].clone();
    let notes = spec["notes"].to_string();
    for kept in [
        "oneOf",
        "exclusiveMinimum",
        "patternProperties",
        "query operators",
    ] {
        assert!(notes.contains(kept), "{kept} not named: {notes}");
    }
    let text = std::fs::read_to_string(p.path().join("schemas/platform/products.yaml")).unwrap();
    assert!(
        text.contains("json_schema:") && text.contains("query:"),
        "{text}"
    );
    let lint = p.caas(&["schema", "lint"]);
    assert_eq!(lint.status.code(), Some(0), "{}", show(&lint));
    // Rewritten by apply into caas's form, the validator refuses and accepts the same.
    let apply = p.caas(&["schema", "apply", "--yes", "--allow-destructive"]);
    assert!(apply.status.success(), "{}", show(&apply));
    let c = db.collection::<Document>("products");
    let now = bson::DateTime::now();
    let good = doc! { "sku": "AB", "price": "free", "qty": 1, "x_note": "n", "status": "on", "created_at": now, "updated_at": now };
    c.insert_one(good)
        .await
        .expect("a document the original accepted");
    for bad in [
        doc! { "sku": "AB", "price": -1, "status": "on" },
        doc! { "sku": "AB", "qty": 0, "status": "on" },
        doc! { "sku": "AB", "x_note": 3, "status": "on" },
        doc! { "sku": "AB", "status": "maybe" },
    ] {
        let err = c.insert_one(bad.clone()).await;
        assert!(err.is_err(), "accepted {bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_refuses_bad_input_clearly() {
    let p = TestProject::new("pull_bad", &crate::support::fixture("migrate/schemas"));
    // A collection name that would be a path outside the spec folder is not pulled.
    let db = client().await.database(&format!("{}_platform", p.prefix));
    db.collection::<Document>("x/../../../escape")
        .insert_one(doc! { "a": 1 })
        .await
        .unwrap();
    let out = p.caas(&["schema", "pull", "--out", "pulled", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        json(&out)["skipped"]
            .to_string()
            .contains("cannot be a spec file's name"),
        "{}",
        show(&out)
    );
    assert!(
        !p.path().join("escape.yaml").exists()
            && !p.path().parent().unwrap().join("escape.yaml").exists()
    );
    let huge = p.caas(&["schema", "pull", "--sample", "100000000"]);
    assert_eq!(huge.status.code(), Some(2), "{}", show(&huge));
    let missing = p.caas(&["schema", "pull", "--database", "no_such_db_here"]);
    assert_eq!(missing.status.code(), Some(2), "{}", show(&missing));
    assert!(
        crate::support::stderr(&missing).contains("database `no_such_db_here` does not exist"),
        "{}",
        show(&missing)
    );
    let zero = p.caas(&["schema", "pull", "--sample", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", show(&zero));
    assert!(
        crate::support::stderr(&zero).contains("--sample 0"),
        "{}",
        show(&zero)
    );
}

/// Baseline: versions up to V are recorded without running; `up` runs only the rest;
/// status and verify show them; `down` does not undo them.
#[test]
fn baseline_marks_versions_applied_without_running_them() {
    let p = TestProject::new("baseline", &root().join("schemas"))
        .with_migrations(&root().join("migrations"));
    assert!(p
        .caas(&["tenant", "add", "acme", "--tier", "pro"])
        .status
        .success());
    assert!(p.caas(&["schema", "apply", "--yes"]).status.success());
    let b = p.caas(&["migrate", "baseline", "--version", "2", "--yes", "--json"]);
    assert_eq!(b.status.code(), Some(0), "{}", show(&b));
    let status = json(&p.caas(&["migrate", "status", "--json"]));
    let pro = status["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["target"] == "pro:acme")
        .unwrap()
        .clone();
    assert_eq!(pro["baselined"], serde_json::json!([1, 2]), "{pro:#}");
    assert_eq!(pro["pending"], serde_json::json!([]), "{pro:#}");
    let up = p.caas(&["migrate", "up", "--json"]);
    assert!(up.status.success(), "{}", show(&up));
    let ran: Vec<String> = json(&up)["targets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["applied"].as_array().cloned().unwrap_or_default())
        .map(|v| v.to_string())
        .collect();
    assert!(
        !ran.iter().any(|v| v == "1" || v == "2"),
        "baselined versions ran: {ran:?}"
    );
    let again = p.caas(&["migrate", "baseline", "--version", "2", "--yes", "--json"]);
    let recorded: usize = json(&again)["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["baselined"].as_array().unwrap().len())
        .sum();
    assert_eq!(recorded, 0, "a second baseline records nothing");
    let verify = p.caas(&["migrate", "verify", "--json"]);
    assert_eq!(verify.status.code(), Some(0), "{}", show(&verify));
    assert!(json(&verify)["baselined"].to_string().contains("pro:acme"));
    let none = p.caas(&["migrate", "baseline", "--version", "0", "--yes"]);
    assert_eq!(none.status.code(), Some(2), "{}", show(&none));
}

/// Audit: documents written around the validator are counted per rule, with sample ids and
/// per tenant; exit 1.
#[tokio::test(flavor = "multi_thread")]
async fn audit_counts_refused_documents_per_rule_and_tenant() {
    let p = TestProject::new("audit", &root().join("schemas"));
    assert!(p
        .caas(&["tenant", "add", "acme", "--tier", "free"])
        .status
        .success());
    assert!(p
        .caas(&["schema", "apply", "--yes", "--tenant", "acme"])
        .status
        .success());
    let clean = p.caas(&["schema", "audit", "--tenant", "acme"]);
    assert_eq!(clean.status.code(), Some(0), "{}", show(&clean));
    let c = client()
        .await
        .database(&format!("{}_shared", p.prefix))
        .collection::<Document>("groups");
    c.insert_one(doc! { "tenant_id": "acme", "name": 42 })
        .bypass_document_validation(true)
        .await
        .unwrap();
    let out = p.caas(&[
        "schema",
        "audit",
        "--tenant",
        "acme",
        "--collection",
        "groups",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report = json(&out);
    assert_eq!(report["failing"], 1);
    let groups = &report["targets"][0]["collections"][0];
    assert_eq!(groups["by_tenant"]["acme"], 1, "{groups:#}");
    let parts = groups["parts"].to_string();
    assert!(
        parts.contains("field name") && parts.contains("required created_at"),
        "{parts}"
    );
    assert_eq!(
        groups["parts"][0]["sample_ids"].as_array().unwrap().len(),
        1
    );
    let name = groups["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "name")
        .unwrap();
    assert_eq!(name["unexpected"], 1, "{name:#}");
}

/// Collection options come back too: a default collation, validation level and action, a
/// time series with its expiry; the pulled specs diff clean, and a changed collation is a
/// destructive conflict, not a silent collMod.
#[tokio::test(flavor = "multi_thread")]
async fn pull_reads_collation_validation_and_time_series_options() {
    let p = TestProject::new("pull_opts", &crate::support::fixture("migrate/schemas"));
    std::fs::remove_dir_all(p.path().join("schemas")).unwrap();
    let db = client().await.database(&format!("{}_analytics", p.prefix));
    db.run_command(doc! {
        "create": "labels",
        "collation": { "locale": "en", "strength": 2 },
        "validator": { "$jsonSchema": { "bsonType": "object", "required": ["name"], "properties": { "name": { "bsonType": "string", "maxLength": 40 } } } },
        "validationLevel": "moderate",
        "validationAction": "warn",
    })
    .await
    .unwrap();
    db.run_command(doc! { "createIndexes": "labels", "indexes": [ { "key": { "name": 1 }, "name": "name_1", "unique": true } ] })
        .await
        .unwrap();
    db.run_command(doc! {
        "create": "readings",
        "timeseries": { "timeField": "ts", "metaField": "sensor", "granularity": "minutes" },
        "expireAfterSeconds": 86_400,
    })
    .await
    .unwrap();
    let now = bson::DateTime::now();
    db.collection::<Document>("readings")
        .insert_many(vec![
            doc! { "ts": now, "sensor": { "id": "a" }, "value": 1.5 },
            doc! { "ts": now, "sensor": { "id": "b" }, "value": 2.5 },
        ])
        .await
        .unwrap();
    let out = p.caas(&["schema", "pull", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    for s in json(&out)["specs"].as_array().unwrap() {
        assert_eq!(s["differences"], serde_json::json!([]), "{s:#}");
    }
    let labels = std::fs::read_to_string(p.path().join("schemas/analytics/labels.yaml")).unwrap();
    for expected in [
        "collation:",
        "strength: 2",
        "level: moderate",
        "action: warn",
    ] {
        assert!(labels.contains(expected), "{expected}:\n{labels}");
    }
    let lint = p.caas(&["schema", "lint"]);
    assert_eq!(lint.status.code(), Some(0), "{}", show(&lint));
    let diff = p.caas(&["schema", "diff", "--exit-code"]);
    assert_eq!(diff.status.code(), Some(0), "{}", show(&diff));
    std::fs::write(
        p.path().join("schemas/analytics/labels.yaml"),
        labels.replace("strength: 2", "strength: 1"),
    )
    .unwrap();
    let plan = p.caas(&["schema", "plan", "--json"]);
    let text = stdout(&plan);
    assert!(
        text.contains("default collation differs") && text.contains("destructive"),
        "{}",
        show(&plan)
    );

    // Re-pull with --merge: hand-written owner and description stay, live changes are told.
    let edited = labels.replace(
        "collection: labels\n",
        "collection: labels\nowner: tagging-service\ndescription: Labels people put on things.\n",
    );
    std::fs::write(p.path().join("schemas/analytics/labels.yaml"), &edited).unwrap();
    db.run_command(doc! { "createIndexes": "labels", "indexes": [ { "key": { "name": -1 }, "name": "name_-1" } ] })
        .await
        .unwrap();
    let merged = p.caas(&["schema", "pull", "--merge", "--collection", "labels"]);
    assert_eq!(merged.status.code(), Some(0), "{}", show(&merged));
    assert!(
        stdout(&merged).contains("index added on the live side: {\"name\":-1}"),
        "{}",
        show(&merged)
    );
    let after = std::fs::read_to_string(p.path().join("schemas/analytics/labels.yaml")).unwrap();
    assert!(
        after.contains("owner: tagging-service") && after.contains("Labels people put on things."),
        "{after}"
    );
    assert!(
        after.contains("keys: { name: -1 }"),
        "the live index is in the spec now:\n{after}"
    );
}

/// Two pulls registering at once: both succeed, each tenant is registered exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn two_pulls_registering_at_once_register_each_tenant_once() {
    let p = TestProject::new("pull_race", &crate::support::fixture("migrate/schemas"));
    let shared = format!("{}_shared", p.prefix);
    let docs = ["ann", "bea", "cid", "dot"]
        .iter()
        .map(|t| doc! { "tenant_id": *t, "v": 1 })
        .collect();
    insert(&shared, "items", docs).await;
    let runs: Vec<_> = ["a", "b"]
        .iter()
        .map(|out| {
            let (dir, uri, out) = (p.path().to_path_buf(), p.uri.clone(), out.to_string());
            std::thread::spawn(move || {
                run(&dir, &uri, &["schema", "pull", "--register", "--out", &out])
            })
        })
        .collect();
    for r in runs {
        let out = r.join().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    }
    let registry = client()
        .await
        .database(&format!("{}_platform", p.prefix))
        .collection::<Document>("saas_clients");
    for t in ["ann", "bea", "cid", "dot"] {
        let n = registry
            .count_documents(doc! { "tenant_id": t })
            .await
            .unwrap();
        assert_eq!(n, 1, "{t}");
    }
}

/// Two baselines at once: each (target, version) is recorded by exactly one of them (the
/// other finds it already there, or waits for the lease and then does), and both succeed.
#[test]
fn two_baselines_at_once_record_each_version_once() {
    let p = TestProject::new("baseline_race", &root().join("schemas"))
        .with_migrations(&root().join("migrations"));
    for (id, tier) in [("acme", "pro"), ("bolt", "enterprise")] {
        assert!(p
            .caas(&["tenant", "add", id, "--tier", tier])
            .status
            .success());
    }
    let planned = json(&p.caas(&[
        "migrate",
        "baseline",
        "--version",
        "2",
        "--dry-run",
        "--json",
    ]));
    let count = |v: &serde_json::Value| -> usize {
        v["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["baselined"].as_array().unwrap().len())
            .sum()
    };
    let expected = count(&planned);
    assert!(expected >= 4, "{planned:#}");
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let (dir, uri) = (p.path().to_path_buf(), p.uri.clone());
            std::thread::spawn(move || {
                run(
                    &dir,
                    &uri,
                    &[
                        "migrate",
                        "baseline",
                        "--version",
                        "2",
                        "--yes",
                        "--lock-timeout",
                        "10",
                        "--json",
                    ],
                )
            })
        })
        .collect();
    let mut recorded = 0;
    for r in runs {
        let out = r.join().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        recorded += count(&json(&out));
    }
    assert_eq!(
        recorded, expected,
        "every (target, version) recorded exactly once"
    );
}
