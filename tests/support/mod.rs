//! Test support: a real MongoDB-wire server (SecantusDB, started once per test binary, or
//! the server named by `CAAS_TEST_MONGODB_URI`), per-test database names, and the caas
//! binary run as a user would.

#![allow(dead_code)]

pub mod server;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

use bson::{doc, Document};

pub use server::{auth_uri, client, uri, PrivateServer};

/// The project root (where Cargo.toml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// A unique, short prefix for one test's database names, so tests run in parallel and
/// against a shared real mongod without colliding.
pub fn unique_prefix(test: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let short: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    format!("t{}{}_{short}", std::process::id() % 100_000, n)
}

/// Run the caas binary with arguments in a directory.
pub fn caas(dir: &Path, args: &[&str]) -> Output {
    caas_env(dir, args, &[])
}

pub fn caas_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_caas"));
    cmd.current_dir(dir).args(args).env_remove("MONGODB_URI");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run caas")
}

/// stdout, stderr and status of a run, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A temporary caas project: a folder with caas.toml (databases renamed with a unique
/// prefix) and the given spec files. Its databases are dropped when it goes away.
pub struct TestProject {
    pub dir: tempfile::TempDir,
    pub prefix: String,
    /// The server this project's commands and clean-up use.
    pub uri: String,
}

impl TestProject {
    /// A project whose specs are copied from `specs_from` (a folder of domain folders).
    pub fn new(test: &str, specs_from: &Path) -> TestProject {
        Self::new_on(test, specs_from, uri())
    }

    /// A project on another server (e.g. the auth-enabled one). Its role prefix is unique too.
    pub fn new_on(test: &str, specs_from: &Path, server: String) -> TestProject {
        let dir = tempfile::tempdir().expect("tempdir");
        let prefix = unique_prefix(test);
        copy_dir(specs_from, &dir.path().join("schemas"));
        let toml = format!(
            "[databases]\nplatform = \"{p}_platform\"\nbilling = \"{p}_billing\"\nanalytics = \"{p}_analytics\"\nsecurity = \"{p}_platform\"\nshared = \"{p}_shared\"\ntenant = \"{p}_{{tenant_id}}\"\n[roles]\nprefix = \"{p}_svc_\"\n",
            p = prefix
        );
        std::fs::write(dir.path().join("caas.toml"), toml).expect("write caas.toml");
        TestProject {
            dir,
            prefix,
            uri: server,
        }
    }

    /// Copy migration files into the project's `migrations/`.
    pub fn with_migrations(self, from: &Path) -> TestProject {
        copy_dir(from, &self.path().join("migrations"));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> caas_core::config::Config {
        caas_core::config::Config::load(self.path(), None).expect("config")
    }

    pub fn caas(&self, args: &[&str]) -> Output {
        caas_env(self.path(), args, &[("MONGODB_URI", &self.uri)])
    }
}

impl Drop for TestProject {
    fn drop(&mut self) {
        drop_databases(&self.uri, &self.prefix);
    }
}

/// Drop the users or roles (`usersInfo`/`dropUser`, `rolesInfo`/`dropRole`) whose name
/// starts with the prefix.
async fn drop_prefixed(
    admin: &mongodb::Database,
    prefix: &str,
    list: &str,
    field: &str,
    key: &str,
    drop: &str,
) {
    let Ok(reply) = admin.run_command(bson::doc! { list: 1 }).await else {
        return;
    };
    let names: Vec<String> = reply
        .get_array(field)
        .map(|a| {
            a.iter()
                .filter_map(|b| b.as_document()?.get_str(key).ok().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for name in names.into_iter().filter(|n| n.starts_with(prefix)) {
        let _ = admin.run_command(bson::doc! { drop: name }).await;
    }
}

/// Drop every database, role and user whose name starts with the prefix.
pub fn drop_databases(server: &str, prefix: &str) {
    let prefix = prefix.to_owned();
    let server = server.to_owned();
    let run = async move {
        let c = mongodb::Client::with_uri_str(&server)
            .await
            .expect("client");
        let admin = c.database("admin");
        for (list, field, key, drop) in [
            ("usersInfo", "users", "user", "dropUser"),
            ("rolesInfo", "roles", "role", "dropRole"),
        ] {
            drop_prefixed(&admin, &prefix, list, field, key, drop).await;
        }
        if let Ok(names) = c.list_database_names().await {
            for n in names.into_iter().filter(|n| n.starts_with(&prefix)) {
                let _ = c.database(&n).drop().await;
            }
        }
    };
    // Drop may run inside or outside a runtime; use a fresh one on its own thread.
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(run)
    })
    .join()
    .ok();
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).expect("copy");
        }
    }
}

/// Run caas in the project and fail the test with its output unless it exits 0.
pub fn expect_ok(p: &TestProject, args: &[&str]) -> String {
    let out = p.caas(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "caas {}\n{}",
        args.join(" "),
        show(&out)
    );
    stdout(&out)
}

/// Every document of a collection matching `filter`.
pub async fn find_all(db: &mongodb::Database, coll: &str, filter: Document) -> Vec<Document> {
    use futures::TryStreamExt;
    db.collection::<Document>(coll)
        .find(filter)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// One tenant's documents in the fixture migrations' `items` collection of a place that
/// [`migrate_fleet`] returns.
pub async fn tenant_items(db: &mongodb::Database, prefix: &str, tenant: &str) -> Vec<Document> {
    use futures::TryStreamExt;
    db.collection::<Document>(&format!("{prefix}items"))
        .find(doc! { "tenant_id": tenant })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// Tenants in every tier, the fixture migrations' collections filled in every target.
pub async fn migrate_fleet(
    p: &TestProject,
    items: usize,
) -> Vec<(mongodb::Database, String, String)> {
    for (id, tier) in [
        ("fr", "free"),
        ("st", "starter"),
        ("pa", "pro"),
        ("pb", "pro"),
        ("ea", "enterprise"),
        ("eb", "enterprise"),
    ] {
        expect_ok(p, &["tenant", "add", id, "--tier", tier]);
    }
    expect_ok(p, &["schema", "apply"]);
    let c = mongodb::Client::with_uri_str(&p.uri).await.unwrap();
    let shared = c.database(&format!("{}_shared", p.prefix));
    let places = vec![
        (shared.clone(), String::new(), "fr".to_string()),
        (shared.clone(), String::new(), "st".to_string()),
        (shared.clone(), "pa_".into(), "pa".into()),
        (shared.clone(), "pb_".into(), "pb".into()),
        (
            c.database(&format!("{}_ea", p.prefix)),
            String::new(),
            "ea".into(),
        ),
        (
            c.database(&format!("{}_eb", p.prefix)),
            String::new(),
            "eb".into(),
        ),
    ];
    for (db, prefix, tenant) in &places {
        db.collection::<Document>(&format!("{prefix}counters"))
            .insert_one(doc! { "tenant_id": tenant, "name": "runs", "value": 0_i64 })
            .await
            .unwrap();
        let docs: Vec<Document> = (0..items)
            .map(|i| doc! { "tenant_id": tenant, "code": format!("{tenant}-{i}"), "visits": 0_i64 })
            .collect();
        if !docs.is_empty() {
            db.collection::<Document>(&format!("{prefix}items"))
                .insert_many(docs)
                .await
                .unwrap();
        }
    }
    places
}

/// Whether some line of a table holds these cells, in this order (for tables that may
/// grow columns or borders: the test names what it needs, not the layout).
pub fn has_row(text: &str, cells: &[&str]) -> bool {
    text.lines().any(|line| {
        let mut rest = line;
        cells.iter().all(|c| match rest.find(c) {
            Some(i) => {
                rest = &rest[i + c.len()..];
                true
            }
            None => false,
        })
    })
}

/// A command cut off where a test needs it: mongod's `failCommand` fail point, armed for
/// the connections named `app` only (`appName`, see [`named`]), so the test's own client
/// and other tests go on. `data` gives `failCommands` and the fault (`closeConnection`,
/// `errorCode`). `None` when the server has no test commands (a mongod started without
/// `--setParameter enableTestCommands=1`); the suite's SecantusDB has them.
///
/// The server has one `failCommand` fail point: arming it replaces whatever another test
/// armed, and turning it off turns off theirs. So the returned guard holds it for this
/// test until [`disarm_fail_command`]; tests that cut wait for one another.
pub async fn arm_fail_command(app: &str, mode: Document, mut data: Document) -> Option<FailPoint> {
    static HELD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let held = HELD.lock().await;
    data.insert("appName", app);
    let arm = doc! { "configureFailPoint": "failCommand", "mode": mode, "data": data };
    match client().await.database("admin").run_command(arm).await {
        Ok(_) => Some(FailPoint(held)),
        Err(e) => {
            eprintln!("skipped: the server refuses configureFailPoint ({e})");
            None
        }
    }
}

/// The server's `failCommand` fail point, armed by this test (see [`arm_fail_command`]).
pub struct FailPoint(#[allow(dead_code)] tokio::sync::MutexGuard<'static, ()>);

/// Whether the server takes `configureFailPoint` (says "skipped" when not).
pub async fn has_test_commands() -> bool {
    let data = doc! { "failCommands": ["ping"], "errorCode": 8 };
    match arm_fail_command("probe", doc! { "times": 1 }, data).await {
        Some(f) => {
            disarm_fail_command(f).await;
            true
        }
        None => false,
    }
}

pub async fn disarm_fail_command(held: FailPoint) {
    let off = doc! { "configureFailPoint": "failCommand", "mode": "off" };
    client()
        .await
        .database("admin")
        .run_command(off)
        .await
        .unwrap();
    drop(held);
}

/// `uri` with the connection name `app` (what [`arm_fail_command`] matches).
pub fn named(uri: &str, app: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}appName={app}")
}

/// Run `args` with a fault armed for its first attempt (`cut`: the command name, how many
/// of them pass first, a dropped connection rather than server error 8), then again
/// without until it succeeds or `settles` says the outcome is reached another way:
/// `(whether the fault stopped the first attempt, every output)`.
pub async fn cut_then_rerun(
    p: &TestProject,
    args: &[&str],
    cut: (&str, i32, bool),
    settles: impl Fn(&Output) -> bool,
) -> (bool, Vec<String>) {
    let (command, skip, drop_it) = cut;
    let app = format!("{}-cut", p.prefix);
    // A dropped connection twice (the driver retries a retryable write once), or a server
    // error no one retries (8, UnknownError).
    let (data, times) = if drop_it {
        (
            doc! { "failCommands": [command], "closeConnection": true },
            2,
        )
    } else {
        (doc! { "failCommands": [command], "errorCode": 8 }, 1)
    };
    let mode = doc! { "skip": skip, "times": times };
    let held = arm_fail_command(&app, mode, data)
        .await
        .expect("the server has no test commands");
    let faulty = named(&p.uri, &app);
    let first = caas_env(p.path(), args, &[("MONGODB_URI", &faulty)]);
    disarm_fail_command(held).await;
    let mut runs = vec![show(&first)];
    let stopped = !first.status.success();
    let mut done = !stopped;
    for _ in 0..3 {
        if done {
            break;
        }
        let again = p.caas(args);
        runs.push(show(&again));
        done = again.status.success() || settles(&again);
    }
    assert!(done, "{args:?} cut at {command} #{}: {runs:#?}", skip + 1);
    (stopped, runs)
}
