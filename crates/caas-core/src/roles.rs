//! Least privilege (seed 000: the service that owns the business responsibility owns the
//! data): one MongoDB custom role per service, whose privileges cover exactly the physical
//! namespaces it may touch in every target of every tier, with only the actions it needs.
//! Pure planning here; the CLI reads `rolesInfo` and runs `createRole`/`updateRole`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use bson::{doc, Bson, Document};
use mongodb::Client;
use serde::Serialize;

use crate::config::Config;
use crate::spec::{AccessMode, CollectionSpec};
use crate::tenancy::Target;

const READ: &[&str] = &["find"];
const WRITE: &[&str] = &["find", "insert", "remove", "update"];

/// A role as caas wants it (or as the server has it), in canonical order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    pub name: String,
    /// (database, collection) -> sorted actions.
    pub privileges: BTreeMap<(String, String), BTreeSet<String>>,
}

impl Role {
    fn to_privileges(&self) -> Vec<Document> {
        self.privileges
            .iter()
            .map(|((db, coll), actions)| doc! { "resource": { "db": db, "collection": coll }, "actions": actions.iter().cloned().collect::<Vec<_>>() })
            .collect()
    }
}

/// The role name of a service: `{prefix}{service}` with anything but `[A-Za-z0-9_-]` as `_`.
pub fn role_name(config: &Config, service: &str) -> String {
    let clean: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}{clean}", config.roles.prefix)
}

/// Every service's role over every target: owners write, `access` grants read or write.
pub fn desired(specs: &[&CollectionSpec], targets: &[Target], config: &Config) -> Vec<Role> {
    let mut roles: BTreeMap<String, Role> = BTreeMap::new();
    for spec in specs {
        let mut grants: Vec<(&str, &[&str])> = Vec::new();
        if let Some(owner) = &spec.owner {
            grants.push((owner, WRITE));
        }
        for a in &spec.access {
            grants.push((
                &a.service,
                if a.mode == AccessMode::Write {
                    WRITE
                } else {
                    READ
                },
            ));
        }
        for target in targets.iter().filter(|t| t.holds(spec)) {
            let p = target.place(spec, &config.databases);
            for (service, actions) in &grants {
                let name = role_name(config, service);
                let role = roles.entry(name.clone()).or_insert_with(|| Role {
                    name,
                    privileges: BTreeMap::new(),
                });
                role.privileges
                    .entry((p.database.clone(), p.collection.clone()))
                    .or_default()
                    .extend(actions.iter().map(|a| a.to_string()));
            }
        }
    }
    roles.into_values().collect()
}

/// The server's custom roles in `admin` whose names start with the prefix (one round trip).
pub async fn live(client: &Client, config: &Config) -> Result<Vec<Role>> {
    let reply = client
        .database("admin")
        .run_command(doc! { "rolesInfo": 1, "showPrivileges": true, "showBuiltinRoles": false })
        .await
        .context("reading roles (rolesInfo on admin; the connection needs the userAdmin role)")?;
    let mut out = Vec::new();
    for r in reply
        .get_array("roles")
        .map(|a| a.iter().filter_map(Bson::as_document).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let name = r.get_str("role").unwrap_or("").to_owned();
        if !name.starts_with(&config.roles.prefix) || r.get_str("db").unwrap_or("admin") != "admin"
        {
            continue;
        }
        let mut privileges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for p in r
            .get_array("privileges")
            .map(|a| a.iter().filter_map(Bson::as_document).collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let res = p.get_document("resource").cloned().unwrap_or_default();
            let key = (
                res.get_str("db").unwrap_or("").to_owned(),
                res.get_str("collection").unwrap_or("").to_owned(),
            );
            let actions = p
                .get_array("actions")
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            privileges.entry(key).or_default().extend(actions);
        }
        out.push(Role { name, privileges });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A change to bring the server's roles in line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum RoleChange {
    Create {
        role: String,
        namespaces: usize,
    },
    Update {
        role: String,
        added: Vec<String>,
        removed: Vec<String>,
        changed: Vec<String>,
    },
    /// A role with the prefix that no spec's service needs (dropped only with `--prune`).
    Undeclared {
        role: String,
    },
}

impl RoleChange {
    pub fn role(&self) -> &str {
        match self {
            RoleChange::Create { role, .. }
            | RoleChange::Update { role, .. }
            | RoleChange::Undeclared { role } => role,
        }
    }

    pub fn summary(&self) -> String {
        let show = |v: &[String]| {
            if v.len() > 3 {
                format!("{} and {} more", v[..3].join(", "), v.len() - 3)
            } else {
                v.join(", ")
            }
        };
        match self {
            RoleChange::Create { namespaces, .. } => {
                format!("create role with privileges on {namespaces} namespace(s)")
            }
            RoleChange::Update {
                added,
                removed,
                changed,
                ..
            } => {
                let mut parts = Vec::new();
                if !added.is_empty() {
                    parts.push(format!("grant {}", show(added)));
                }
                if !removed.is_empty() {
                    parts.push(format!("revoke {}", show(removed)));
                }
                if !changed.is_empty() {
                    parts.push(format!("change actions on {}", show(changed)));
                }
                format!("update role: {}", parts.join("; "))
            }
            RoleChange::Undeclared { .. } => {
                "undeclared role (no service in the specs); --prune drops it".into()
            }
        }
    }
}

/// Diff desired roles against live ones (pure).
pub fn plan(desired: &[Role], live: &[Role]) -> Vec<RoleChange> {
    let ns = |(db, c): &(String, String)| format!("{db}.{c}");
    let mut out = Vec::new();
    for want in desired {
        match live.iter().find(|l| l.name == want.name) {
            None => out.push(RoleChange::Create {
                role: want.name.clone(),
                namespaces: want.privileges.len(),
            }),
            Some(have) if have.privileges != want.privileges => {
                let added = want
                    .privileges
                    .keys()
                    .filter(|k| !have.privileges.contains_key(*k))
                    .map(ns)
                    .collect();
                let removed = have
                    .privileges
                    .keys()
                    .filter(|k| !want.privileges.contains_key(*k))
                    .map(ns)
                    .collect();
                let changed = want
                    .privileges
                    .iter()
                    .filter(|(k, a)| have.privileges.get(*k).is_some_and(|h| h != *a))
                    .map(|(k, _)| ns(k))
                    .collect();
                out.push(RoleChange::Update {
                    role: want.name.clone(),
                    added,
                    removed,
                    changed,
                });
            }
            Some(_) => {}
        }
    }
    for have in live {
        if !desired.iter().any(|d| d.name == have.name) {
            out.push(RoleChange::Undeclared {
                role: have.name.clone(),
            });
        }
    }
    out
}

/// Roles for the whole registered fleet: what the specs want, and the changes from what
/// the server has.
#[derive(Debug, Serialize)]
pub struct FleetRoles {
    pub desired: Vec<Role>,
    pub changes: Vec<RoleChange>,
    /// The caas roles the server has now.
    pub live: Vec<Role>,
    /// Targets the roles cover.
    pub targets: usize,
}

/// Read the registry and the server's roles, and plan.
pub async fn plan_fleet(
    client: &Client,
    config: &Config,
    specs: &[&CollectionSpec],
) -> Result<FleetRoles> {
    let platform = client.database(&config.databases.platform);
    let tenants = crate::fleet::registry::list(&platform, config).await?;
    let targets = crate::fleet::registry::resolve_targets(&tenants, config, &Default::default())?;
    let desired = desired(specs, &targets, config);
    let live = live(client, config).await?;
    let changes = plan(&desired, &live);
    Ok(FleetRoles {
        desired,
        changes,
        live,
        targets: targets.len(),
    })
}

/// Execute a plan: createRole / updateRole (privileges replaced whole), dropRole with `prune`.
pub async fn apply(
    client: &Client,
    desired: &[Role],
    changes: &[RoleChange],
    prune: bool,
) -> Result<usize> {
    let admin = client.database("admin");
    let mut done = 0;
    for c in changes {
        let role = desired.iter().find(|r| r.name == c.role());
        match (c, role) {
            (RoleChange::Create { .. }, Some(r)) => {
                admin.run_command(doc! { "createRole": &r.name, "privileges": r.to_privileges(), "roles": [] }).await.with_context(|| format!("createRole {}", r.name))?;
            }
            (RoleChange::Update { .. }, Some(r)) => {
                admin.run_command(doc! { "updateRole": &r.name, "privileges": r.to_privileges(), "roles": [] }).await.with_context(|| format!("updateRole {}", r.name))?;
            }
            (RoleChange::Undeclared { role }, _) if prune => {
                admin
                    .run_command(doc! { "dropRole": role })
                    .await
                    .with_context(|| format!("dropRole {role}"))?;
            }
            _ => continue,
        }
        done += 1;
    }
    Ok(done)
}

/// Create or update a database user (in `admin`, SCRAM-SHA-256) holding a service's role.
/// The password comes from the environment and never appears in arguments or output.
pub async fn upsert_user(
    client: &Client,
    role: &str,
    username: &str,
    password: &str,
) -> Result<&'static str> {
    check_username(username)?;
    let admin = client.database("admin");
    let info = admin
        .run_command(doc! { "usersInfo": { "user": username, "db": "admin" } })
        .await
        .context("reading users (usersInfo)")?;
    let existing = info
        .get_array("users")
        .ok()
        .and_then(|u| u.first())
        .and_then(|u| u.as_document());
    let exists = existing.is_some();
    if let Some(user) = existing {
        let foreign = foreign_roles(user, role);
        if !foreign.is_empty() {
            bail!(
                "user `{username}` already exists with role(s) {} besides `{role}`; caas manages only users that hold nothing but their service's role, so it changed nothing (choose another --username, or remove those roles by hand if this user is really caas's)",
                foreign.join(", ")
            );
        }
    }
    let roles = vec![doc! { "role": role, "db": "admin" }];
    let result = if exists {
        admin.run_command(doc! { "updateUser": username, "pwd": password, "roles": roles, "mechanisms": ["SCRAM-SHA-256"] }).await
    } else {
        admin.run_command(doc! { "createUser": username, "pwd": password, "roles": roles, "mechanisms": ["SCRAM-SHA-256"] }).await
    };
    result.map_err(|e| {
        anyhow::anyhow!(
            "{} user {username}: {}",
            if exists { "updating" } else { "creating" },
            crate::base::redact::redact(&crate::base::driver::describe(&e))
                .replace(password, "****")
        )
    })?;
    Ok(if exists { "updated" } else { "created" })
}

/// Refuse user names caas must not manage, before anything is read or written.
pub fn check_username(username: &str) -> Result<()> {
    if username.is_empty() || username.contains(['\0', ':', '@', '/']) {
        bail!("user name `{username}` is not usable: no empty names, `:`, `@`, `/` or NUL");
    }
    if is_admin_like(username) {
        bail!("user `{username}` looks like an administrator; caas manages only service users it created, and will not change this one (choose another --username)");
    }
    Ok(())
}

/// Names an administrator account usually has: caas never takes them over.
fn is_admin_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "root",
        "admin",
        "administrator",
        "superuser",
        "__system",
        "dbadmin",
        "clusteradmin",
        "useradmin",
    ]
    .contains(&n.as_str())
}

/// The roles of a `usersInfo` user other than `role` in `admin`, as `role@db`.
fn foreign_roles(user: &Document, role: &str) -> Vec<String> {
    user.get_array("roles")
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r.as_document())
                .filter(|r| !(r.get_str("role") == Ok(role) && r.get_str("db") == Ok("admin")))
                .map(|r| {
                    format!(
                        "{}@{}",
                        r.get_str("role").unwrap_or("?"),
                        r.get_str("db").unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::{Layout, Tier};

    #[test]
    fn users_with_other_roles_or_admin_names_are_not_caas_users() {
        assert!(is_admin_like("root") && is_admin_like("Admin"));
        assert!(!is_admin_like("chat-service"));
        let mine = doc! { "user": "chat", "roles": [ { "role": "caas_svc_chat", "db": "admin" } ] };
        assert!(foreign_roles(&mine, "caas_svc_chat").is_empty());
        let root = doc! { "user": "ops", "roles": [ { "role": "root", "db": "admin" }, { "role": "caas_svc_chat", "db": "admin" } ] };
        assert_eq!(foreign_roles(&root, "caas_svc_chat"), ["root@admin"]);
    }

    fn spec(yaml: &str) -> CollectionSpec {
        serde_json::from_value(crate::base::yaml::parse(yaml).unwrap().value).unwrap()
    }

    #[test]
    fn owners_write_readers_read_on_every_target() {
        let config = Config::parse("", std::path::Path::new("caas.toml")).unwrap();
        let users = spec("collection: users\ndomain: saas\nowner: identity\naccess: [{service: chat, mode: read}]\nfields: {}\n");
        let keys = spec("collection: api_keys\ndomain: platform\nowner: platform\nfields: {}\n");
        let targets = vec![
            Target::platform(),
            Target::shared(),
            Target::for_tenant("acme", Tier::Pro, Layout::CollectionSet),
            Target::for_tenant("glob", Tier::Enterprise, Layout::Database),
        ];
        let roles = desired(&[&users, &keys], &targets, &config);
        let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["caas_svc_chat", "caas_svc_identity", "caas_svc_platform"]
        );
        let identity = &roles[1];
        let ns: Vec<String> = identity
            .privileges
            .keys()
            .map(|(d, c)| format!("{d}.{c}"))
            .collect();
        assert_eq!(
            ns,
            [
                "caas_glob.users",
                "caas_shared.acme_users",
                "caas_shared.users"
            ]
        );
        assert!(identity.privileges.values().all(|a| a
            .iter()
            .map(String::as_str)
            .eq(["find", "insert", "remove", "update"])));
        assert!(
            roles[0]
                .privileges
                .values()
                .all(|a| a.iter().map(String::as_str).eq(["find"])),
            "readers only find"
        );
        assert_eq!(
            roles[2].privileges.keys().next().unwrap(),
            &("caas_platform".to_string(), "api_keys".to_string())
        );
    }

    #[test]
    fn plan_sees_grants_revocations_and_action_changes() {
        let mk = |entries: &[(&str, &str, &[&str])]| Role {
            name: "caas_svc_x".into(),
            privileges: entries
                .iter()
                .map(|(d, c, a)| {
                    (
                        (d.to_string(), c.to_string()),
                        a.iter().map(|s| s.to_string()).collect(),
                    )
                })
                .collect(),
        };
        let want = mk(&[("db", "a", &["find"]), ("db", "b", &["find", "insert"])]);
        assert_eq!(
            plan(std::slice::from_ref(&want), std::slice::from_ref(&want)),
            vec![]
        );
        let have = mk(&[("db", "b", &["find"]), ("db", "c", &["find"])]);
        let changes = plan(std::slice::from_ref(&want), &[have]);
        assert_eq!(
            changes,
            vec![RoleChange::Update {
                role: "caas_svc_x".into(),
                added: vec!["db.a".into()],
                removed: vec!["db.c".into()],
                changed: vec!["db.b".into()]
            }]
        );
        let stray = Role {
            name: "caas_svc_old".into(),
            privileges: BTreeMap::new(),
        };
        assert_eq!(
            plan(&[], &[stray]),
            vec![RoleChange::Undeclared {
                role: "caas_svc_old".into()
            }]
        );
        assert_eq!(
            plan(std::slice::from_ref(&want), &[]),
            vec![RoleChange::Create {
                role: "caas_svc_x".into(),
                namespaces: 2
            }]
        );
    }

    #[test]
    fn role_names_are_safe() {
        let config = Config::parse(
            "[roles]\nprefix = \"t1_\"\n",
            std::path::Path::new("caas.toml"),
        )
        .unwrap();
        assert_eq!(
            role_name(&config, "billing service/v2"),
            "t1_billing_service_v2"
        );
    }
}
