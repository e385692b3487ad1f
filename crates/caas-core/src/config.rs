//! `caas.toml`: where specs and migrations live, which database each domain uses, and how
//! each tenant tier is laid out. Every key has a default taken from seed 001, so an empty
//! file (or none at all) describes the CAAS platform.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::tenancy::Databases;
use crate::tenancy::{Layout, Tier};

pub const CONFIG_FILE: &str = "caas.toml";

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub project: ProjectPaths,
    #[serde(default)]
    pub databases: Databases,
    #[serde(default)]
    pub tiers: Tiers,
    #[serde(default)]
    pub connection: Connection,
    #[serde(default)]
    pub roles: Roles,
    #[serde(default)]
    pub lifecycle: Lifecycle,
    #[serde(default)]
    pub sharding: Sharding,
    /// Directory the config was loaded from; relative paths resolve against it.
    #[serde(skip)]
    pub root: PathBuf,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPaths {
    /// Spec directory, relative to the project root.
    #[serde(default = "default_specs")]
    pub specs: PathBuf,
    /// Migration directory, relative to the project root.
    #[serde(default = "default_migrations")]
    pub migrations: PathBuf,
}

impl Default for ProjectPaths {
    fn default() -> Self {
        ProjectPaths {
            specs: default_specs(),
            migrations: default_migrations(),
        }
    }
}

fn default_specs() -> PathBuf {
    "schemas".into()
}
fn default_migrations() -> PathBuf {
    "migrations".into()
}

/// The layout of each tier.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tiers {
    #[serde(default = "shared")]
    pub free: Layout,
    #[serde(default = "shared")]
    pub starter: Layout,
    #[serde(default = "collection_set")]
    pub pro: Layout,
    #[serde(default = "database")]
    pub enterprise: Layout,
}

impl Default for Tiers {
    fn default() -> Self {
        Tiers {
            free: Layout::Shared,
            starter: Layout::Shared,
            pro: Layout::CollectionSet,
            enterprise: Layout::Database,
        }
    }
}

fn shared() -> Layout {
    Layout::Shared
}
fn collection_set() -> Layout {
    Layout::CollectionSet
}
fn database() -> Layout {
    Layout::Database
}

impl Tiers {
    pub fn layout(&self, tier: Tier) -> Layout {
        match tier {
            Tier::Free => self.free,
            Tier::Starter => self.starter,
            Tier::Pro => self.pro,
            Tier::Enterprise => self.enterprise,
        }
    }
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// Connection string; `--uri` and `MONGODB_URI` take precedence.
    pub uri: Option<String>,
    /// Marks this environment as production: `caas seed` refuses to run without `--force`.
    #[serde(default)]
    pub production: bool,
    /// Warn when collections plus indexes pass this many (Atlas advises about 10,000).
    #[serde(default = "default_budget")]
    pub namespace_budget: u64,
}

fn default_budget() -> u64 {
    10_000
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            uri: None,
            production: false,
            namespace_budget: default_budget(),
        }
    }
}

/// Custom roles (`caas roles`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Roles {
    /// Role names are `{prefix}{service}`; roles with the prefix belong to caas.
    #[serde(default = "default_role_prefix")]
    pub prefix: String,
}

impl Default for Roles {
    fn default() -> Self {
        Roles {
            prefix: default_role_prefix(),
        }
    }
}

fn default_role_prefix() -> String {
    "caas_svc_".into()
}

/// Tenant moves (`caas tenant move`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    /// Hours a moved tenant's old location is kept (fenced, read-only) after the flip, for
    /// a look back; after them `caas tenant move --finish-due` (or the tenant's next move)
    /// removes it. 0: removed at the flip. `--finish` removes it at once.
    #[serde(default = "default_keep_source_hours")]
    pub keep_source_hours: u64,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            keep_source_hours: default_keep_source_hours(),
        }
    }
}

fn default_keep_source_hours() -> u64 {
    168
}

/// A sharded cluster's zones (ignored on a replica set).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sharding {
    /// The zone of each registry `region` (`eu-central = "EU"`): a shared-tier tenant's
    /// key range goes to its region's zone, a Pro set or Enterprise database to a shard
    /// of that zone. A region without a zone is placed wherever the balancer puts it.
    #[serde(default)]
    pub zones: BTreeMap<String, String>,
}

/// A config that could not be read, with the place and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}\n  fix: see the `caas.toml` section of the README for every key and its default")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("no caas.toml in {} or any folder above it\n  fix: run `caas init` to start a project here, or pass `-C <project folder>` to work on one elsewhere", start.display())]
    NoProject { start: PathBuf },
}

impl Config {
    /// Load `caas.toml` from `project_dir` (or an explicit file). A missing default file
    /// means "all defaults"; a missing explicit file is an error.
    pub fn load(project_dir: &Path, explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, required) = match explicit {
            Some(p) => (project_dir.join(p), true),
            None => (project_dir.join(CONFIG_FILE), false),
        };
        // A regular file of at most 1 MiB (a FIFO named caas.toml would block a read).
        if let Ok(meta) = std::fs::metadata(&path) {
            if !meta.is_file() || meta.len() > crate::base::files::MAX_FILE_BYTES {
                return Err(ConfigError::Read {
                    source: std::io::Error::other(if meta.is_file() {
                        "larger than 1 MiB; not read"
                    } else {
                        "not a regular file; not read"
                    }),
                    path,
                });
            }
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => String::new(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let mut config = Config::parse(&text, &path)?;
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // Show `schemas/x.yaml`, not `./schemas/x.yaml`, when run from the project root.
        config.root = if root == Path::new(".") {
            PathBuf::new()
        } else {
            root
        };
        Ok(config)
    }

    /// Find the project as git and cargo do: the nearest folder, from `start` upward, that
    /// holds `caas.toml`. With an explicit config file there is no search. Paths in messages
    /// stay relative when `start` is the current folder (`../../schemas/saas/users.yaml`).
    pub fn discover(start: &Path, explicit: Option<&Path>) -> Result<Config, ConfigError> {
        if explicit.is_some() {
            return Config::load(start, explicit);
        }
        let absolute = std::path::absolute(start).map_err(|source| ConfigError::Read {
            path: start.to_path_buf(),
            source,
        })?;
        let found = absolute
            .ancestors()
            .position(|dir| std::fs::symlink_metadata(dir.join(CONFIG_FILE)).is_ok());
        match found {
            Some(0) => Config::load(start, None),
            Some(depth) if start == Path::new(".") => {
                let up: PathBuf = std::iter::repeat_n("..", depth).collect();
                Config::load(&up, None)
            }
            Some(depth) => {
                let dir = absolute
                    .ancestors()
                    .nth(depth)
                    .expect("an ancestor we found");
                Config::load(dir, None)
            }
            None => Err(ConfigError::NoProject { start: absolute }),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            let source = text
                .lines()
                .nth(line.saturating_sub(1))
                .unwrap_or("")
                .trim_end();
            // The line is echoed to show the place, unless it may hold a credential.
            let shown = if source.contains("://") || source.to_ascii_lowercase().contains("uri") {
                "(the line holds a connection string; not shown)".to_string()
            } else {
                crate::base::redact::redact(source)
            };
            let hint = crate::base::diagnostic::did_you_mean(e.message())
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: format!("{}{hint}\n  {line} | {shown}", e.message()),
            }
        })?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if !self.databases.tenant.contains("{tenant_id}") {
            return Err(invalid(format!(
                "databases.tenant = {:?} must contain `{{tenant_id}}`, e.g. \"caas_{{tenant_id}}\"",
                self.databases.tenant
            )));
        }
        let set = &self.databases.collection_set;
        if !set.contains("{tenant_id}") || !set.contains("{collection}") {
            return Err(invalid(format!(
                "databases.collection_set = {set:?} must contain `{{tenant_id}}` and `{{collection}}`, e.g. \"{{tenant_id}}_{{collection}}\""
            )));
        }
        for (key, name) in self.fixed_databases() {
            if let Err(why) = crate::tenancy::check_database_name(name) {
                return Err(invalid(format!("databases.{key} = {name:?}: {why}")));
            }
        }
        Ok(())
    }

    fn fixed_databases(&self) -> BTreeMap<&'static str, &str> {
        let d = &self.databases;
        BTreeMap::from([
            ("platform", d.platform.as_str()),
            ("billing", d.billing.as_str()),
            ("analytics", d.analytics.as_str()),
            ("security", d.security.as_str()),
            ("shared", d.shared.as_str()),
        ])
    }

    pub fn specs_dir(&self) -> PathBuf {
        self.root.join(&self.project.specs)
    }

    pub fn migrations_dir(&self) -> PathBuf {
        self.root.join(&self.project.migrations)
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_is_found_upward_and_its_absence_named() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("schemas/saas");
        std::fs::create_dir_all(&deep).unwrap();
        let err = Config::discover(&deep, None).unwrap_err().to_string();
        assert!(
            err.contains("no caas.toml in") && err.contains("caas init") && err.contains("-C"),
            "{err}"
        );
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "[databases]\nshared = \"s\"\n",
        )
        .unwrap();
        let found = Config::discover(&deep, None).unwrap();
        assert_eq!(found.databases.shared, "s");
        assert_eq!(
            found.specs_dir().canonicalize().unwrap(),
            dir.path().join("schemas").canonicalize().unwrap()
        );
    }

    #[test]
    fn empty_config_is_seed_001() {
        let c = Config::parse("", Path::new("caas.toml")).unwrap();
        assert_eq!(c.databases.platform, "caas_platform");
        assert_eq!(c.databases.security, "caas_platform");
        assert_eq!(c.databases.tenant, "caas_{tenant_id}");
        assert_eq!(c.tiers.layout(Tier::Starter), Layout::Shared);
        assert_eq!(c.tiers.layout(Tier::Pro), Layout::CollectionSet);
        assert_eq!(c.tiers.layout(Tier::Enterprise), Layout::Database);
        assert_eq!(
            c.connection.namespace_budget, 10_000,
            "without a [connection] section too"
        );
        assert!(!c.connection.production);
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err =
            Config::parse("[databases]\nplatfrom = \"x\"\n", Path::new("caas.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("caas.toml:2:1: unknown field `platfrom`"),
            "{msg}"
        );
    }

    #[test]
    fn tenant_template_must_name_the_tenant() {
        let err = Config::parse("[databases]\ntenant = \"caas_t\"\n", Path::new("caas.toml"))
            .unwrap_err();
        assert!(
            err.to_string().contains("must contain `{tenant_id}`"),
            "{err}"
        );
    }

    #[test]
    fn invalid_database_name_is_refused() {
        let err = Config::parse(
            "[databases]\nbilling = \"caas billing\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("databases.billing"), "{err}");
    }
}
