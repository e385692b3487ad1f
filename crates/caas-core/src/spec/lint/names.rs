//! Names and placement: the file agrees with its collection and its folder with the
//! domain, collection names fit every tier's prefix, service names can become roles.

use super::*;
use crate::spec::model::*;
use crate::tenancy::check_collection_name;

impl Linter<'_> {
    /// The folder a spec sits in must agree with its domain; the file name with its collection.
    pub(super) fn placement(&mut self) {
        let spec = self.spec;
        if let Some(rel) = &self.loaded.relative {
            let folder = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or("");
            let is_nested = rel.components().count() > 1;
            if is_nested && folder != spec.domain.as_str() {
                self.error(
                    "domain-folder",
                    self.value("/domain"),
                    "/domain",
                    format!("domain `{}` contradicts the folder `{folder}/`", spec.domain.as_str()),
                    format!(
                        "move the file to `{}/`, or set `domain: {folder}` if that is where it belongs",
                        spec.domain.as_str()
                    ),
                );
            }
        }
        let stem = self
            .loaded
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if stem != spec.collection {
            self.error(
                "file-name",
                self.value("/collection"),
                "/collection",
                format!(
                    "collection `{}` is defined in a file named `{stem}`",
                    spec.collection
                ),
                format!(
                    "rename the file to `{}.yaml` (one collection per file, named after it)",
                    spec.collection
                ),
            );
        }
        if spec.domain == Domain::Saas && spec.tenant_scoped == Some(false) {
            self.error(
                "placement",
                self.value("/tenant_scoped"),
                "/tenant_scoped",
                "a `saas` collection follows its tenant's tier, so it must be tenant-scoped".into(),
                "remove `tenant_scoped: false`, or move the collection to the platform domain",
            );
        }
    }

    pub(super) fn names(&mut self) {
        let spec = self.spec;
        let db = match spec.domain {
            Domain::Saas => "caas_shared",
            _ => "caas_platform",
        };
        let longest = if spec.domain == Domain::Saas {
            format!("{}{}", "t".repeat(LONGEST_SET_PREFIX), spec.collection)
        } else {
            spec.collection.clone()
        };
        for name in [&spec.collection, &longest] {
            if let Err(why) = check_collection_name(db, name) {
                self.error(
                    "invalid-name",
                    self.value("/collection"),
                    "/collection",
                    format!("invalid collection name: {why}"),
                    "use letters, digits and `_`; no `$`, no `system.` prefix, short enough for a Pro prefix",
                );
                break;
            }
        }
        if !spec
            .collection
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && check_collection_name(db, &spec.collection).is_ok()
        {
            self.warning(
                "name-style",
                self.value("/collection"),
                "/collection",
                format!(
                    "collection name `{}` has characters other than letters, digits and `_`",
                    spec.collection
                ),
                "shells and drivers need quoting for such names; prefer snake_case",
            );
        }
    }

    /// `owner` and `access` name services: roles and users are derived from them, so an
    /// empty or malformed name would become a malformed role.
    pub(super) fn services(&mut self) {
        let mut names: Vec<(String, &str)> = Vec::new();
        if let Some(o) = &self.spec.owner {
            names.push(("/owner".into(), o.as_str()));
        }
        for (i, a) in self.spec.access.iter().enumerate() {
            names.push((format!("/access/{i}/service"), a.service.as_str()));
        }
        for (p, name) in names {
            if let Some(why) = bad_service_name(name) {
                self.error(
                    "service-name",
                    self.value(&p),
                    &p,
                    format!("service `{name}` {why}"),
                    "name the service in lowercase letters, digits and `-`, e.g. `billing-service`",
                );
            }
        }
    }
}

/// Why a service name is unusable, if it is.
fn bad_service_name(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        return Some("is empty");
    }
    if name.len() > 64 {
        return Some("is longer than 64 characters");
    }
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    (!ok).then_some("is not a service name")
}

#[cfg(test)]
mod tests {
    use super::super::{lint_text, places};

    #[test]
    fn file_folder_and_tenant_scope_must_agree_with_the_spec() {
        let text = "collection: users\ndomain: saas\ntenant_scoped: false\nfields:\n  a: { type: string }\n";
        let got = places(&lint_text("billing/people.yaml", text));
        assert!(got.contains(&("domain-folder", 2, 9)), "{got:?}");
        assert!(got.contains(&("file-name", 1, 13)), "{got:?}");
        assert!(got.contains(&("placement", 3, 16)), "{got:?}");
    }

    #[test]
    fn service_names_must_be_usable_as_role_names() {
        let text = "collection: users\ndomain: saas\nowner: 'Billing Service'\nfields:\n  a: { type: string }\n";
        assert_eq!(
            places(&lint_text("saas/users.yaml", text)),
            vec![("service-name", 3, 8)]
        );
        assert_eq!(super::bad_service_name("billing-service"), None);
        assert!(super::bad_service_name("").is_some());
    }
}
