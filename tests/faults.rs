//! Fault tolerance: runners killed at random points, several runners at once, the server
//! stopped in the middle of an apply, and a corpus of bad inputs that must each get a clear,
//! located message while nothing reaches the server.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bson::{doc, Document};
use futures::TryStreamExt;
use mongodb::Database;

use crate::support::{
    caas_env, client, copy_dir, fixture, root, show, stderr, stdout, uri, PrivateServer,
    TestProject,
};

use crate::support::expect_ok as ok;

/// Every counter and every item's visits, for exactly-once checks.
pub(crate) async fn totals(places: &[(Database, String, String)]) -> (Vec<i64>, Vec<i64>) {
    let (mut counters, mut visits) = (Vec::new(), Vec::new());
    for (db, prefix, tenant) in places {
        let c = db
            .collection::<Document>(&format!("{prefix}counters"))
            .find_one(doc! { "tenant_id": tenant })
            .await
            .unwrap()
            .unwrap();
        counters.push(c.get_i64("value").unwrap());
        let items = crate::support::tenant_items(db, prefix, tenant).await;
        visits.extend(items.iter().map(|d| d.get_i64("visits").unwrap()));
    }
    (counters, visits)
}

/// A small deterministic generator, so a failing run can be replayed.
pub(crate) struct Lcg(pub u64);
impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_points_then_rerun_applies_everything_exactly_once() {
    let p = TestProject::new("fkill", &fixture("migrate/schemas"))
        .with_migrations(&fixture("migrate/migrations"));
    let places = crate::support::migrate_fleet(&p, 30).await;
    ok(&p, &["migrate", "up"]);
    let seed = 0x5eed_u64;
    let mut rng = Lcg(seed);
    let shared = places[0].0.clone();
    for round in 0..3_i64 {
        std::fs::write(
            p.path().join(format!("migrations/V{:04}__round_{round}.yaml", 10 + round)),
            "description: One more increment and visit.\nscope: tenant\nup:\n  - update_many: { collection: counters, update: { $inc: { value: 1 } } }\n  - backfill: { collection: items, batch_size: 5, update: { $inc: { visits: 1 } } }\n",
        )
        .unwrap();
        let kill_after = Duration::from_millis(50 + rng.below(700));
        let mut child = Command::new(env!("CARGO_BIN_EXE_caas"))
            .current_dir(p.path())
            .args([
                "migrate",
                "up",
                "--concurrency",
                "2",
                "--batch-pause-ms",
                "30",
                "--lease-seconds",
                "1",
            ])
            .env("MONGODB_URI", uri())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(kill_after);
        let _ = child.kill();
        child.wait().unwrap();
        // No lease outlives its expiry: whatever the dead runner held ends within the lease.
        let now = caas_core::migrate::lock::server_now(&shared).await.unwrap();
        for db in [&places[0].0, &places[4].0, &places[5].0] {
            let leases: Vec<Document> = db
                .collection::<Document>("caas_locks")
                .find(doc! { "owner": { "$type": "string" } })
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            for l in leases {
                let expires = l.get_datetime("expires_at").unwrap().timestamp_millis();
                assert!(expires <= now.timestamp_millis() + 1_500, "round {round} (seed {seed:#x}, killed after {kill_after:?}): lease beyond its expiry: {l}");
            }
        }
        let out = p.caas(&[
            "migrate",
            "up",
            "--lock-timeout",
            "15",
            "--lease-seconds",
            "1",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "round {round} (seed {seed:#x}, killed after {kill_after:?}): {}",
            show(&out)
        );
        let (counters, visits) = totals(&places).await;
        let want = 2 + round;
        assert!(counters.iter().all(|c| *c == want), "round {round}, killed after {kill_after:?}: counters {counters:?}, want {want} everywhere");
        assert!(
            visits.iter().all(|v| *v == want),
            "round {round}, killed after {kill_after:?}: visits {visits:?}, want {want} everywhere"
        );
        // No ledger entry lost: every target records every version as applied.
        let mut entries: Vec<Document> = Vec::new();
        for db in [&places[0].0, &places[4].0, &places[5].0] {
            entries.extend(
                db.collection::<Document>("caas_migrations")
                    .find(doc! {})
                    .await
                    .unwrap()
                    .try_collect::<Vec<_>>()
                    .await
                    .unwrap(),
            );
        }
        let per_target = (3 + round) as usize;
        assert_eq!(
            entries.len(),
            5 * per_target,
            "round {round}: 5 targets x {per_target} versions"
        );
        assert!(
            entries.iter().all(|e| e.get_str("status") == Ok("applied")),
            "round {round}: {entries:?}"
        );
        for db in [&places[0].0, &places[4].0, &places[5].0] {
            assert_eq!(
                db.collection::<Document>("caas_locks")
                    .count_documents(doc! { "owner": { "$type": "string" } })
                    .await
                    .unwrap(),
                0,
                "round {round}: leases released after the rerun"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn four_runners_at_once_apply_each_migration_once_per_target() {
    let p = TestProject::new("ffour", &fixture("migrate/schemas"))
        .with_migrations(&fixture("migrate/migrations"));
    let places = crate::support::migrate_fleet(&p, 20).await;
    let children: Vec<_> = (0..4)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_caas"))
                .current_dir(p.path())
                .args([
                    "migrate",
                    "up",
                    "--concurrency",
                    if i % 2 == 0 { "1" } else { "3" },
                    "--lock-timeout",
                    "60",
                ])
                .env("MONGODB_URI", uri())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    }
    let (counters, visits) = totals(&places).await;
    assert_eq!(counters, vec![1; 6]);
    assert!(visits.iter().all(|v| *v == 1), "{visits:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_stopped_mid_apply_is_a_clear_error_and_the_rerun_converges() {
    let mut server = PrivateServer::start();
    let p = TestProject::new_on("fstop", &root().join("schemas"), server.uri());
    for i in 0..30 {
        ok(
            &p,
            &["tenant", "add", &format!("ent{i}"), "--tier", "enterprise"],
        );
    }
    let apply = Command::new(env!("CARGO_BIN_EXE_caas"))
        .current_dir(p.path())
        .args([
            "schema",
            "apply",
            "--concurrency",
            "2",
            "--connect-timeout",
            "2",
            "--json",
        ])
        .env("MONGODB_URI", server.uri())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the server once a few tenant databases exist.
    let c = mongodb::Client::with_uri_str(server.uri()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dbs = c.list_database_names().await.unwrap();
        if dbs.iter().filter(|d| d.contains("_ent")).count() >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "apply made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop();
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || apply.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "apply ends by itself once the server is gone"
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let reports: serde_json::Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|_| panic!("{}", show(&out)));
    let errors: Vec<String> = reports["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["error"].as_str().map(str::to_owned))
        .collect();
    assert!(!errors.is_empty(), "{}", show(&out));
    for e in &errors {
        assert!(
            e.contains("connection to the server was lost") || e.contains("no server answered"),
            "a clear error per failed target: {e}"
        );
    }
    assert!(stderr(&out).contains("target(s) failed"), "{}", show(&out));

    server.restart();
    let rerun = ok(&p, &["schema", "apply", "--concurrency", "4"]);
    assert!(
        rerun.contains("0 failed") || rerun.contains("no changes"),
        "{rerun}"
    );
    let diff = ok(&p, &["schema", "diff", "--exit-code"]);
    assert!(diff.contains("in sync: 32 target(s)"), "{diff}");
}

/// One bad input: what to run, in which project, and what the message must say.
struct Case {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    want_code: i32,
    want: Vec<String>,
}

fn case(name: impl Into<String>, args: &[&str], want_code: i32, want: &[&str]) -> Case {
    Case {
        name: name.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        want_code,
        want: want.iter().map(|s| s.to_string()).collect(),
    }
}

async fn run_case(c: &Case, setup: impl FnOnce(&TestProject)) {
    let p = TestProject::new(&c.name, &root().join("schemas"));
    setup(&p);
    let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
    let mut env: Vec<(&str, &str)> = c
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let server = uri();
    if !env.iter().any(|(k, _)| *k == "MONGODB_URI") {
        env.push(("MONGODB_URI", &server));
    }
    let out = caas_env(p.path(), &args, &env);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        out.status.code(),
        Some(c.want_code),
        "{}: {}",
        c.name,
        show(&out)
    );
    for w in &c.want {
        assert!(
            text.contains(w.as_str()),
            "{}: wanted `{w}` in\n{text}",
            c.name
        );
    }
    let written: Vec<String> = client()
        .await
        .list_database_names()
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.starts_with(&p.prefix))
        .collect();
    assert!(
        written.is_empty(),
        "{}: nothing may reach the server, found {written:?}",
        c.name
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corpus_of_bad_inputs_gets_located_messages_and_writes_nothing() {
    let mut count = 0;
    // Specs: every broken fixture, dropped into a copy of the catalogue, stops `schema apply`.
    let broken = fixture("specs/broken");
    for file in caas_core::base::files::discover(&broken).unwrap() {
        let rel = file.strip_prefix(&broken).unwrap().to_path_buf();
        if rel.to_string_lossy().contains("ts_unacknowledged") {
            continue; // a warning, not an error: apply goes on
        }
        let name = rel.file_stem().unwrap().to_string_lossy().into_owned();
        let c = case(
            format!("spec {name}"),
            &["schema", "apply"],
            2,
            &[&format!("{}:", rel.display()), "spec error(s)"],
        );
        run_case(&c, |p| {
            let dest = p.path().join("schemas").join(&rel);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(&file, dest).unwrap();
        })
        .await;
        count += 1;
    }
    // Migration files: each bad file alone stops `migrate up` before anything is written.
    let bad = fixture("migrate/bad");
    let mut files: Vec<_> = std::fs::read_dir(&bad)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("V0006__another") {
            continue; // valid on its own; the duplicate is the pair
        }
        let c = case(
            format!("migration {name}"),
            &["migrate", "up"],
            2,
            &[&name, "nothing ran"],
        );
        run_case(&c, |p| {
            std::fs::remove_dir_all(p.path().join("schemas")).unwrap();
            copy_dir(&fixture("migrate/schemas"), &p.path().join("schemas"));
            std::fs::create_dir_all(p.path().join("migrations")).unwrap();
            std::fs::copy(&file, p.path().join("migrations").join(&name)).unwrap();
            if name.starts_with("V0006__duplicate") {
                std::fs::copy(
                    bad.join("V0006__another_six.yaml"),
                    p.path().join("migrations/V0006__another_six.yaml"),
                )
                .unwrap();
            }
        })
        .await;
        count += 1;
    }
    // Configs: each stops every command with the place in caas.toml.
    let configs: &[(&str, &str, &[&str])] = &[
        (
            "unknown key",
            "[databases]\nplatfrom = \"x\"\n",
            &["caas.toml:2:1", "unknown field `platfrom`"],
        ),
        (
            "unknown section",
            "[datbases]\n",
            &["caas.toml:1:2", "unknown field `datbases`"],
        ),
        (
            "bad layout",
            "[tiers]\npro = \"clustered\"\n",
            &["caas.toml:2:7", "unknown variant `clustered`"],
        ),
        (
            "tenant template",
            "[databases]\ntenant = \"caas_x\"\n",
            &["databases.tenant", "must contain `{tenant_id}`"],
        ),
        (
            "collection template",
            "[databases]\ncollection_set = \"{tenant_id}_x\"\n",
            &["databases.collection_set", "{collection}"],
        ),
        (
            "invalid database name",
            "[databases]\nbilling = \"caas billing\"\n",
            &["databases.billing", "not allow"],
        ),
        (
            "reserved database",
            "[databases]\nplatform = \"admin\"\n",
            &["databases.platform", "reserved"],
        ),
        ("toml syntax", "[databases\n", &["caas.toml:1:"]),
        (
            "negative budget",
            "[connection]\nnamespace_budget = -1\n",
            &["caas.toml:2:", "namespace_budget"],
        ),
        (
            "wrong type",
            "[connection]\nproduction = \"yes\"\n",
            &["caas.toml:2:14", "invalid type"],
        ),
    ];
    for (name, text, want) in configs {
        for cmd in [&["schema", "plan"][..], &["tenant", "list"]] {
            let c = case(format!("config {name} {}", cmd[0]), cmd, 2, want);
            run_case(&c, |p| {
                std::fs::write(p.path().join("caas.toml"), text).unwrap()
            })
            .await;
            count += 1;
        }
    }
    // Tenant ids: refused before any connection.
    for id in [
        "has$dollar",
        "has.dot",
        "has/slash",
        "back\\slash",
        "has space",
        "UPPER",
        "x",
        "9starts-with-digit",
        "_under",
        &"a".repeat(41),
    ] {
        let c = case(
            format!("tenant {id}"),
            &["tenant", "add", id, "--tier", "free"],
            2,
            &["a tenant id is 2 to 40 characters"],
        );
        run_case(&c, |_| {}).await;
        count += 1;
    }
    for db in ["platform", "shared"] {
        let c = case(
            format!("enterprise tenant {db}"),
            &["tenant", "add", db, "--tier", "enterprise"],
            2,
            &[
                &format!("which is the {db} database"),
                "choose another tenant id",
            ],
        );
        run_case(&c, |_| {}).await;
        count += 1;
    }
    let c = case(
        "pro tenant caas",
        &["tenant", "add", "caas", "--tier", "pro"],
        2,
        &["a name caas keeps for itself", "choose another tenant id"],
    );
    run_case(&c, |_| {}).await;
    count += 1;
    let c = case(
        "tenant filter",
        &["schema", "plan", "--tenant", "Bad$"],
        2,
        &["--tenant", "contains the uppercase letter `B`"],
    );
    run_case(&c, |_| {}).await;
    count += 1;
    // Connection strings: one clear error each, passwords never shown.
    let uris: &[(&str, &[&str])] = &[
        (
            "http://user:pw-1@127.0.0.1:1/",
            &["invalid connection string", "****"],
        ),
        ("mongodb://", &["invalid connection string"]),
        (
            "mongodb://user:pw-2@127.0.0.1:notaport/",
            &["invalid connection string", "****"],
        ),
        (
            "mongodb://user:pw-3@127.0.0.1:1/?directConnection=true",
            &[
                "cannot reach MongoDB at mongodb://user:****@127.0.0.1:1/",
                "Connection refused",
            ],
        ),
        (
            "mongodb://127.0.0.1:27017/?unknownOption=zz&serverSelectionTimeoutMS=abc",
            &["invalid connection string"],
        ),
    ];
    for (i, (u, want)) in uris.iter().enumerate() {
        let mut c = case(
            format!("uri {i}"),
            &["--connect-timeout", "1", "schema", "diff"],
            2,
            want,
        );
        c.env.push(("MONGODB_URI".into(), u.to_string()));
        let secret = u
            .split_once(':')
            .and_then(|(_, r)| r.split_once('@'))
            .map(|(cred, _)| cred.rsplit(':').next().unwrap_or("").to_owned());
        run_case(&c, |_| {}).await;
        if let Some(secret) = secret.filter(|s| s.starts_with("pw-")) {
            let p = TestProject::new("urisecret", &root().join("schemas"));
            let out = caas_env(
                p.path(),
                &["--connect-timeout", "1", "schema", "diff"],
                &[("MONGODB_URI", u)],
            );
            assert!(
                !format!("{}{}", stdout(&out), stderr(&out)).contains(&secret),
                "{u}: password shown"
            );
        }
        count += 1;
    }
    // Seed files.
    let seeds: &[(&str, &str, &[&str])] = &[
        (
            "bad tier",
            "tenants:\n  - { id: demo-a, tier: platinum, name: A }\n",
            &["seeds/demo.yaml:2:", "unknown tier `platinum`"],
        ),
        (
            "bad tenant id",
            "tenants:\n  - { id: Demo, tier: free, name: A }\n",
            &["seeds/demo.yaml:2:", "uppercase letter `D`"],
        ),
        (
            "unknown key",
            "tenants: []\nplatfrom: {}\n",
            &["seeds/demo.yaml", "unknown field `platfrom`"],
        ),
        (
            "unknown generator",
            "generator: lorem\ntenants: []\n",
            &["seeds/demo.yaml:1:", "unknown generator"],
        ),
    ];
    for (name, text, want) in seeds {
        let c = case(format!("seed {name}"), &["seed"], 2, want);
        run_case(&c, |p| {
            std::fs::create_dir_all(p.path().join("seeds")).unwrap();
            std::fs::write(p.path().join("seeds/demo.yaml"), text).unwrap();
        })
        .await;
        count += 1;
    }
    assert!(count >= 60, "{count} bad inputs in the corpus");
}
