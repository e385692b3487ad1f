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

fn region_of(
    c: &Client,
    p: &TestProject,
    tenant: &str,
) -> impl std::future::Future<Output = Option<String>> {
    let reg = c
        .database(&format!("{}_platform", p.prefix))
        .collection::<Document>("saas_clients");
    let tenant = tenant.to_owned();
    async move {
        reg.find_one(doc! { "tenant_id": &tenant })
            .await
            .unwrap()
            .and_then(|d| d.get_str("region").ok().map(str::to_owned))
    }
}

/// A tenant's region off a cluster: `tenant add --region` records it, `tenant move
/// --region` changes it (alone, or with a move), each run says once that zones do not
/// apply, `--require-sharded` refuses with nothing written, and bad regions are refused
/// with the place and the fix.
#[tokio::test(flavor = "multi_thread")]
async fn off_a_cluster_a_region_is_recorded_and_require_sharded_refuses_moves() {
    let p = sharded_catalogue("shrg", None);
    let c = client().await;
    ok(&p, &["schema", "apply"]);
    ok(
        &p,
        &[
            "tenant",
            "add",
            "acme",
            "--tier",
            "free",
            "--region",
            "eu-central",
        ],
    );
    let list: serde_json::Value =
        serde_json::from_str(&ok(&p, &["tenant", "list", "--json"])).unwrap();
    assert_eq!(list["tenants"][0]["region"], "eu-central", "{list}");

    // Refused before anything is written: a name that is no region, one the registry's
    // spec does not allow, and a replica set under --require-sharded.
    let bad = p.caas(&[
        "tenant", "add", "beta", "--tier", "free", "--region", "EU West",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
    assert!(stderr(&bad).contains("not a region name"), "{}", show(&bad));
    let out = p.caas(&["tenant", "move", "acme", "--region", "mars"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("saas_clients") && stderr(&out).contains("fix:"),
        "{}",
        show(&out)
    );
    let out = p.caas(&[
        "tenant",
        "move",
        "acme",
        "--region",
        "us-east",
        "--require-sharded",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("nothing was written"),
        "{}",
        show(&out)
    );
    assert_eq!(
        region_of(&c, &p, "acme").await.as_deref(),
        Some("eu-central")
    );

    // A region change where the tenant is: the registry, one note.
    let out = p.caas(&["tenant", "move", "acme", "--region", "us-east"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        stdout(&out).matches("not a sharded cluster").count(),
        1,
        "{}",
        show(&out)
    );
    assert_eq!(region_of(&c, &p, "acme").await.as_deref(), Some("us-east"));
    let again = ok(&p, &["tenant", "move", "acme", "--region", "us-east"]);
    assert!(again.contains("already in region"), "{again}");

    // With a move: the region changes at the flip, with the tier.
    let out = p.caas(&[
        "tenant",
        "move",
        "acme",
        "--to",
        "pro",
        "--region",
        "eu-central",
        "--finish",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        stderr(&out).matches("not a sharded cluster").count(),
        1,
        "once per run: {}",
        show(&out)
    );
    let entry = c
        .database(&format!("{}_platform", p.prefix))
        .collection::<Document>("saas_clients")
        .find_one(doc! { "tenant_id": "acme" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.get_str("tier"), Ok("pro"));
    assert_eq!(entry.get_str("region"), Ok("eu-central"));

    // While a move is open, a region change waits for it; a move's region is fixed when it
    // begins.
    ok(
        &p,
        &[
            "tenant",
            "move",
            "acme",
            "--to",
            "enterprise",
            "--stop-after",
            "copy",
        ],
    );
    let out = p.caas(&["tenant", "move", "acme", "--region", "us-east"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("is being moved"), "{}", show(&out));
    let out = p.caas(&[
        "tenant",
        "move",
        "acme",
        "--to",
        "enterprise",
        "--region",
        "us-east",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("already being moved"),
        "{}",
        show(&out)
    );
    ok(&p, &["tenant", "move", "acme", "--abort"]);
    assert_eq!(
        region_of(&c, &p, "acme").await.as_deref(),
        Some("eu-central")
    );
    let diff = p.caas(&["schema", "diff", "--exit-code"]);
    assert_eq!(diff.status.code(), Some(0), "{}", show(&diff));

    // An export carries the region; an import places the tenant there again (or in
    // `--region`); a manifest's region is input, checked like the flag.
    let dir = p.path().join("acme-export");
    let d = dir.to_str().unwrap();
    ok(&p, &["tenant", "export", "acme", "--out", d]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["region"], "eu-central");
    ok(&p, &["tenant", "import", d, "--as", "acme-copy"]);
    assert_eq!(
        region_of(&c, &p, "acme-copy").await.as_deref(),
        Some("eu-central")
    );
    ok(
        &p,
        &[
            "tenant", "import", d, "--as", "acme-us", "--region", "us-east",
        ],
    );
    assert_eq!(
        region_of(&c, &p, "acme-us").await.as_deref(),
        Some("us-east")
    );
    let mut hostile = manifest.clone();
    hostile["region"] = serde_json::json!("../../admin");
    std::fs::write(dir.join("manifest.json"), hostile.to_string()).unwrap();
    let out = p.caas(&["tenant", "import", d, "--as", "acme-bad"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("not a region name") && stderr(&out).contains("manifest.json"),
        "{}",
        show(&out)
    );
    let reg = c
        .database(&format!("{}_platform", p.prefix))
        .collection::<Document>("saas_clients");
    let bad = reg
        .count_documents(doc! { "tenant_id": "acme-bad" })
        .await
        .unwrap();
    assert_eq!(bad, 0, "nothing written");
}

/// On a user's mongos (`CAAS_TEST_MONGODB_SHARDED_URI`) with shards in zones `EU` and `US`
/// (`sh.addShardToZone`): a shared tenant's range follows its region, is released when the
/// tenant leaves the shared tier, and an Enterprise database is placed in the zone of the
/// move's region, then moved by a region change. Here (no mongos) `fleet::sharding`'s
/// tests cover the steps over simulated config documents.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_mongos_moves_place_tenants_in_their_regions_zone() {
    let Ok(uri) = std::env::var("CAAS_TEST_MONGODB_SHARDED_URI") else {
        eprintln!("CAAS_TEST_MONGODB_SHARDED_URI is not set: placement by region is covered by fleet::sharding's tests");
        return;
    };
    let p = sharded_catalogue("shmv", Some(uri.clone()));
    ok(&p, &["schema", "apply", "--require-sharded"]);
    ok(
        &p,
        &[
            "tenant",
            "add",
            "acme",
            "--tier",
            "free",
            "--region",
            "eu-central",
        ],
    );
    ok(&p, &["schema", "apply", "--require-sharded"]);
    let c = Client::with_uri_str(&uri).await.unwrap();
    let posts = format!("{}_shared.posts", p.prefix);
    let tags = c.database("config").collection::<Document>("tags");
    let zone_of_acme = async || {
        tags.find_one(doc! { "ns": &posts, "min.tenant_id": "acme" })
            .await
            .unwrap()
            .and_then(|d| d.get_str("tag").ok().map(str::to_owned))
    };
    assert_eq!(zone_of_acme().await.as_deref(), Some("EU"));
    ok(
        &p,
        &[
            "tenant",
            "move",
            "acme",
            "--region",
            "us-east",
            "--require-sharded",
        ],
    );
    assert_eq!(zone_of_acme().await.as_deref(), Some("US"));

    let db = format!("{}_acme", p.prefix);
    let placed_in = async |zone: &str| {
        let state = caas_core::inspect::cluster::read_cluster(&c).await.unwrap();
        let names = c.database(&db).list_collection_names().await.unwrap();
        let specs: Vec<&String> = names
            .iter()
            .filter(|n| !n.starts_with("caas_") && !n.starts_with("system."))
            .collect();
        assert!(!specs.is_empty());
        for n in specs {
            let shard = state.shard_of(&db, &format!("{db}.{n}")).map(str::to_owned);
            assert!(
                shard
                    .as_deref()
                    .is_some_and(|s| state.shards_in(zone).contains(&s)),
                "{db}.{n} is on {shard:?}, not in zone {zone}"
            );
        }
    };
    ok(
        &p,
        &[
            "tenant",
            "move",
            "acme",
            "--to",
            "enterprise",
            "--region",
            "eu-central",
            "--finish",
            "--require-sharded",
        ],
    );
    assert_eq!(
        zone_of_acme().await,
        None,
        "released when it left the shared tier"
    );
    placed_in("EU").await;
    ok(
        &p,
        &[
            "tenant",
            "move",
            "acme",
            "--region",
            "us-east",
            "--require-sharded",
        ],
    );
    placed_in("US").await;
    let diff = p.caas(&["schema", "diff", "--exit-code", "--require-sharded"]);
    assert_eq!(diff.status.code(), Some(0), "{}", show(&diff));
}
