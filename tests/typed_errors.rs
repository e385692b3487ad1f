//! The engine's public boundary returns typed errors: a caller (or a test) tells a held
//! lock from a server refusal, refused input or a lost connection by the variant, never by
//! matching message text. Each case is produced for real against the test server.

use std::time::Duration;

use bson::doc;
use caas_core::base::error::LockError;
use caas_core::migrate::runner::{self, Fleetwide, UpOptions};
use caas_core::Error;

use crate::support::expect_ok as ok;
use crate::support::{client, fixture, TestProject};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_is_a_lock_error_not_a_server_error() {
    let p = TestProject::new("terr_lock", &fixture("migrate/schemas"));
    let c = client().await;
    let db = c.database(&format!("{}_shared", p.prefix));
    let wait = Duration::from_millis(200);
    let (held, _session) = runner::lease_target(&c, &db, "shared", wait, Duration::from_secs(30))
        .await
        .expect("the first runner takes the lease");
    let second = runner::lease_target(&c, &db, "shared", wait, Duration::from_secs(30)).await;
    match second {
        Err(Error::Lock(LockError::Held { id, holder, .. })) => {
            assert_eq!(id, "shared");
            assert!(!holder.is_empty());
        }
        Err(other) => panic!("expected a held lock, got {other:?}"),
        Ok(_) => panic!("two runners held one target"),
    }
    held.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_write_is_a_server_error_with_its_code_and_namespace() {
    let p = TestProject::new("terr_server", &fixture("migrate/schemas"));
    let c = client().await;
    let db = c.database(&format!("{}_platform", p.prefix));
    db.create_collection("strict")
        .validator(doc! { "$jsonSchema": { "required": ["name"] } })
        .await
        .unwrap();
    let e = db
        .collection::<bson::Document>("strict")
        .insert_one(doc! { "other": 1 })
        .await
        .unwrap_err();
    let ns = format!("{}.strict", db.name());
    match caas_core::base::driver::explain_write_error(&e, &ns) {
        Error::Server {
            code,
            namespace,
            message,
        } => {
            assert_eq!(code, Some(121));
            assert_eq!(namespace, ns);
            assert!(message.contains("`name` is required"), "{message}");
        }
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_is_a_connection_error() {
    // Port 1 on localhost: nothing listens, the connection is refused at once.
    let e = caas_core::connect::connect(
        "mongodb://127.0.0.1:1/?directConnection=true",
        Duration::from_secs(1),
    )
    .await
    .err()
    .expect("nothing listens on port 1");
    assert!(matches!(e, Error::Connection(_)), "{e:?}");
}

#[test]
fn broken_specs_are_refused_input_carrying_their_findings() {
    let p = TestProject::new("terr_refused", &fixture("specs/broken"));
    match caas_core::project::load(&p.config()) {
        Err(e @ Error::Refused { .. }) => {
            assert!(!e.findings().is_empty());
            assert!(e
                .findings()
                .iter()
                .all(|f| f.line > 0 && !f.code.is_empty()));
            assert!(e.to_string().contains("run `caas schema lint`"), "{e}");
        }
        Err(other) => panic!("expected refused input, got {other:?}"),
        Ok(specs) => panic!("{} broken specs loaded", specs.len()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_applied_migration_is_named_by_version_and_target() {
    let p = TestProject::new("terr_edit", &fixture("migrate/schemas"))
        .with_migrations(&fixture("migrate/migrations"));
    ok(&p, &["tenant", "add", "pa", "--tier", "pro"]);
    ok(&p, &["schema", "apply"]);
    ok(&p, &["migrate", "up"]);
    let file = p.path().join("migrations/V0001__count_once.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("value: 1", "value: 2")).unwrap();

    let config = p.config();
    let loaded = caas_core::project::load(&config).unwrap();
    let specs: Vec<_> = loaded.iter().map(|l| &l.spec).collect();
    let (migrations, _) = caas_core::migrate::project::load_project(&config, &specs).unwrap();
    let conn = caas_core::connect::connect(&p.uri, Duration::from_secs(5))
        .await
        .unwrap();
    let fleet = caas_core::fleet::resolve(&conn, &config, &Default::default())
        .await
        .unwrap();
    let f = Fleetwide {
        client: &conn.client,
        config: &config,
        specs: &specs,
        tenants: &fleet.tenants,
        migrations: &migrations,
    };
    let opts = UpOptions {
        to: None,
        dry_run: false,
        concurrency: 2,
        on_error: runner::OnError::Continue,
        max_failures: None,
        lock_wait: Duration::from_secs(5),
        lease: Duration::from_secs(30),
        batch_pause: Duration::ZERO,
    };
    match runner::up(&f, &fleet.targets, &opts, &|_| {}).await {
        Err(Error::EditedMigrations(edited)) => {
            let mut seen: Vec<(u32, String)> = edited
                .iter()
                .map(|e| (e.version, e.target.clone()))
                .collect();
            seen.sort();
            assert!(seen.contains(&(1, "pro:pa".to_string())), "{seen:?}");
            assert!(edited.iter().all(|e| e.name == "count_once"));
        }
        Err(other) => panic!("expected edited migrations, got {other:?}"),
        Ok(runs) => panic!("ran over an edited migration: {runs:?}"),
    }
}
