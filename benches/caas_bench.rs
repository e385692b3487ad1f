//! Benchmarks: caas against the raw driver doing the same work, measured in one run as
//! ratios. Not timed tests: nothing here asserts a duration. Run with `scripts/bench.sh`.
//!
//! `seed [--scale N] [--tenants T]`: `caas seed`'s insert path (unordered batches,
//! concurrency 4) against raw `insert_many` of the same documents at the same concurrency.

#[path = "parts/move_bench.rs"]
mod move_bench;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bson::Document;
use futures::{StreamExt, TryStreamExt};

use caas_core::config::Config;
use caas_core::seed::fixtures::SeedFile;
use caas_core::seed::{self, SeedOptions};

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn project_config(prefix: &str) -> Config {
    let toml = format!(
        "[databases]\nplatform = \"{prefix}_platform\"\nbilling = \"{prefix}_billing\"\nanalytics = \"{prefix}_analytics\"\nsecurity = \"{prefix}_platform\"\nshared = \"{prefix}_shared\"\ntenant = \"{prefix}_{{tenant_id}}\"\n"
    );
    let mut c = Config::parse(&toml, std::path::Path::new("bench.toml")).expect("config");
    c.root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    c
}

async fn seed_bench(uri: &str, args: &[String]) {
    let scale = arg(args, "--scale", 10) as u32;
    let concurrency = arg(args, "--concurrency", 4) as usize;
    let conn = caas_core::connect::connect(uri, Duration::from_secs(10))
        .await
        .expect("connect");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let report = caas_core::spec::load_project(&root.join("schemas"), &[]).expect("specs");
    let specs: Vec<&caas_core::spec::CollectionSpec> =
        report.specs.iter().map(|s| &s.spec).collect();
    let file = SeedFile::load(&root).expect("seed file");
    let tenants: Vec<_> = file.tenants.iter().collect();
    let opts = SeedOptions {
        seed_value: 42,
        scale,
        tenants: vec![],
        tiers: vec![],
        concurrency,
    };

    // The same documents for both runs (password hashing excluded: it is not insert work).
    let make = |prefix: &str| {
        seed::batches(
            &project_config(prefix),
            &specs,
            &file,
            &tenants,
            &opts,
            &BTreeMap::new(),
            false,
        )
        .expect("batches")
    };
    let docs: usize = make("b").iter().map(|b| b.docs.len()).sum();

    let mut results = Vec::new();
    let rounds = arg(args, "--rounds", 7);
    for round in 0..rounds {
        // Alternate which side runs first, so neither gains from a warmer server.
        let caas_first = round % 2 == 1;
        let mut ours = Duration::ZERO;
        if caas_first {
            ours = caas_run(&conn, &make(&format!("bcaas{round}")), concurrency, docs).await;
        }
        // raw: insert_many of each collection's documents, ordered=false, same concurrency.
        let raw_batches = make(&format!("braw{round}"));
        let start = Instant::now();
        futures::stream::iter(raw_batches.iter())
            .map(|b| {
                let coll = conn
                    .client
                    .database(&b.placement.database)
                    .collection::<Document>(&b.placement.collection);
                async move {
                    for chunk in b.docs.chunks(1_000) {
                        coll.insert_many(chunk)
                            .ordered(false)
                            .await
                            .expect("raw insert");
                    }
                }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
        let raw = start.elapsed();
        if !caas_first {
            ours = caas_run(&conn, &make(&format!("bcaas{round}")), concurrency, docs).await;
        }
        results.push((raw, ours));
        for p in [format!("braw{round}"), format!("bcaas{round}")] {
            for db in conn
                .client
                .list_database_names()
                .await
                .unwrap()
                .into_iter()
                .filter(|d| d.starts_with(&p))
            {
                conn.client.database(&db).drop().await.unwrap();
            }
        }
    }
    println!("seed throughput: {docs} documents, scale {scale}, {} demo tenants, concurrency {concurrency}", tenants.len());
    println!("| round | raw insert_many | caas seed insert | raw docs/s | caas docs/s | caas / raw throughput |");
    println!("|---|---|---|---|---|---|");
    for (i, (raw, ours)) in results.iter().enumerate() {
        let (r, o) = (
            docs as f64 / raw.as_secs_f64(),
            docs as f64 / ours.as_secs_f64(),
        );
        println!(
            "| {}{} | {:.2} s | {:.2} s | {r:.0} | {o:.0} | {:.2} |",
            i + 1,
            if i % 2 == 1 { " (caas first)" } else { "" },
            raw.as_secs_f64(),
            ours.as_secs_f64(),
            o / r
        );
    }
    let raw_total: f64 = results.iter().map(|r| r.0.as_secs_f64()).sum();
    let ours_total: f64 = results.iter().map(|r| r.1.as_secs_f64()).sum();
    let mut ratios: Vec<f64> = results
        .iter()
        .map(|(r, o)| r.as_secs_f64() / o.as_secs_f64())
        .collect();
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!(
        "overall caas / raw throughput: {:.2}; median of rounds: {:.2}",
        raw_total / ours_total,
        ratios[ratios.len() / 2]
    );
}

/// The exact insert path `caas seed` uses.
async fn caas_run(
    conn: &caas_core::connect::Connection,
    batches: &[seed::Batch],
    concurrency: usize,
    docs: usize,
) -> Duration {
    let batches: Vec<seed::Batch> = batches
        .iter()
        .map(|b| seed::Batch {
            target: b.target.clone(),
            placement: b.placement.clone(),
            logical: b.logical.clone(),
            time_series: b.time_series,
            docs: b.docs.clone(),
        })
        .collect();
    let start = Instant::now();
    let rows = seed::insert(&conn.client, batches, concurrency, false, &|_| {}).await;
    let took = start.elapsed();
    let inserted: u64 = rows.iter().map(|r| r.inserted).sum();
    assert_eq!(inserted as usize, docs, "caas inserted every document");
    took
}

/// Peak resident memory since the last reset, in MiB (Linux: VmHWM, reset via clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// One measured phase.
struct Phase {
    wall: Duration,
    trips: u64,
    peak: f64,
}

async fn measure<F: std::future::Future<Output = ()>>(
    conn: &caas_core::connect::Connection,
    f: F,
) -> Phase {
    reset_peak();
    let before = conn.commands();
    let start = Instant::now();
    f.await;
    Phase {
        wall: start.elapsed(),
        trips: conn.commands() - before,
        peak: peak_mib(),
    }
}

/// Every document of the tenant registry.
async fn registry_docs(
    conn: &caas_core::connect::Connection,
    config: &caas_core::config::Config,
) -> Vec<Document> {
    conn.client
        .database(&config.databases.platform)
        .collection::<Document>("saas_clients")
        .find(bson::doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// The run with the median wall time.
fn median(mut runs: Vec<Phase>) -> Phase {
    runs.sort_by_key(|p| p.wall);
    runs.swap_remove(runs.len() / 2)
}

fn row(label: &str, caas: &Phase, raw: &Phase) {
    println!(
        "| {label} | {:.2} s | {:.2} s | {:.2} | {} | {} | {:.0} MiB | {:.0} MiB |",
        caas.wall.as_secs_f64(),
        raw.wall.as_secs_f64(),
        caas.wall.as_secs_f64() / raw.wall.as_secs_f64(),
        caas.trips,
        raw.trips,
        caas.peak,
        raw.peak
    );
}

fn specs_of(report: &caas_core::spec::LoadReport) -> Vec<&caas_core::spec::CollectionSpec> {
    report.specs.iter().map(|s| &s.spec).collect()
}

/// How many tenants of a benchmark fleet are Pro and Enterprise (the rest alternate free and
/// starter). `--pro N --enterprise N`; by default 15% each, the mix of the earlier rows.
#[derive(Clone, Copy)]
struct Mix {
    pro: usize,
    enterprise: usize,
}

impl Mix {
    fn from_args(args: &[String], n: usize) -> Mix {
        let default = (n * 3).div_ceil(20) as u64;
        Mix {
            pro: arg(args, "--pro", default) as usize,
            enterprise: arg(args, "--enterprise", default) as usize,
        }
    }

    fn describe(self, n: usize) -> String {
        format!(
            "{n} tenants: {} shared-tier, {} pro, {} enterprise",
            n.saturating_sub(self.pro + self.enterprise),
            self.pro,
            self.enterprise
        )
    }

    /// The tier of every tenant, the Pro and Enterprise ones spread through the fleet by a
    /// fixed permutation (so tenant order mixes tiers as a real registry does).
    fn tiers(self, n: usize) -> Vec<caas_core::tenancy::Tier> {
        use caas_core::tenancy::Tier;
        assert!(
            self.pro + self.enterprise <= n,
            "more pro and enterprise tenants than tenants"
        );
        let mut by_rank: Vec<Tier> = (0..n)
            .map(|i| match i {
                i if i < self.pro => Tier::Pro,
                i if i < self.pro + self.enterprise => Tier::Enterprise,
                i if i % 2 == 0 => Tier::Free,
                _ => Tier::Starter,
            })
            .collect();
        // Position i takes rank (i * stride) mod n; the stride is prime and does not divide
        // n, so this is a permutation.
        let stride = [7919, 7907, 7901]
            .into_iter()
            .find(|p| !n.is_multiple_of(*p))
            .unwrap_or(1);
        let mut tiers = vec![Tier::Free; n];
        for (i, slot) in tiers.iter_mut().enumerate() {
            *slot = std::mem::replace(&mut by_rank[(i * stride) % n], Tier::Free);
        }
        tiers
    }
}

/// Register `n` tenants directly, with the tiers of `mix`.
async fn register(conn: &caas_core::connect::Connection, config: &Config, n: usize, mix: Mix) {
    let docs: Vec<Document> = mix
        .tiers(n)
        .into_iter()
        .enumerate()
        .map(|(i, tier)| {
            caas_core::fleet::registry::new_tenant_document(
                config,
                &format!("t{i:05}"),
                tier,
                "Bench",
                None,
            )
        })
        .collect();
    let coll = conn
        .client
        .database(&config.databases.platform)
        .collection::<Document>("saas_clients");
    for chunk in docs.chunks(1_000) {
        coll.insert_many(chunk).await.expect("register");
    }
}

async fn drop_prefix(conn: &caas_core::connect::Connection, prefix: &str) {
    for db in conn
        .client
        .list_database_names()
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.starts_with(prefix))
    {
        conn.client.database(&db).drop().await.unwrap();
    }
}

/// The raw floor for "apply from empty": create + one createIndexes per collection.
async fn raw_apply(
    conn: &caas_core::connect::Connection,
    compiled: &[caas_core::compile::CompiledTarget],
    concurrency: usize,
) {
    let jobs: Vec<&caas_core::compile::CompiledCollection> =
        compiled.iter().flat_map(|t| t.collections.iter()).collect();
    futures::stream::iter(jobs)
        .map(|c| async move {
            let db = conn.client.database(&c.placement.database);
            let mut cmd = bson::doc! { "create": &c.placement.collection };
            cmd.extend(c.options.to_document());
            if let Err(e) = db.run_command(cmd).await {
                // The registry exists already (tenants were registered): collMod, as caas does.
                assert!(matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Command(x) if x.code == 48), "create: {e}");
                let mut m = bson::doc! { "collMod": &c.placement.collection };
                m.extend(c.options.to_document());
                db.run_command(m).await.expect("collMod");
            }
            if !c.indexes.is_empty() {
                let ix: Vec<Document> = c.indexes.iter().map(|i| i.to_create_spec()).collect();
                db.run_command(bson::doc! { "createIndexes": &c.placement.collection, "indexes": ix }).await.expect("createIndexes");
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
}

/// The raw floor for a no-op diff: listCollections per database, listIndexes per collection.
async fn raw_read(
    conn: &caas_core::connect::Connection,
    compiled: &[caas_core::compile::CompiledTarget],
    concurrency: usize,
) {
    let mut dbs = std::collections::BTreeSet::new();
    let mut colls = Vec::new();
    for c in compiled.iter().flat_map(|t| t.collections.iter()) {
        dbs.insert(c.placement.database.clone());
        colls.push((c.placement.database.clone(), c.placement.collection.clone()));
    }
    futures::stream::iter(dbs)
        .map(|db| async move {
            let _: Vec<Document> = conn
                .client
                .database(&db)
                .run_cursor_command(bson::doc! { "listCollections": 1 })
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    futures::stream::iter(colls)
        .map(|(db, c)| async move {
            let _: Vec<Document> = conn
                .client
                .database(&db)
                .run_cursor_command(bson::doc! { "listIndexes": c })
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
}

/// Run one phase in a child process (so its peak memory is its own) and read its result.
fn phase_in_child(kind: &str, prefix: &str, concurrency: usize) -> Phase {
    let exe = std::env::current_exe().expect("bench exe");
    let out = std::process::Command::new(exe)
        .args(["phase", kind, prefix, &concurrency.to_string()])
        .output()
        .expect("phase");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("PHASE "))
        .unwrap_or_else(|| {
            panic!(
                "phase {kind} failed: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let v: Vec<f64> = line[6..]
        .split(' ')
        .filter_map(|x| x.parse().ok())
        .collect();
    Phase {
        wall: Duration::from_secs_f64(v[0]),
        trips: v[1] as u64,
        peak: v[2],
    }
}

/// Child side of [`phase_in_child`].
async fn phase(uri: &str, args: &[String]) {
    let (kind, prefix, concurrency) = (
        args[1].as_str(),
        args[2].as_str(),
        args[3].parse::<usize>().unwrap_or(4),
    );
    let conn = caas_core::connect::connect(uri, Duration::from_secs(30))
        .await
        .expect("connect");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let report = caas_core::spec::load_project(&root.join("schemas"), &[]).expect("specs");
    let specs = specs_of(&report);
    let config = project_config(prefix);
    let p = match kind {
        "raw-apply" | "raw-read" => {
            let fleet = caas_core::fleet::resolve(&conn, &config, &Default::default())
                .await
                .expect("fleet");
            let compiled = caas_core::fleet::desired(&specs, &fleet, &config);
            // The floor reads the registry too (it must know the tenants), then issues the
            // commands for the targets computed above.
            if kind == "raw-apply" {
                measure(&conn, async {
                    registry_docs(&conn, &config).await;
                    raw_apply(&conn, &compiled, concurrency).await
                })
                .await
            } else {
                measure(&conn, async {
                    registry_docs(&conn, &config).await;
                    raw_read(&conn, &compiled, concurrency).await
                })
                .await
            }
        }
        "caas-apply" => {
            // The path `caas schema apply` takes: read and plan at once keeping the live
            // state, then workers plan each changed target again as they take it.
            measure(&conn, async {
                let fleet = caas_core::fleet::resolve(&conn, &config, &Default::default())
                    .await
                    .expect("fleet");
                let mut changed = Vec::new();
                let (_, live) = caas_core::fleet::plan_streamed_keeping_live(
                    &conn,
                    &config,
                    &fleet,
                    &specs,
                    concurrency,
                    &mut |p| {
                        if !p.changes.is_empty() {
                            changed.push(p.target)
                        }
                    },
                )
                .await
                .expect("live");
                let planner = caas_core::fleet::Planner::new(&config, &fleet, &specs);
                let plan_of = |t: caas_core::tenancy::Target| planner.plan(&live, &t);
                let reports = caas_core::apply::apply_each(
                    &conn.client,
                    changed,
                    &plan_of,
                    caas_core::apply::ApplyOptions {
                        concurrency,
                        ..Default::default()
                    },
                    &|_| {},
                )
                .await;
                assert!(
                    reports
                        .iter()
                        .all(|r| r.status != caas_core::apply::Status::Failed),
                    "apply failed"
                );
            })
            .await
        }
        "caas-diff" => {
            let mut drift = 0;
            let p = measure(&conn, async {
                let fleet = caas_core::fleet::resolve(&conn, &config, &Default::default())
                    .await
                    .expect("fleet");
                // The path `caas schema diff` takes: read and plan at once, target by target.
                caas_core::fleet::plan_streamed(
                    &conn,
                    &config,
                    &fleet,
                    &specs,
                    concurrency,
                    &mut |p| drift += p.changes.len(),
                )
                .await
                .expect("diff");
            })
            .await;
            assert_eq!(drift, 0, "no false positives after apply");
            p
        }
        "raw-migrate-noop" => {
            // The floor reads the registry (it must know the tenants), then each ledger once
            // (the ledger databases computed before the clock).
            let fleet = caas_core::fleet::resolve(&conn, &config, &Default::default())
                .await
                .expect("fleet");
            let dbs = ledger_dbs(&fleet, &config);
            measure(&conn, async {
                registry_docs(&conn, &config).await;
                raw_ledgers(&conn, &dbs, concurrency).await
            })
            .await
        }
        "caas-migrate-noop" | "caas-migrate" => {
            let shared: Vec<caas_core::tenancy::Tier> = vec![
                caas_core::tenancy::Tier::Free,
                caas_core::tenancy::Tier::Starter,
            ];
            let (migrations, findings) =
                caas_core::migrate::load(&root.join("migrations"), &specs, &shared);
            assert!(findings.is_empty(), "{findings:?}");
            let opts = caas_core::migrate::runner::UpOptions {
                to: None,
                dry_run: false,
                concurrency,
                on_error: caas_core::migrate::runner::OnError::Continue,
                max_failures: None,
                lock_wait: Duration::from_secs(30),
                lease: Duration::from_secs(15),
                batch_pause: Duration::ZERO,
            };
            let mut applied = 0;
            let p = measure(&conn, async {
                let fleet = caas_core::fleet::resolve(&conn, &config, &Default::default())
                    .await
                    .expect("fleet");
                let f = caas_core::migrate::runner::Fleetwide {
                    client: &conn.client,
                    config: &config,
                    specs: &specs,
                    tenants: &fleet.tenants,
                    migrations: &migrations,
                };
                let runs = caas_core::migrate::runner::up(&f, &fleet.targets, &opts, &|_| {})
                    .await
                    .expect("up");
                applied = runs.iter().map(|r| r.applied.len()).sum::<usize>();
            })
            .await;
            if kind == "caas-migrate-noop" {
                assert_eq!(applied, 0, "a no-op up applies nothing");
            }
            p
        }
        "plan-memory" | "plan-memory-all" => {
            // Planning only, no server: `prefix` is the number of synthetic targets.
            let n: usize = prefix.parse().expect("target count");
            let config = project_config("mem");
            let tenants: Vec<caas_core::fleet::registry::Tenant> = Vec::new();
            let targets: Vec<caas_core::tenancy::Target> = (0..n)
                .map(|i| {
                    let tier = if i % 2 == 0 {
                        caas_core::tenancy::Tier::Enterprise
                    } else {
                        caas_core::tenancy::Tier::Pro
                    };
                    caas_core::tenancy::Target::for_tenant(
                        &format!("t{i:06}"),
                        tier,
                        config.tiers.layout(tier),
                    )
                })
                .collect();
            let fleet = caas_core::fleet::Fleet {
                tenants,
                targets,
                retired: vec![],
            };
            let live = caas_core::inspect::LiveState::new();
            let mut changes = 0usize;
            let p = measure(&conn, async {
                if kind == "plan-memory" {
                    caas_core::fleet::plan_live_each(&config, &fleet, &specs, &live, &mut |p| {
                        changes += p.changes.len()
                    });
                } else {
                    let compiled = caas_core::fleet::desired(&specs, &fleet, &config);
                    let plans: Vec<_> = compiled
                        .iter()
                        .map(|t| {
                            caas_core::plan::plan_target(
                                &t.target,
                                &t.collections,
                                &live,
                                &|_, _| true,
                            )
                        })
                        .collect();
                    changes = plans.iter().map(|p| p.changes.len()).sum();
                }
            })
            .await;
            assert!(changes > n, "every target plans its collections");
            p
        }
        other => panic!("unknown phase {other}"),
    };
    println!("PHASE {} {} {}", p.wall.as_secs_f64(), p.trips, p.peak);
}

async fn fleet_bench(uri: &str, args: &[String]) {
    let concurrency = arg(args, "--concurrency", 4) as usize;
    let sizes: Vec<usize> = args
        .iter()
        .position(|a| a == "--tenants")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 100, 1000]);
    let conn = caas_core::connect::connect(uri, Duration::from_secs(30))
        .await
        .expect("connect");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let report = caas_core::spec::load_project(&root.join("schemas"), &[]).expect("specs");
    let specs = specs_of(&report);
    println!("fleet benchmarks: concurrency {concurrency}");
    for n in sizes {
        let prefix = format!("fb{n}");
        let config = project_config(&prefix);
        drop_prefix(&conn, &prefix).await;
        let mix = Mix::from_args(args, n);
        println!("\n{}", mix.describe(n));
        println!("| tenants / phase | caas | raw floor | caas / raw | caas round trips | raw round trips | caas peak | raw peak |");
        println!("|---|---|---|---|---|---|---|---|");
        register(&conn, &config, n, mix).await;
        let fleet = caas_core::fleet::resolve(&conn, &config, &Default::default())
            .await
            .expect("fleet");
        let compiled = caas_core::fleet::desired(&specs, &fleet, &config);
        let targets = fleet.targets.len();
        // Raw floor first on an empty server, then caas on an empty server again; each
        // phase in its own process.
        let raw = phase_in_child("raw-apply", &prefix, concurrency);
        let registry = registry_docs(&conn, &config).await;
        drop_prefix(&conn, &prefix).await;
        conn.client
            .database(&config.databases.platform)
            .collection::<Document>("saas_clients")
            .insert_many(registry)
            .await
            .unwrap();
        let ours = phase_in_child("caas-apply", &prefix, concurrency);
        row(
            &format!(
                "{n} tenants ({targets} targets, {} collections): apply from empty",
                compiled.iter().map(|t| t.collections.len()).sum::<usize>()
            ),
            &ours,
            &raw,
        );
        // A short phase varies a lot from run to run: small fleets take the median of 5.
        let reps = if n <= 100 { 5 } else { 1 };
        let (mut raws, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            raws.push(phase_in_child("raw-read", &prefix, concurrency));
            ours.push(phase_in_child("caas-diff", &prefix, concurrency));
        }
        let label = if reps > 1 {
            format!("{n} tenants: no-op diff (median of {reps})")
        } else {
            format!("{n} tenants: no-op diff")
        };
        row(&label, &median(ours), &median(raws));
        let m = migrate_phases(&conn, &config, &prefix, concurrency).await;
        row(
            &format!(
                "{n} tenants: no-op migrate up ({} ledger databases)",
                m.ledgers
            ),
            &m.noop,
            &m.raw,
        );
        println!("{}", m.first_line());
        drop_prefix(&conn, &prefix).await;
    }
}

/// `prepare --tenants N [--pro P --enterprise E]`: register a fleet under the prefix `fb{N}`
/// and apply the catalogue to it, and leave it there, for profiling one phase by hand
/// (`MONGODB_URI=... target/release/deps/caas_bench-* phase caas-diff fb10000 4`).
async fn prepare(uri: &str, args: &[String]) {
    let n = arg(args, "--tenants", 1000) as usize;
    let conn = caas_core::connect::connect(uri, Duration::from_secs(30))
        .await
        .expect("connect");
    let prefix = format!("fb{n}");
    let config = project_config(&prefix);
    drop_prefix(&conn, &prefix).await;
    let mix = Mix::from_args(args, n);
    register(&conn, &config, n, mix).await;
    let applied = phase_in_child("caas-apply", &prefix, 4);
    println!(
        "{}: applied in {:.2} s",
        mix.describe(n),
        applied.wall.as_secs_f64()
    );
}

/// `migrate`: a no-op `migrate up` over the fleet (after applying the catalogue's migrations),
/// against the floor of one ledger `find` per database.
async fn migrate_bench(uri: &str, args: &[String]) {
    let n = arg(args, "--tenants", 1000) as usize;
    let concurrency = arg(args, "--concurrency", 16) as usize;
    let conn = caas_core::connect::connect(uri, Duration::from_secs(30))
        .await
        .expect("connect");
    let prefix = format!("mb{n}");
    let config = project_config(&prefix);
    drop_prefix(&conn, &prefix).await;
    register(&conn, &config, n, Mix::from_args(args, n)).await;
    phase_in_child("caas-apply", &prefix, concurrency);
    let m = migrate_phases(&conn, &config, &prefix, concurrency).await;
    println!(
        "migrate: {n} tenants, {} targets, {} ledger databases, concurrency {concurrency}",
        m.targets, m.ledgers
    );
    println!("{}", m.first_line());
    println!("| phase | caas | raw floor | caas / raw | caas round trips | raw round trips | caas peak | raw peak |");
    println!("|---|---|---|---|---|---|---|---|");
    row(&format!("{n} tenants: no-op migrate up"), &m.noop, &m.raw);
    drop_prefix(&conn, &prefix).await;
}

/// The first `migrate up` of a fleet `schema apply` has prepared, then a no-op one against
/// the raw floor (the registry read and one ledger `find` per ledger database), each in its
/// own process.
struct MigratePhases {
    targets: usize,
    ledgers: usize,
    first: Phase,
    noop: Phase,
    raw: Phase,
}

impl MigratePhases {
    fn first_line(&self) -> String {
        format!(
            "first `migrate up` (3 catalogue migrations on every target): {:.2} s, {} round trips, peak {:.0} MiB",
            self.first.wall.as_secs_f64(),
            self.first.trips,
            self.first.peak
        )
    }
}

async fn migrate_phases(
    conn: &caas_core::connect::Connection,
    config: &Config,
    prefix: &str,
    concurrency: usize,
) -> MigratePhases {
    let first = phase_in_child("caas-migrate", prefix, concurrency);
    let fleet = caas_core::fleet::resolve(conn, config, &Default::default())
        .await
        .expect("fleet");
    MigratePhases {
        targets: fleet.targets.len(),
        ledgers: ledger_dbs(&fleet, config).len(),
        first,
        raw: phase_in_child("raw-migrate-noop", prefix, concurrency),
        noop: phase_in_child("caas-migrate-noop", prefix, concurrency),
    }
}

/// The databases holding a ledger: the shared target and every Pro set share one.
fn ledger_dbs(
    fleet: &caas_core::fleet::Fleet,
    config: &Config,
) -> std::collections::BTreeSet<String> {
    fleet
        .targets
        .iter()
        .map(|t| caas_core::migrate::status::ledger_db(t, config))
        .collect()
}

/// The raw floor of a no-op `migrate up`: one `find` on each ledger.
async fn raw_ledgers(
    conn: &caas_core::connect::Connection,
    dbs: &std::collections::BTreeSet<String>,
    concurrency: usize,
) {
    futures::stream::iter(dbs.iter())
        .map(|db| async {
            let _: Vec<Document> = conn
                .client
                .database(db)
                .collection::<Document>("caas_migrations")
                .find(bson::doc! {})
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
}

/// `backfill`: a batched, checkpointed backfill against one server-side update_many.
async fn backfill_bench(uri: &str, args: &[String]) {
    let docs = arg(args, "--docs", 10_000) as usize;
    let batch = arg(args, "--batch", 1_000);
    let conn = caas_core::connect::connect(uri, Duration::from_secs(30))
        .await
        .expect("connect");
    let prefix = "bfb";
    drop_prefix(&conn, prefix).await;
    let config = project_config(prefix);
    let spec: caas_core::spec::CollectionSpec = serde_json::from_value(caas_core::base::yaml::parse("collection: items\ndomain: platform\nstandard_fields: false\nfields:\n  n: { type: int, required: true }\n  visits: { type: long, required: true }\n").unwrap().value).unwrap();
    let specs = vec![&spec];
    let db = conn.client.database(&config.databases.platform);
    for coll in ["items", "items_raw"] {
        let all: Vec<Document> = (0..docs)
            .map(|i| bson::doc! { "n": i as i32, "visits": 0_i64 })
            .collect();
        for chunk in all.chunks(5_000) {
            db.collection::<Document>(coll)
                .insert_many(chunk)
                .await
                .unwrap();
        }
    }
    let text = format!("description: bench\nscope: platform\nup:\n  - backfill: {{ collection: items, batch_size: {batch}, update: {{ $inc: {{ visits: 1 }} }} }}\n");
    let doc = caas_core::base::yaml::parse(&text).unwrap();
    let body: caas_core::migrate::MigrationFile =
        serde_json::from_value(doc.value.clone()).unwrap();
    let m = caas_core::migrate::Migration {
        version: 1,
        name: "bench".into(),
        file: "V0001__bench.yaml".into(),
        checksum: caas_core::migrate::source::checksum(&doc.value),
        body,
        doc,
    };
    let migrations = vec![m];
    let opts = caas_core::migrate::runner::UpOptions {
        to: None,
        dry_run: false,
        concurrency: 1,
        on_error: caas_core::migrate::runner::OnError::Stop,
        max_failures: None,
        lock_wait: Duration::from_secs(5),
        lease: Duration::from_secs(15),
        batch_pause: Duration::ZERO,
    };
    let raw = measure(&conn, async {
        db.collection::<Document>("items_raw")
            .update_many(bson::doc! {}, bson::doc! { "$inc": { "visits": 1 } })
            .await
            .unwrap();
    })
    .await;
    let ours = measure(&conn, async {
        let f = caas_core::migrate::runner::Fleetwide {
            client: &conn.client,
            config: &config,
            specs: &specs,
            tenants: &[],
            migrations: &migrations,
        };
        let runs = caas_core::migrate::runner::up(
            &f,
            &[caas_core::tenancy::Target::platform()],
            &opts,
            &|_| {},
        )
        .await
        .unwrap();
        assert_eq!(runs[0].applied, vec![1]);
    })
    .await;
    let done = db
        .collection::<Document>("items")
        .count_documents(bson::doc! { "visits": 1_i64 })
        .await
        .unwrap();
    assert_eq!(done as usize, docs);
    println!("backfill: {docs} documents, batches of {batch} (each batch + checkpoint in one transaction)");
    println!("| phase | caas backfill | raw update_many | raw / caas throughput | caas round trips | raw round trips |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {docs} documents | {:.2} s | {:.2} s | {:.2} | {} | {} |",
        ours.wall.as_secs_f64(),
        raw.wall.as_secs_f64(),
        raw.wall.as_secs_f64() / ours.wall.as_secs_f64(),
        ours.trips,
        raw.trips
    );
    drop_prefix(&conn, prefix).await;
}

/// `scaling`: `schema apply` from empty at one fleet size with concurrency 1, 4 and 16.
async fn scaling_bench(uri: &str, args: &[String]) {
    let n = arg(args, "--tenants", 100) as usize;
    let conn = caas_core::connect::connect(uri, Duration::from_secs(30))
        .await
        .expect("connect");
    println!("apply from empty, {n} tenants, by --concurrency");
    println!("| concurrency | caas apply | round trips | peak |\n|---|---|---|---|");
    for c in [1usize, 4, 16] {
        let prefix = format!("sc{c}");
        let config = project_config(&prefix);
        drop_prefix(&conn, &prefix).await;
        register(&conn, &config, n, Mix::from_args(args, n)).await;
        let p = phase_in_child("caas-apply", &prefix, c);
        println!(
            "| {c} | {:.2} s | {} | {:.0} MiB |",
            p.wall.as_secs_f64(),
            p.trips,
            p.peak
        );
        drop_prefix(&conn, &prefix).await;
    }
}

/// `memory`: planning only (no server work) for many targets: one target at a time (what
/// `schema diff` does) against everything compiled at once.
async fn memory_bench(args: &[String]) {
    println!("planning memory (16 saas collections per target, half Pro, half Enterprise)");
    println!("| targets | one target at a time (plan, diff, apply) | all at once |\n|---|---|---|");
    let sizes: Vec<usize> = args
        .iter()
        .position(|a| a == "--targets")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1000, 10_000]);
    for n in sizes {
        let s = phase_in_child("plan-memory", &n.to_string(), 1);
        let a = phase_in_child("plan-memory-all", &n.to_string(), 1);
        println!(
            "| {n} | {:.0} MiB ({:.2} s) | {:.0} MiB ({:.2} s) |",
            s.peak,
            s.wall.as_secs_f64(),
            a.peak,
            a.wall.as_secs_f64()
        );
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let uri = std::env::var("MONGODB_URI").expect("MONGODB_URI (scripts/bench.sh starts a server)");
    match args.first().map(String::as_str) {
        Some("seed") | None => seed_bench(&uri, &args).await,
        Some("fleet") => fleet_bench(&uri, &args).await,
        Some("phase") => phase(&uri, &args).await,
        Some("prepare") => prepare(&uri, &args).await,
        Some("migrate") => migrate_bench(&uri, &args).await,
        Some("backfill") => backfill_bench(&uri, &args).await,
        Some("scaling") => scaling_bench(&uri, &args).await,
        Some("memory") => memory_bench(&args).await,
        Some("move") => move_bench::move_bench(&uri, &args).await,
        Some(other) => panic!("unknown benchmark `{other}`; see benches/caas_bench.rs"),
    }
}
