//! Benchmarks: caas against the raw driver doing the same work, measured in one run as
//! ratios. Not timed tests: nothing here asserts a duration. Run with `scripts/bench.sh`.
//!
//! `seed [--scale N] [--tenants T]`: `caas seed`'s insert path (unordered batches,
//! concurrency 4) against raw `insert_many` of the same documents at the same concurrency.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bson::Document;
use futures::StreamExt;

use caas::config::Config;
use caas::seed::fixtures::SeedFile;
use caas::seed::{self, SeedOptions};

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
    let conn = caas::connect::connect(uri, Duration::from_secs(10))
        .await
        .expect("connect");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let report = caas::spec::load_project(&root.join("schemas"), &[]).expect("specs");
    let specs: Vec<&caas::spec::CollectionSpec> = report.specs.iter().map(|s| &s.spec).collect();
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
    conn: &caas::connect::Connection,
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

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let uri = std::env::var("MONGODB_URI").expect("MONGODB_URI (scripts/bench.sh starts a server)");
    match args.first().map(String::as_str) {
        Some("seed") | None => seed_bench(&uri, &args).await,
        Some(other) => panic!("unknown benchmark `{other}`; see benches/caas_bench.rs"),
    }
}
