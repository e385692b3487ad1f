//! The compiled validators and indexes are accepted by a real MongoDB-wire server, and
//! each kind of rule rejects a document that breaks it (code 121), in every tier's form.

use bson::{doc, oid::ObjectId, spec::BinarySubtype, Binary, Bson, DateTime, Document};
use caas_core::compile::{compile_collection, compile_target, CompiledCollection};
use caas_core::spec::{load_project, CollectionSpec};
use caas_core::tenancy::{Layout, Target, Tier};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::Database;

use crate::support::{self, client, fixture, TestProject};

fn valid_specs() -> Vec<CollectionSpec> {
    let dir = fixture("specs/valid");
    let report = load_project(&dir, &[]).expect("load fixtures");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    report.specs.into_iter().map(|s| s.spec).collect()
}

fn spec(name: &str) -> CollectionSpec {
    valid_specs()
        .into_iter()
        .find(|s| s.collection == name)
        .expect("fixture spec")
}

/// Create the collection with its compiled options (not its indexes).
async fn create(db: &Database, c: &CompiledCollection) {
    let mut cmd = doc! { "create": &c.placement.collection };
    cmd.extend(c.options.to_document());
    db.run_command(cmd)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", c.placement.collection));
}

async fn create_indexes(db: &Database, c: &CompiledCollection) {
    if c.indexes.is_empty() {
        return;
    }
    let specs: Vec<Document> = c.indexes.iter().map(|i| i.to_create_spec()).collect();
    db.run_command(doc! { "createIndexes": &c.placement.collection, "indexes": specs })
        .await
        .unwrap_or_else(|e| panic!("createIndexes on {}: {e}", c.placement.collection));
}

/// Insert and return the server's error code, if any.
async fn insert(db: &Database, coll: &str, d: Document) -> Option<i32> {
    match db.collection::<Document>(coll).insert_one(d).await {
        Ok(_) => None,
        Err(e) => match *e.kind {
            ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
            ref other => panic!("unexpected error kind: {other:?}"),
        },
    }
}

fn now() -> DateTime {
    DateTime::now()
}

fn at(ms: i64) -> DateTime {
    DateTime::from_millis(1_700_000_000_000 + ms)
}

fn kitchen_doc(tenant: &str) -> Document {
    doc! {
        "tenant_id": tenant,
        "name": "Ada Lovelace",
        "count": 3,
        "big": 5_000_000_000_i64,
        "ratio": 1.0,
        "flag": true,
        "starts_at": at(0),
        "ends_at": at(1000),
        "parent_id": ObjectId::new(),
        "uid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] },
        "kind": "basic",
        "level": 2,
        "nickname": Bson::Null,
        "email": "ada@example.com",
        "address": { "city": "London", "zip": "12345" },
        "tags": ["math", "poetry"],
        "spot": { "type": "Point", "coordinates": [-0.1276, 51.5072] },
        "payload": { "anything": [1, "two"] },
        "meta": { "free": "form" },
        "createdAt": now(),
        "updatedAt": now(),
    }
}

/// A change to the valid document and whether the server must accept it.
type Case = (&'static str, fn(&mut Document), bool);

fn kitchen_cases() -> Vec<Case> {
    vec![
        ("missing required field", |d| drop(d.remove("name")), false),
        ("wrong type", |d| drop(d.insert("name", 5)), false),
        ("pattern", |d| drop(d.insert("name", "Ada 1")), false),
        ("min_length", |d| drop(d.insert("name", "A")), false),
        (
            "max_length",
            |d| drop(d.insert("name", "A".repeat(21))),
            false,
        ),
        ("int below min", |d| drop(d.insert("count", -1)), false),
        ("int above max", |d| drop(d.insert("count", 11)), false),
        ("double for int", |d| drop(d.insert("count", 1.5)), false),
        ("double below min", |d| drop(d.insert("ratio", 0.1)), false),
        ("long below min", |d| drop(d.insert("big", -6_i64)), false),
        ("string enum", |d| drop(d.insert("kind", "gold")), false),
        ("int enum", |d| drop(d.insert("level", 4)), false),
        (
            "null where not nullable",
            |d| drop(d.insert("name", Bson::Null)),
            false,
        ),
        (
            "null in nullable enum",
            |d| drop(d.insert("color", Bson::Null)),
            true,
        ),
        (
            "value in nullable enum",
            |d| drop(d.insert("color", "red")),
            true,
        ),
        (
            "undeclared top-level field",
            |d| drop(d.insert("surprise", 1)),
            false,
        ),
        (
            "nested required field",
            |d| drop(d.insert("address", doc! { "zip": "12345" })),
            false,
        ),
        (
            "nested undeclared field",
            |d| drop(d.insert("address", doc! { "city": "x", "street": "y" })),
            false,
        ),
        (
            "nested pattern",
            |d| drop(d.insert("address", doc! { "city": "x", "zip": "1" })),
            false,
        ),
        (
            "min_items",
            |d| drop(d.insert("tags", Vec::<String>::new())),
            false,
        ),
        (
            "max_items",
            |d| drop(d.insert("tags", vec!["a", "b", "c", "d"])),
            false,
        ),
        (
            "unique_items",
            |d| drop(d.insert("tags", vec!["a", "a"])),
            false,
        ),
        (
            "item max_length",
            |d| drop(d.insert("tags", vec!["abcdefghijk"])),
            false,
        ),
        ("item type", |d| drop(d.insert("tags", vec![1, 2])), false),
        (
            "geo type",
            |d| {
                drop(d.insert(
                    "spot",
                    doc! { "type": "Polygon", "coordinates": [0.0, 0.0] },
                ))
            },
            false,
        ),
        (
            "geo longitude range",
            |d| {
                drop(d.insert(
                    "spot",
                    doc! { "type": "Point", "coordinates": [200.0, 0.0] },
                ))
            },
            false,
        ),
        (
            "geo latitude range",
            |d| drop(d.insert("spot", doc! { "type": "Point", "coordinates": [0.0, 95.0] })),
            false,
        ),
        (
            "geo three coordinates",
            |d| {
                drop(d.insert(
                    "spot",
                    doc! { "type": "Point", "coordinates": [0.0, 0.0, 1.0] },
                ))
            },
            false,
        ),
        ("any_of_required", |d| drop(d.remove("email")), false),
        (
            "any_of_required other member",
            |d| {
                d.remove("email");
                d.insert("phone", "5551234");
            },
            true,
        ),
        (
            "conditional unmet",
            |d| drop(d.insert("kind", "pro")),
            false,
        ),
        (
            "conditional met",
            |d| {
                d.insert("kind", "pro");
                d.insert("extra_pro", "yes");
            },
            true,
        ),
        ("expr", |d| drop(d.insert("ends_at", at(-1))), false),
        (
            "object_id type",
            |d| drop(d.insert("parent_id", "abc")),
            false,
        ),
        ("uuid type", |d| drop(d.insert("uid", "not-binary")), false),
        ("_id type", |d| drop(d.insert("_id", "custom")), false),
        (
            "soft delete date",
            |d| drop(d.insert("deleted_at", "yesterday")),
            false,
        ),
        (
            "soft delete null",
            |d| drop(d.insert("deleted_at", Bson::Null)),
            true,
        ),
        (
            "soft delete actor",
            |d| {
                d.insert("deleted_at", now());
                d.insert("deleted_by", ObjectId::new());
            },
            true,
        ),
        (
            "renamed standard field missing",
            |d| drop(d.remove("createdAt")),
            false,
        ),
        (
            "default standard field name",
            |d| drop(d.insert("created_at", now())),
            false,
        ),
        (
            "switched-off version key",
            |d| drop(d.insert("__v", 0)),
            false,
        ),
        ("any type", |d| drop(d.insert("payload", 42)), true),
        (
            "free-form object",
            |d| drop(d.insert("meta", doc! { "x": { "y": 1 } })),
            true,
        ),
        ("missing tenant", |d| drop(d.remove("tenant_id")), false),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn kitchen_sink_rejects_each_kind_of_rule_in_every_tier() {
    let project = TestProject::new("kitchen", &fixture("specs/valid"));
    let config = project.config();
    let spec = spec("kitchen_sink");
    let client = client().await;
    for (tier, layout) in [
        (Tier::Free, Layout::Shared),
        (Tier::Pro, Layout::CollectionSet),
        (Tier::Enterprise, Layout::Database),
    ] {
        let target = Target::for_tenant("acme", tier, layout);
        let compiled = compile_collection(&spec, target.place(&spec, &config.databases));
        let db = client.database(&compiled.placement.database);
        create(&db, &compiled).await;
        let coll = compiled.placement.collection.clone();
        assert_eq!(
            insert(&db, &coll, kitchen_doc("acme")).await,
            None,
            "{tier}: the valid document is accepted"
        );
        for (label, change, accepted) in kitchen_cases() {
            let mut d = kitchen_doc("acme");
            change(&mut d);
            let got = insert(&db, &coll, d.clone()).await;
            let want = if accepted { None } else { Some(121) };
            assert_eq!(got, want, "{tier}: case `{label}` with {d}");
        }
        // Pro and Enterprise validators pin the tenant; the shared one checks the id's form.
        let other = insert(&db, &coll, kitchen_doc("globex")).await;
        let bad = insert(&db, &coll, kitchen_doc("Not A Tenant")).await;
        match layout {
            Layout::Shared => assert_eq!((other, bad), (None, Some(121)), "{tier}"),
            _ => assert_eq!((other, bad), (Some(121), Some(121)), "{tier}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn state_history_and_time_series_forms_are_accepted() {
    let project = TestProject::new("states", &fixture("specs/valid"));
    let config = project.config();
    let client = client().await;

    let states = spec("states");
    let c = compile_collection(&states, Target::shared().place(&states, &config.databases));
    let db = client.database(&c.placement.database);
    create(&db, &c).await;
    create_indexes(&db, &c).await;
    let ok = doc! { "tenant_id": "acme", "label": "x", "state": "active",
    "stateHistory": [ { "state": "active", "at": now(), "by": Bson::Null, "reason": "created" } ] };
    assert_eq!(insert(&db, "states", ok.clone()).await, None);
    let mut bad_state = ok.clone();
    bad_state.insert("state", "gone");
    assert_eq!(
        insert(&db, "states", bad_state).await,
        Some(121),
        "state outside the enum"
    );
    let mut bad_entry = ok.clone();
    bad_entry.insert("stateHistory", vec![doc! { "state": "active" }]);
    assert_eq!(
        insert(&db, "states", bad_entry).await,
        Some(121),
        "history entry without `at`"
    );
    let mut no_state = ok;
    no_state.remove("state");
    assert_eq!(
        insert(&db, "states", no_state).await,
        Some(121),
        "the current state is required"
    );

    let samples = spec("samples");
    let c = compile_collection(
        &samples,
        Target::platform().place(&samples, &config.databases),
    );
    assert!(
        c.options.validator.is_none(),
        "no validator on a time series"
    );
    let db = client.database(&c.placement.database);
    create(&db, &c).await;
    create_indexes(&db, &c).await;
    let listed = db
        .list_collections()
        .filter(doc! { "name": "samples" })
        .await
        .unwrap();
    use futures::TryStreamExt;
    let listed: Vec<_> = listed.try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        insert(
            &db,
            "samples",
            doc! { "ts": now(), "meta": { "sensor": "a" }, "value": 1.5, "tenant_id": "acme" }
        )
        .await,
        None
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_catalogue_creates_in_every_target_form() {
    let project = TestProject::new("catalogue", &support::root().join("schemas"));
    let config = project.config();
    let report = load_project(&config.specs_dir(), &[]).expect("load catalogue");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let specs: Vec<&CollectionSpec> = report.specs.iter().map(|s| &s.spec).collect();
    assert_eq!(specs.len(), 31, "seed 001 names 31 collections");
    let client = client().await;
    let targets = [
        Target::platform(),
        Target::shared(),
        Target::for_tenant("acme", Tier::Pro, Layout::CollectionSet),
        Target::for_tenant("globex", Tier::Enterprise, Layout::Database),
    ];
    let mut created = 0;
    for target in &targets {
        let compiled = compile_target(&specs, target, &config.databases);
        for c in &compiled.collections {
            let db = client.database(&c.placement.database);
            create(&db, c).await;
            create_indexes(&db, c).await;
            created += 1;
        }
    }
    // 15 platform, billing, analytics and security collections, then the 16 saas
    // collections in each of the three forms (shared, Pro set, Enterprise database).
    assert_eq!(created, 15 + 3 * 16);
    let pro = client.database(&format!("{}_shared", project.prefix));
    let names = pro.list_collection_names().await.unwrap();
    assert!(
        names.contains(&"acme_users".to_string()) && names.contains(&"users".to_string()),
        "{names:?}"
    );
}

/// The sample document `caas docs` shows for each collection is accepted by that
/// collection's compiled validator (and, for time series, by the collection itself), for
/// every spec of the catalogue and of every example project.
#[tokio::test(flavor = "multi_thread")]
async fn every_documented_sample_document_passes_its_validator() {
    use caas_core::compile::sample;
    use caas_core::docs::SAMPLE_TENANT;
    let prefix = support::unique_prefix("samples");
    let c = client().await;
    let db = c.database(&format!("{prefix}_samples"));
    let mut projects = vec![support::root().join("schemas")];
    for e in std::fs::read_dir(support::root().join("examples")).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            projects.push(path.join("schemas"));
        }
    }
    let (mut checked, mut failures) = (0, Vec::new());
    for dir in projects {
        let report = load_project(&dir, &[]).expect("load specs");
        assert!(
            report.findings.is_empty(),
            "{}: {:?}",
            dir.display(),
            report.findings
        );
        for loaded in report.specs {
            let s = loaded.spec;
            let target = if s.is_tenant_scoped() {
                Target::for_tenant(SAMPLE_TENANT, Tier::Pro, Layout::CollectionSet)
            } else {
                Target::platform()
            };
            let mut c = compile_collection(&s, target.place(&s, &Default::default()));
            checked += 1;
            c.placement.collection = format!("c{checked}");
            create(&db, &c).await;
            let sample = sample::for_spec(&s, c.placement.tenant.as_deref());
            if !sample.rules_met {
                failures.push(format!(
                    "{} ({}): an expression rule was not met",
                    s.collection,
                    dir.display()
                ));
            }
            let d = sample.document;
            if let Some(code) = insert(&db, &c.placement.collection, d.clone()).await {
                failures.push(format!(
                    "{} ({}): code {code}: {d}",
                    s.collection,
                    dir.display()
                ));
            }
        }
    }
    support::drop_databases(&support::uri(), &prefix);
    assert!(checked >= 40, "only {checked} specs checked");
    assert!(
        failures.is_empty(),
        "samples refused by their validators:\n{}",
        failures.join("\n")
    );
}
