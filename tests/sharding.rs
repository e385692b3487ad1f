//! Sharding, live. On the test server (a replica set, not a mongos) shard settings do not
//! apply: plan, diff and apply say so once per run and change nothing else, and
//! `--require-sharded` refuses. With `CAAS_TEST_MONGODB_SHARDED_URI` naming a user's
//! mongos, the cluster path runs too: apply shards and zones, then diff is clean.
//! The planner itself is tested over simulated config documents in the engine
//! (`plan::shard_tests`).

use bson::{doc, Document};
use mongodb::Client;

use crate::support::expect_ok as ok;
use crate::support::{client, root, show, stderr, stdout, TestProject};

fn sharded_catalogue(test: &str, server: Option<String>) -> TestProject {
    let schemas = root().join("schemas");
    let p = match server {
        Some(uri) => TestProject::new_on(test, &schemas, uri),
        None => TestProject::new(test, &schemas),
    };
    crate::support::copy_dir(&root().join("seeds"), &p.path().join("seeds"));
    let posts = p.path().join("schemas/saas/media/posts.yaml");
    let text = std::fs::read_to_string(&posts).unwrap();
    std::fs::write(&posts, format!("{text}shard: {{}}\n")).unwrap();
    let toml = p.path().join("caas.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        format!("{text}[sharding.zones]\neu-central = \"EU\"\nus-east = \"US\"\n"),
    )
    .unwrap();
    p
}

fn notes(out: &std::process::Output) -> usize {
    stderr(out).matches("not a sharded cluster").count()
}

#[tokio::test(flavor = "multi_thread")]
async fn off_a_cluster_shard_settings_are_noted_once_and_require_sharded_refuses() {
    let p = sharded_catalogue("shrs", None);
    let c = client().await;
    let dbs = async |c: &Client| -> Vec<String> {
        c.list_database_names()
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.starts_with(&p.prefix))
            .collect()
    };

    // Refused before anything is written.
    for cmd in [
        &["schema", "apply"][..],
        &["schema", "plan"],
        &["schema", "diff"],
    ] {
        let args: Vec<&str> = cmd.iter().copied().chain(["--require-sharded"]).collect();
        let out = p.caas(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        assert!(
            stderr(&out).contains("not a sharded cluster")
                && stderr(&out).contains("fix: connect to a mongos"),
            "{}",
            show(&out)
        );
    }
    assert_eq!(dbs(&c).await, Vec::<String>::new(), "nothing written");

    ok(&p, &["seed"]);
    let apply = p.caas(&["schema", "apply"]);
    assert_eq!(apply.status.code(), Some(0), "{}", show(&apply));
    assert_eq!(notes(&apply), 1, "once per run: {}", show(&apply));

    // Several targets (the seed registers Pro and Enterprise tenants): still one note.
    let plan = p.caas(&["schema", "plan"]);
    assert_eq!(notes(&plan), 1, "{}", show(&plan));
    assert!(stdout(&plan).contains("no changes"), "{}", show(&plan));
    assert!(
        !stdout(&plan).contains("sharding"),
        "nothing sharding-related is planned: {}",
        show(&plan)
    );
    let diff = p.caas(&["schema", "diff", "--exit-code"]);
    assert_eq!(diff.status.code(), Some(0), "{}", show(&diff));
    assert_eq!(notes(&diff), 1);

    let json: serde_json::Value =
        serde_json::from_str(&ok(&p, &["schema", "diff", "--json"])).unwrap();
    assert_eq!(
        json["sharding"],
        serde_json::json!({ "cluster": false, "collections": 1, "zones": 2 })
    );
    assert_eq!(json["in_sync"], true);
    let names = c
        .database(&format!("{}_shared", p.prefix))
        .list_collection_names()
        .await
        .unwrap();
    assert!(
        names.iter().any(|n| n == "posts"),
        "the collection itself is applied as on any replica set: {names:?}"
    );
}

/// The cluster path, on a user's mongos (`CAAS_TEST_MONGODB_SHARDED_URI`); the test server
/// is a single node, so here this path is verified by the planner's simulation only.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_mongos_apply_shards_and_zones_then_diff_is_clean() {
    let Ok(uri) = std::env::var("CAAS_TEST_MONGODB_SHARDED_URI") else {
        eprintln!("CAAS_TEST_MONGODB_SHARDED_URI is not set: the cluster path is covered by plan::shard_tests");
        return;
    };
    let p = sharded_catalogue("shcl", Some(uri.clone()));
    ok(&p, &["seed"]);
    let out = ok(&p, &["schema", "apply", "--require-sharded"]);
    assert!(out.contains("sharding:"), "{out}");
    let diff = p.caas(&["schema", "diff", "--exit-code", "--require-sharded"]);
    assert_eq!(diff.status.code(), Some(0), "{}", show(&diff));
    let c = Client::with_uri_str(&uri).await.unwrap();
    let ns = format!("{}_shared.posts", p.prefix);
    let coll = c
        .database("config")
        .collection::<Document>("collections")
        .find_one(doc! { "_id": &ns })
        .await
        .unwrap()
        .expect("sharded");
    assert_eq!(
        coll.get_document("key").unwrap(),
        &doc! { "tenant_id": 1, "_id": 1 }
    );
}
