//! Writing what `caas schema pull` read: spec files (new, or merged into existing ones)
//! and the registry entries of the tenants found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::emit;
use super::pull::{FoundTenant, PullReport};
use crate::config::Config;
use crate::connect::Connection;

/// Write the pulled specs under `out`. Without `merge`, refuses (writing nothing) when any
/// file exists; with it, existing specs are merged (see [`super::merge`]).
pub fn write(report: &PullReport, out: &Path, merge: bool) -> Result<Vec<Written>> {
    if !merge {
        let existing: Vec<String> = report
            .specs
            .iter()
            .map(|p| out.join(&p.file))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            bail!("{} spec file(s) exist already ({}{}); nothing was written\n  fix: pass --merge to update them keeping hand-written descriptions, rules and owners, or --out <folder> to write elsewhere", existing.len(), existing[..existing.len().min(3)].join(", "), if existing.len() > 3 { ", ..." } else { "" });
        }
    }
    let mut written = Vec::new();
    for p in &report.specs {
        let path = out.join(&p.file);
        let (text, changes) = if merge && path.exists() {
            let loaded = crate::spec::load_file(&path, None).map_err(|f| {
                anyhow::anyhow!(
                    "{}: cannot merge into it: {}",
                    path.display(),
                    f.first().map(|x| x.message.clone()).unwrap_or_default()
                )
            })?;
            let (merged, changes) = super::merge::merge(&loaded.spec, &p.spec);
            let header = vec![format!(
                "Merged by `caas schema pull --merge` with {}.",
                p.source
            )];
            (
                emit::spec_yaml(&merged, &header, &BTreeMap::new()),
                Some(changes),
            )
        } else {
            (p.text.clone(), None)
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        put(&path, &text, changes.is_some())?;
        written.push(Written { path, changes });
    }
    let schema = out.join("caas-spec.schema.json");
    if !schema.exists() {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        std::fs::write(&schema, crate::spec::meta_schema_json())
            .with_context(|| format!("writing {}", schema.display()))?;
    }
    Ok(written)
}

/// Write a file whole or not at all: the text goes to a temporary file beside it first. A
/// new file is linked into place only if nothing is there (another pull racing this one
/// gets an error, not a mix); a merged one replaces the old by rename.
fn put(path: &Path, text: &str, replace: bool) -> Result<()> {
    let tmp = path.with_extension(format!("yaml.tmp-{}", std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    let placed = if replace {
        std::fs::rename(&tmp, path)
    } else {
        std::fs::hard_link(&tmp, path)
    };
    let _ = std::fs::remove_file(&tmp);
    placed.with_context(|| {
        format!(
            "writing {} (another pull may have written it meanwhile; rerun with --merge)",
            path.display()
        )
    })
}

/// A file written, and for a merge, what the live side changed.
#[derive(Debug, Serialize)]
pub struct Written {
    pub path: PathBuf,
    pub changes: Option<Vec<String>>,
}

/// Register the tenants found that the registry does not have.
pub async fn register(
    conn: &Connection,
    config: &Config,
    tenants: &[FoundTenant],
) -> Result<Vec<String>> {
    let db = conn.client.database(&config.databases.platform);
    let mut done = Vec::new();
    let registry = db.collection::<bson::Document>(crate::fleet::registry::REGISTRY);
    for t in tenants.iter().filter(|t| !t.registered) {
        if let Err(e) =
            crate::fleet::registry::add(&db, config, None, &t.id, t.tier, Default::default()).await
        {
            // Registered meanwhile (another pull, `tenant add`): not an error here.
            let now = registry.find_one(bson::doc! { "tenant_id": &t.id }).await;
            if matches!(now, Ok(Some(_))) {
                continue;
            }
            return Err(e);
        }
        done.push(t.id.clone());
    }
    Ok(done)
}
