//! `caas init`: a new project's files. The plan ([`files`]) is pure; [`write`] refuses to
//! touch a folder that already holds any of them, so an existing project is never
//! overwritten, and writes nothing at all when it refuses.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::CONFIG_FILE;

/// One file of the skeleton, relative to the project folder.
#[derive(Debug, Clone)]
pub struct SkeletonFile {
    pub path: PathBuf,
    pub text: String,
}

/// The files of a new project: caas.toml with every key commented, one example spec per
/// domain, the editor schemas, a seed file, an example CI job; `migrations/` is created
/// empty. Without `examples`, the specs are only the tenant registry's (for a project that
/// `caas schema pull` fills from an existing deployment) and there is no seed file.
pub fn files(examples: bool) -> Vec<SkeletonFile> {
    let spec = |domain: &str, name: &str, text: &str| SkeletonFile {
        path: PathBuf::from(format!("schemas/{domain}/{name}.yaml")),
        text: text.to_owned(),
    };
    let mut out = vec![
        SkeletonFile {
            path: CONFIG_FILE.into(),
            text: include_str!("templates/caas.toml").to_owned(),
        },
        spec(
            "platform",
            "announcements",
            include_str!("templates/announcements.yaml"),
        ),
        // The tenant registry caas reads to find every tenant's target.
        spec(
            "platform",
            "saas_clients",
            include_str!("templates/saas_clients.yaml"),
        ),
        spec(
            "billing",
            "payments",
            include_str!("templates/payments.yaml"),
        ),
        spec(
            "analytics",
            "page_views",
            include_str!("templates/page_views.yaml"),
        ),
        spec(
            "security",
            "login_attempts",
            include_str!("templates/login_attempts.yaml"),
        ),
        spec("saas", "notes", include_str!("templates/notes.yaml")),
        SkeletonFile {
            path: "seeds/demo.yaml".into(),
            text: include_str!("templates/demo.yaml").to_owned(),
        },
        SkeletonFile {
            path: "ci/caas.yml".into(),
            text: include_str!("templates/ci.yml").to_owned(),
        },
    ];
    if !examples {
        out.retain(|f| {
            f.path.ends_with("saas_clients.yaml")
                || !(f.path.starts_with("schemas") || f.path.starts_with("seeds"))
        });
    }
    out.extend(crate::schemas::all().into_iter().map(|s| SkeletonFile {
        path: s.file.into(),
        text: s.text,
    }));
    out
}

/// The folders a new project has even when empty.
pub const FOLDERS: &[&str] = &["migrations"];

/// Write the skeleton into `dir` (created if missing). Refuses, writing nothing, when the
/// folder already holds a caas.toml or any file of the skeleton.
pub fn write(dir: &Path, examples: bool) -> Result<Vec<PathBuf>> {
    let files = files(examples);
    let existing: Vec<String> = files
        .iter()
        .map(|f| dir.join(&f.path))
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        let more = match existing.len() {
            n if n > 3 => format!(" and {} more", n - 3),
            _ => String::new(),
        };
        bail!(
            "{} already holds a caas project (or files init would overwrite): {}{more}\n  fix: run `caas init` in an empty folder, or `caas init <new folder>`; nothing was written",
            dir.display(),
            existing[..existing.len().min(3)].join(", ")
        );
    }
    let mut written = Vec::new();
    for f in &files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, &f.text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    for folder in FOLDERS {
        let path = dir.join(folder);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skeleton_lints_clean_and_is_never_written_twice() {
        let dir = tempfile::tempdir().unwrap();
        let written = write(dir.path(), true).unwrap();
        assert!(written.iter().any(|p| p.ends_with("caas.toml")));
        let config = crate::config::Config::load(dir.path(), None).unwrap();
        let report = crate::project::lint(&config, &[]).unwrap();
        assert_eq!(
            (report.files, report.errors, report.warnings),
            (6, 0, 0),
            "{:#?}",
            report.findings
        );
        let again = write(dir.path(), false).unwrap_err().to_string();
        assert!(
            again.contains("already holds a caas project") && again.contains("caas.toml"),
            "{again}"
        );
    }

    #[test]
    fn a_folder_with_one_clashing_file_gets_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("seeds")).unwrap();
        std::fs::write(dir.path().join("seeds/demo.yaml"), "mine").unwrap();
        assert!(write(dir.path(), true).is_err());
        assert!(!dir.path().join(CONFIG_FILE).exists(), "nothing written");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("seeds/demo.yaml")).unwrap(),
            "mine"
        );
    }
}
