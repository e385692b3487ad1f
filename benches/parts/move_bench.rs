//! `move [--docs 10000,100000] [--moves 10] [--batch 500]`: `caas tenant move` under a
//! writer. Per size: the copy's throughput against a raw-driver copy of the same documents
//! at the same concurrency (one reader, batches of `--batch`) into a collection like the
//! move's target (with its index when that is the shared collection), and over `--moves`
//! moves (free <-> pro, the kept source removed after the window is read) the write-fence
//! window as the writer saw it (from its first refused write to its next accepted one,
//! median and maximum), the window the mover measured (fence raised -> registry flipped),
//! and the catch-up lag at the flip. The writer inserts and updates the tenant's documents
//! every 10 ms, following the registry, retrying refused writes; at the end the tenant
//! holds exactly the documents it started with plus the writer's inserts (the benchmark
//! checks it). Last, per size, the raw copy with the index built before it and after it
//! (the mover builds indexes after).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::{doc, Document};
use futures::TryStreamExt;

use caas_core::lifecycle::{Command, MoveOptions, Mover};
use caas_core::tenancy::Tier;

use super::{arg, drop_prefix, project_config};

const TENANT: &str = "mover";

fn spec() -> caas_core::spec::CollectionSpec {
    let text = "collection: items\ndomain: saas\nstandard_fields: false\nfields:\n  n: { type: int, required: true }\n  body: { type: string, required: true }\nindexes:\n  - keys: { n: 1 }\n";
    serde_json::from_value(caas_core::base::yaml::parse(text).unwrap().value).unwrap()
}

/// Where the registry says the tenant's items are.
async fn locate(client: &mongodb::Client, prefix: &str) -> (mongodb::Collection<Document>, bool) {
    let reg = client
        .database(&format!("{prefix}_platform"))
        .collection::<Document>("saas_clients")
        .find_one(doc! { "tenant_id": TENANT })
        .await
        .unwrap()
        .unwrap();
    let shared = client.database(&format!("{prefix}_shared"));
    match reg.get_str("tier").unwrap() {
        "pro" => (shared.collection(&format!("{TENANT}_items")), false),
        _ => (shared.collection("items"), true),
    }
}

/// What the writer saw.
#[derive(Default)]
struct Seen {
    inserted: AtomicU64,
    refused: AtomicU64,
    /// Refusal windows since the last drain.
    windows: Mutex<Vec<Duration>>,
}

async fn writer(client: mongodb::Client, prefix: String, stop: Arc<AtomicBool>, seen: Arc<Seen>) {
    let mut i: i32 = 1_000_000_000;
    let mut refused_since: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        let (coll, shared) = locate(&client, &prefix).await;
        i += 1;
        // The tenant's documents carry tenant_id in every tier (they move as they are).
        let d = doc! { "tenant_id": TENANT, "n": i, "body": "written during the move" };
        let result = if i % 2 == 0 {
            coll.insert_one(d).await.map(|_| true)
        } else {
            // As an application would: by the tenant and `n` where the collection is shared.
            let which = if shared {
                doc! { "tenant_id": TENANT, "n": i - 1 }
            } else {
                doc! { "n": i - 1 }
            };
            coll.update_one(which, doc! { "$set": { "body": "updated" } })
                .await
                .map(|_| false)
        };
        match result {
            Ok(inserted) => {
                if inserted {
                    seen.inserted.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(since) = refused_since.take() {
                    seen.windows.lock().unwrap().push(since.elapsed());
                }
            }
            Err(e) if caas_core::lifecycle::wfence::is_fence_refusal(&e) => {
                seen.refused.fetch_add(1, Ordering::SeqCst);
                refused_since.get_or_insert_with(Instant::now);
                i -= 1;
            }
            Err(e) => panic!("the writer's write failed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// When a raw copy builds the bench spec's index `{n: 1}`.
#[derive(Clone, Copy, PartialEq)]
enum Index {
    None,
    Before,
    After,
}

/// A raw copy of the tenant's documents into a scratch collection as the mover copies:
/// one reader (a cursor in `_id` order), one writer (`insert_many` per batch); the time
/// includes building the index when there is one.
async fn raw_copy(
    client: &mongodb::Client,
    prefix: &str,
    batch: usize,
    index: Index,
) -> (u64, Duration) {
    let (from, _) = locate(client, prefix).await;
    let to = client
        .database(&format!("{prefix}_shared"))
        .collection::<bson::RawDocumentBuf>("raw_copy");
    let from = from.clone_with_type::<bson::RawDocumentBuf>();
    let model = mongodb::IndexModel::builder().keys(doc! { "n": 1 }).build();
    let start = Instant::now();
    if index == Index::Before {
        to.create_index(model.clone()).await.unwrap();
    }
    let mut cursor = from
        .find(doc! { "tenant_id": TENANT })
        .sort(doc! { "_id": 1 })
        .batch_size(batch as u32)
        .await
        .unwrap();
    let mut n = 0u64;
    loop {
        let mut docs = Vec::with_capacity(batch);
        while docs.len() < batch {
            match cursor.try_next().await.unwrap() {
                Some(d) => docs.push(d),
                None => break,
            }
        }
        if docs.is_empty() {
            break;
        }
        n += docs.len() as u64;
        to.insert_many(&docs).await.unwrap();
    }
    if index == Index::After {
        to.create_index(model).await.unwrap();
    }
    let took = start.elapsed();
    to.drop().await.unwrap();
    (n, took)
}

fn median_max(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], *v.last().unwrap())
}

pub async fn move_bench(uri: &str, args: &[String]) {
    let sizes: Vec<usize> = args
        .iter()
        .position(|a| a == "--docs")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let moves = arg(args, "--moves", 10) as usize;
    let batch = arg(args, "--batch", 500) as usize;
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let conn = caas_core::connect::connect(uri, Duration::from_secs(30))
        .await
        .expect("connect");
    println!("move: tenant `{TENANT}` free <-> pro, {moves} move(s) per size, batches of {batch}, a writer every 10 ms");
    println!("| documents | caas copy | raw copy | caas / raw throughput | writes refused for (writer, median / max) | fence -> flip (mover, median / max) | lag at the flip (median / max) |");
    println!("|---|---|---|---|---|---|---|");
    for docs in sizes {
        size_run(&conn, docs, moves, batch).await;
    }
}

async fn size_run(conn: &caas_core::connect::Connection, docs: usize, moves: usize, batch: usize) {
    let prefix = "mvb";
    drop_prefix(conn, prefix).await;
    let config = project_config(prefix);
    let s = spec();
    let specs = vec![&s];
    let platform = conn.client.database(&config.databases.platform);
    caas_core::fleet::registry::add(
        &platform,
        &config,
        Some(&specs),
        TENANT,
        Tier::Free,
        Default::default(),
    )
    .await
    .unwrap();
    let items = conn
        .client
        .database(&config.databases.shared)
        .collection::<Document>("items");
    let all: Vec<Document> = (0..docs as i32)
        .map(|n| doc! { "tenant_id": TENANT, "n": n, "body": "x".repeat(100) })
        .collect();
    for chunk in all.chunks(5_000) {
        items.insert_many(chunk).await.unwrap();
    }
    drop(all);
    // The writer runs during the raw copy too: both copies share the server with it.
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(writer(
        conn.client.clone(),
        prefix.to_owned(),
        stop.clone(),
        seen.clone(),
    ));
    let (mut copy_s, mut raw_s, mut ratio, mut refused, mut fence, mut lag) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in 0..moves {
        // The raw copy of the same documents, before each move: the two alternate under
        // the same writer, so a drift of the server's speed hits both. Into a collection
        // like the move's target: a new one (indexes after) for Pro, one whose index exists
        // for the shared collection (it holds other tenants: its indexes are there).
        let to = if i % 2 == 0 { Tier::Pro } else { Tier::Free };
        let like = if to == Tier::Pro {
            Index::None
        } else {
            Index::Before
        };
        let (copied_raw, raw) = raw_copy(&conn.client, prefix, batch, like).await;
        assert!(copied_raw as usize >= docs);
        raw_s.push(copied_raw as f64 / raw.as_secs_f64());
        let copy_line = Mutex::new(None::<f64>);
        let began = Instant::now();
        let progress = |line: &str| {
            eprintln!("  [{:>6.2} s] {line}", began.elapsed().as_secs_f64());
            // "<tenant>: copied N document(s) in X s; building indexes"
            if let Some(rest) = line.split(" document(s) in ").nth(1) {
                if let Some(secs) = rest.split(' ').next().and_then(|v| v.parse().ok()) {
                    *copy_line.lock().unwrap() = Some(secs);
                }
            }
        };
        let mover = Mover {
            conn,
            config: &config,
            specs: &specs,
            migrations: &[],
            opts: MoveOptions {
                batch,
                ..Default::default()
            },
            progress: &progress,
        };
        let report = mover
            .run(
                TENANT,
                Command::To {
                    tier: to,
                    finish: false,
                    region: None,
                },
            )
            .await
            .unwrap();
        let secs = copy_line
            .lock()
            .unwrap()
            .expect("the mover reports its copy");
        copy_s.push(report.copied as f64 / secs);
        ratio.push(copy_s[i] / raw_s[i]);
        fence.push(report.fence_ms.unwrap_or(0) as f64);
        lag.push(report.lag_ms as f64);
        // Let the writer find the new location before the window is read.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let w = std::mem::take(&mut *seen.windows.lock().unwrap());
        refused.push(
            w.iter()
                .map(|d| d.as_secs_f64() * 1000.0)
                .fold(0.0, f64::max),
        );
        // Then the kept source goes, as `--finish` (or the grace period) removes it: its
        // deletes are server work the writer waits on, not a refusal.
        mover.run(TENANT, Command::Finish).await.unwrap();
    }
    // The mover builds indexes after its copy: the same raw copy with the index built
    // before it and after it, twice each, under the same writer.
    let mut ix = [vec![], vec![]];
    for _ in 0..2 {
        for (k, when) in [Index::Before, Index::After].into_iter().enumerate() {
            let (n, took) = raw_copy(&conn.client, prefix, batch, when).await;
            ix[k].push(n as f64 / took.as_secs_f64());
        }
    }
    stop.store(true, Ordering::SeqCst);
    w.await.unwrap();
    let (coll, _) = locate(&conn.client, prefix).await;
    let have = coll
        .count_documents(doc! { "tenant_id": TENANT })
        .await
        .unwrap();
    let want = docs as u64 + seen.inserted.load(Ordering::SeqCst);
    assert_eq!(
        have, want,
        "every acknowledged insert is there exactly once"
    );
    let (ratio, _) = median_max(ratio);
    let (copy_rate, _) = median_max(copy_s);
    let (raw_rate, _) = median_max(raw_s);
    let (r_med, r_max) = median_max(refused);
    let (f_med, f_max) = median_max(fence);
    let (l_med, l_max) = median_max(lag);
    println!(
        "| {docs} | {:.0} docs/s | {:.0} docs/s | {:.2} | {r_med:.0} / {r_max:.0} ms | {f_med:.0} / {f_max:.0} ms | {l_med:.0} / {l_max:.0} ms |",
        copy_rate, raw_rate, ratio,
    );
    println!(
        "  ({docs}: {} writes refused in all, {} inserted by the writer; rates and their ratio are medians over the moves, the ratio of each move to the raw copy just before it)",
        seen.refused.load(Ordering::SeqCst),
        seen.inserted.load(Ordering::SeqCst),
    );
    let [before, after] = ix.map(|v| median_max(v).0);
    println!(
        "  ({docs}: a raw copy with the index {{n: 1}} built before it: {before:.0} docs/s; built after it: {after:.0} docs/s, {:.2}x)",
        after / before
    );
    drop_prefix(conn, prefix).await;
}
