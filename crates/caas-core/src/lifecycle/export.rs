//! `caas tenant export`: every document of a tenant, per logical collection, as canonical
//! Extended JSON lines (`<collection>.jsonl`, in `_id` order), and `manifest.json` with the
//! tier, layout, spec checksums, ledger entries and per-file counts, sha256 and content
//! digest (the digest a move verifies: sha256 over the documents' BSON in `_id` order).
//!
//! Memory holds one cursor batch. The manifest is written last: a folder without one is an
//! export that did not finish (`.caas-export-incomplete` marks it), which a rerun may
//! overwrite and an import refuses. An export of a tenant that is being written reads
//! each collection at its own moment; `caas tenant remove` fences the tenant first, so
//! its export is the tenant's last state.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use bson::{doc, Bson, Document, RawDocumentBuf};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::route::Namespace;
use super::state;
use crate::config::Config;
use crate::connect::Connection;
use crate::fleet::registry::{self, Tenant};
use crate::migrate::ledger::{self, Entry};
use crate::migrate::status::ledger_db;
use crate::spec::CollectionSpec;
use crate::tenancy::{Target, Tier};

pub const MANIFEST: &str = "manifest.json";
const INCOMPLETE: &str = ".caas-export-incomplete";
/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;

/// What an export holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub tenant: String,
    pub name: String,
    pub tier: Tier,
    /// The registry's `region` of the tenant: an import places its data there again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `shared`, `collection_set` or `database`.
    pub layout: String,
    /// The physical target the documents came from (`shared`, `pro:acme`, ...).
    pub target: String,
    pub exported_at: String,
    pub tool_version: String,
    /// The tenant was fenced (suspended or being removed) while it was read.
    pub consistent: bool,
    /// Per logical collection, sha256 of its spec as loaded (what the data was written under).
    pub specs: std::collections::BTreeMap<String, String>,
    /// The ledger of the tenant's target: the versions its data has.
    pub ledger: Vec<Entry>,
    pub files: Vec<ExportFile>,
}

/// One logical collection's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFile {
    pub collection: String,
    pub file: String,
    pub count: u64,
    /// sha256 of the file's bytes.
    pub sha256: String,
    /// sha256 over the documents' BSON in `_id` order (as `sync::digest` computes it live).
    pub digest: String,
}

/// Progress of a streaming command: `(collection, done, total)`.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

/// The tenant's `saas` collections in its current tier: `(logical name, namespace)`.
pub fn homes<'s>(
    config: &Config,
    specs: &[&'s CollectionSpec],
    id: &str,
    tier: Tier,
) -> (Target, Vec<(&'s CollectionSpec, Namespace)>) {
    let target = Target::for_tenant(id, tier, config.tiers.layout(tier));
    let homes = specs
        .iter()
        .filter(|s| target.holds(**s))
        .map(|s| {
            let p = target.place(s, &config.databases);
            let ns = Namespace {
                database: p.database,
                collection: p.collection,
                shared: p.shared_by_tenants,
            };
            (*s, ns)
        })
        .collect();
    (target, homes)
}

/// sha256 of a spec as caas reads it (its serialized form, so a comment edit is no change).
pub fn spec_checksum(spec: &CollectionSpec) -> String {
    hex::encode(Sha256::digest(serde_json::to_vec(spec).unwrap_or_default()))
}

/// The live tenant `id`, refusing churned, unknown and moving tenants.
pub async fn live_tenant(conn: &Connection, config: &Config, id: &str) -> Result<Tenant> {
    crate::tenancy::check_tenant_id(id).map_err(anyhow::Error::msg)?;
    let platform = conn.client.database(&config.databases.platform);
    let (live, _) = registry::list_all(&platform, config).await?;
    let t = live.into_iter().find(|t| t.id == id).ok_or_else(|| {
        anyhow!("tenant `{id}` is not registered (or was removed); `caas tenant list` shows who is")
    })?;
    if let Some(m) = state::read(&platform, id)
        .await?
        .filter(|m| m.phase.is_open())
    {
        bail!(
            "tenant `{id}` is being moved ({}); its documents are in two places: finish or abort the move first",
            state::describe(&m)
        );
    }
    Ok(t)
}

/// Make `out` ready for an export: a new or empty folder, or one an unfinished export of
/// this tool left (its marker present).
fn prepare_folder(out: &Path) -> Result<()> {
    match std::fs::symlink_metadata(out) {
        Err(_) => std::fs::create_dir_all(out)
            .with_context(|| format!("creating the export folder {}", out.display()))?,
        Ok(m) if !m.is_dir() => bail!(
            "{} exists and is not a folder; name a new folder for the export",
            out.display()
        ),
        Ok(_) => {
            let mut entries = std::fs::read_dir(out)
                .with_context(|| format!("reading {}", out.display()))?
                .filter_map(|e| e.ok());
            let ours = out.join(INCOMPLETE).exists();
            if !ours && entries.next().is_some() {
                bail!(
                    "{} is not empty; caas writes an export only into a new or empty folder, so nothing there is overwritten",
                    out.display()
                );
            }
        }
    }
    std::fs::write(out.join(INCOMPLETE), b"")
        .with_context(|| format!("writing into {}", out.display()))
}

/// Export tenant `t` into `out`. `consistent`: the caller holds the tenant fenced.
pub async fn export(
    conn: &Connection,
    config: &Config,
    specs: &[&CollectionSpec],
    t: &Tenant,
    out: &Path,
    consistent: bool,
    progress: Progress<'_>,
) -> Result<Manifest> {
    prepare_folder(out)?;
    let (target, homes) = homes(config, specs, &t.id, t.tier);
    let mut files = Vec::new();
    for (spec, ns) in &homes {
        files.push(export_collection(conn, &spec.collection, ns, &t.id, out, progress).await?);
    }
    let label = target.to_string();
    let mut ledgers = ledger::read(
        &conn.client.database(&ledger_db(&target, config)),
        std::slice::from_ref(&label),
    )
    .await?;
    let manifest = Manifest {
        format: FORMAT,
        tenant: t.id.clone(),
        name: t.name.clone(),
        tier: t.tier,
        region: t.region.clone(),
        layout: serde_json::to_value(config.tiers.layout(t.tier))?
            .as_str()
            .unwrap_or("?")
            .to_owned(),
        target: label.clone(),
        exported_at: bson::DateTime::now()
            .try_to_rfc3339_string()
            .unwrap_or_default(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        consistent,
        specs: homes
            .iter()
            .map(|(s, _)| (s.collection.clone(), spec_checksum(s)))
            .collect(),
        ledger: ledgers
            .remove(&label)
            .unwrap_or_default()
            .into_values()
            .collect(),
        files,
    };
    let path = out.join(MANIFEST);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("writing {}", path.display()))?;
    std::fs::remove_file(out.join(INCOMPLETE)).ok();
    Ok(manifest)
}

/// Stream one collection of the tenant into `<collection>.jsonl`.
async fn export_collection(
    conn: &Connection,
    collection: &str,
    ns: &Namespace,
    tenant: &str,
    out: &Path,
    progress: Progress<'_>,
) -> Result<ExportFile> {
    let coll = conn
        .client
        .database(&ns.database)
        .collection::<RawDocumentBuf>(&ns.collection);
    let total = coll.count_documents(ns.filter(tenant)).await?;
    let name = format!("{collection}.jsonl");
    let path = out.join(&name);
    let file =
        std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let mut cursor = coll
        .find(ns.filter(tenant))
        .sort(doc! { "_id": 1 })
        .batch_size(1000)
        .await
        .with_context(|| format!("reading {}", ns.label()))?;
    let (mut bytes, mut content, mut count) = (Sha256::new(), Sha256::new(), 0u64);
    while let Some(raw) = cursor
        .try_next()
        .await
        .with_context(|| format!("reading {}", ns.label()))?
    {
        content.update(raw.as_bytes());
        let d: Document = raw.to_document()?;
        let mut line = serde_json::to_vec(&Bson::Document(d).into_canonical_extjson())?;
        line.push(b'\n');
        bytes.update(&line);
        w.write_all(&line)
            .with_context(|| format!("writing {}", path.display()))?;
        count += 1;
        if count % 1000 == 0 {
            progress(collection, count, total.max(count));
        }
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    w.get_ref().sync_all().ok();
    progress(collection, count, total.max(count));
    Ok(ExportFile {
        collection: collection.to_owned(),
        file: name,
        count,
        sha256: hex::encode(bytes.finalize()),
        digest: hex::encode(content.finalize()),
    })
}

/// Largest manifest and line caas reads (MongoDB documents are at most 16 MiB as BSON;
/// their Extended JSON is larger).
const MAX_MANIFEST: u64 = 64 << 20;
const MAX_LINE: u64 = 64 << 20;

fn regular_file(path: &Path) -> Result<std::fs::File> {
    let m =
        std::fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !m.is_file() {
        bail!(
            "{} is not a regular file (a FIFO, device, folder or link); an export holds only regular files",
            path.display()
        );
    }
    std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))
}

/// Read and check an export's manifest: the format, and file names that stay inside the folder.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    if dir.join(INCOMPLETE).exists() || !path.exists() {
        bail!(
            "{} has no {MANIFEST}: it is not an export, or the export did not finish; export again",
            dir.display()
        );
    }
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(regular_file(&path)?, MAX_MANIFEST + 1),
        &mut text,
    )
    .with_context(|| format!("reading {}", path.display()))?;
    if text.len() as u64 > MAX_MANIFEST {
        bail!(
            "{} is over {} MiB; it is not a caas manifest",
            path.display(),
            MAX_MANIFEST >> 20
        );
    }
    let m: Manifest = serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "{}:{}:{}: {e}; the manifest is damaged, export again",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    if m.format != FORMAT {
        bail!(
            "{}: format {} (this caas reads format {FORMAT})",
            path.display(),
            m.format
        );
    }
    for f in &m.files {
        let plain = Path::new(&f.file)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain || f.file.contains('/') || f.file.contains('\\') {
            bail!(
                "{}: file `{}` of `{}` is not a plain name inside the export folder",
                path.display(),
                f.file,
                f.collection
            );
        }
    }
    Ok(m)
}

/// One document read back from an export file: its line number and the document.
pub struct Line {
    pub number: u64,
    pub document: Document,
}

/// The lines of one export file, read one document at a time; [`Lines::finish`] checks
/// the file's count and sha256 against the manifest. A line that is not a document is an
/// error naming file and line.
pub struct Lines<'f> {
    path: PathBuf,
    file: &'f ExportFile,
    reader: std::io::BufReader<std::fs::File>,
    hash: Sha256,
    number: u64,
    buf: Vec<u8>,
}

impl<'f> Lines<'f> {
    pub fn open(dir: &Path, file: &'f ExportFile) -> Result<Lines<'f>> {
        let path = dir.join(&file.file);
        let reader = std::io::BufReader::new(regular_file(&path)?);
        Ok(Lines {
            path,
            file,
            reader,
            hash: Sha256::new(),
            number: 0,
            buf: Vec::new(),
        })
    }

    pub fn next_line(&mut self) -> Result<Option<Line>> {
        self.buf.clear();
        let n = std::io::Read::take(&mut self.reader, MAX_LINE + 1)
            .read_until(b'\n', &mut self.buf)
            .with_context(|| format!("reading {}", self.path.display()))?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        let (path, number) = (self.path.display(), self.number);
        if n as u64 > MAX_LINE {
            bail!("{path}:{number}: a line over {} MiB", MAX_LINE >> 20);
        }
        self.hash.update(&self.buf);
        let value: serde_json::Value = serde_json::from_slice(&self.buf)
            .map_err(|e| anyhow!("{path}:{number}:{}: {e}", e.column()))?;
        match Bson::try_from(value) {
            Ok(Bson::Document(document)) => Ok(Some(Line { number, document })),
            Ok(_) => bail!("{path}:{number}: not a document"),
            Err(e) => bail!("{path}:{number}: not Extended JSON: {e}"),
        }
    }

    pub fn finish(self) -> Result<()> {
        if self.number != self.file.count || hex::encode(self.hash.finalize()) != self.file.sha256 {
            bail!(
                "{}: {} line(s) whose sha256 does not match the manifest ({} line(s)); the file was changed or cut short: export again",
                self.path.display(),
                self.number,
                self.file.count
            );
        }
        Ok(())
    }
}

/// Read every line of one export file, calling `each` per document, then check the file.
pub fn read_lines(
    dir: &Path,
    f: &ExportFile,
    mut each: impl FnMut(Line) -> Result<()>,
) -> Result<()> {
    let mut lines = Lines::open(dir, f)?;
    while let Some(line) = lines.next_line()? {
        each(line)?;
    }
    lines.finish()
}
