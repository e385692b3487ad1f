//! MongoDB naming rules, and the tenant-id rule that keeps every derived name valid.

/// Tenant ids: lowercase letters, digits, `_` and `-`, 2 to 40 characters, starting with a
/// letter. Lowercase only, because MongoDB refuses two databases whose names differ only
/// in case; 40 characters keep `caas_{tenant_id}` under the 63-byte database-name limit
/// and leave room for collection names in the namespace.
pub const TENANT_ID_PATTERN: &str = "^[a-z][a-z0-9_-]{1,39}$";

/// A name caas refuses (a tenant id, a database or a collection name), with why and what
/// would be valid. Callers show it as is; it names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidName(pub String);

impl From<InvalidName> for String {
    fn from(e: InvalidName) -> String {
        e.0
    }
}

const MAX_TENANT_ID: usize = 40;
const MAX_DATABASE_NAME: usize = 63;
const MAX_NAMESPACE: usize = 255;

/// Why a tenant id cannot be used, with what would be valid.
fn check_tenant_id_why(id: &str) -> Result<(), String> {
    let rule = "a tenant id is 2 to 40 characters of a-z, 0-9, `_` and `-`, starting with a letter (e.g. `acme-corp`)";
    if id.is_empty() {
        return Err(format!("the tenant id is empty; {rule}"));
    }
    if id.len() > MAX_TENANT_ID {
        return Err(format!(
            "tenant id `{}` is {} characters long; {rule}",
            printable(id),
            id.len()
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
    {
        let what = match bad {
            '\0' => "a NUL byte".to_string(),
            ' ' => "a space".to_string(),
            c if c.is_ascii_uppercase() => format!("the uppercase letter `{c}` (use lowercase)"),
            c if c.is_control() => format!("the control character U+{:04X}", c as u32),
            c => format!("`{c}`"),
        };
        return Err(format!(
            "tenant id `{}` contains {what}; {rule}",
            printable(id)
        ));
    }
    if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("tenant id `{id}` must start with a letter; {rule}"));
    }
    if id.len() < 2 {
        return Err(format!("tenant id `{id}` is too short; {rule}"));
    }
    Ok(())
}

/// Show control characters as escapes so an error message stays on one line.
fn printable(s: &str) -> String {
    s.chars().flat_map(char::escape_default).collect()
}

/// MongoDB database-name rules (the stricter Windows set, so a spec works everywhere).
fn check_database_name_why(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("database name is empty".into());
    }
    if name.len() > MAX_DATABASE_NAME {
        return Err(format!(
            "database name `{name}` is longer than {MAX_DATABASE_NAME} bytes"
        ));
    }
    if let Some(c) = name.chars().find(|c| "/\\. \"$*<>:|?\0".contains(*c)) {
        return Err(format!(
            "database name `{}` contains {:?}, which MongoDB does not allow in database names",
            printable(name),
            c
        ));
    }
    if matches!(name, "admin" | "local" | "config") {
        return Err(format!("`{name}` is a reserved MongoDB database"));
    }
    Ok(())
}

/// MongoDB collection-name rules, and the namespace length with its database.
fn check_collection_name_why(database: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("collection name is empty".into());
    }
    if name.contains('$') {
        return Err(format!("collection name `{name}` contains `$`"));
    }
    if name.contains('\0') {
        return Err("collection name contains a NUL byte".into());
    }
    if name.starts_with("system.") {
        return Err(format!(
            "collection names starting with `system.` are reserved (`{name}`)"
        ));
    }
    if name.starts_with('.') || name.ends_with('.') {
        return Err(format!("collection name `{name}` starts or ends with `.`"));
    }
    let ns = database.len() + 1 + name.len();
    if ns > MAX_NAMESPACE {
        return Err(format!(
            "namespace `{database}.{name}` is {ns} bytes; MongoDB's limit is {MAX_NAMESPACE}"
        ));
    }
    Ok(())
}

/// Whether a tenant id can be used (see [`TENANT_ID_PATTERN`]).
pub fn check_tenant_id(id: &str) -> Result<(), InvalidName> {
    check_tenant_id_why(id).map_err(InvalidName)
}

/// A registry `region`: 1-64 of a-z, 0-9, `-`, `_`, starting with a letter or digit (the
/// catalogue's regions are `eu-central`, `us-east`, ...). A region that `sharding.zones`
/// does not map is accepted: its tenants are placed wherever the balancer puts them.
pub fn check_region(region: &str) -> Result<(), InvalidName> {
    let ok = (1..=64).contains(&region.len())
        && region.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(InvalidName(format!(
            "region `{}` is not a region name: 1-64 of a-z, 0-9, `-`, `_` (like `eu-central`); the zones of regions are in [sharding.zones] of caas.toml",
            region.chars().take(80).collect::<String>().escape_debug()
        )))
    }
}

/// Whether MongoDB (on every platform) accepts this database name.
pub fn check_database_name(name: &str) -> Result<(), InvalidName> {
    check_database_name_why(name).map_err(InvalidName)
}

/// Whether MongoDB accepts this collection name in this database (namespace length too).
pub fn check_collection_name(database: &str, name: &str) -> Result<(), InvalidName> {
    check_collection_name_why(database, name).map_err(InvalidName)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_is_a_plain_name() {
        for ok in ["eu-central", "us_east_1", "ap2"] {
            assert_eq!(check_region(ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            "EU",
            "eu central",
            "-eu",
            "eu.central",
            "eu/../x",
            "é",
            long.as_str(),
        ] {
            let e = check_region(bad).unwrap_err().0;
            assert!(
                e.contains("not a region name") && e.len() < 300,
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn good_tenant_ids() {
        for id in ["acme", "acme-corp", "a1", "globex_eu", &"a".repeat(40)] {
            assert_eq!(check_tenant_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn bad_tenant_ids_say_why() {
        let cases = [
            ("", "is empty"),
            ("a", "too short"),
            ("acme$", "contains `$`"),
            ("ac.me", "contains `.`"),
            ("ac/me", "contains `/`"),
            ("ac\\me", "contains `\\`"),
            ("ac me", "contains a space"),
            ("ac\0me", "contains a NUL byte"),
            ("Acme", "uppercase letter `A`"),
            ("1acme", "must start with a letter"),
            ("-acme", "must start with a letter"),
            (&"a".repeat(41), "41 characters long"),
        ];
        for (id, want) in cases {
            let err = check_tenant_id(id).unwrap_err().0;
            assert!(err.contains(want), "{id:?}: {err}");
            assert!(err.contains("2 to 40 characters"), "{id:?}: {err}");
        }
    }

    #[test]
    fn pattern_agrees_with_checker() {
        let re = regex::Regex::new(TENANT_ID_PATTERN).unwrap();
        for id in [
            "acme",
            "a-b_c9",
            "A",
            "9x",
            "x",
            "ab$",
            &"b".repeat(40),
            &"b".repeat(41),
        ] {
            assert_eq!(re.is_match(id), check_tenant_id(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn longest_tenant_gives_valid_names() {
        let id = "a".repeat(40);
        check_database_name(&format!("caas_{id}")).unwrap();
        check_collection_name("caas_shared", &format!("{id}_user_relationships")).unwrap();
    }

    #[test]
    fn collection_names() {
        assert!(check_collection_name("db", "system.users")
            .unwrap_err()
            .0
            .contains("reserved"));
        assert!(check_collection_name("db", "a$b")
            .unwrap_err()
            .0
            .contains("`$`"));
        assert!(check_collection_name("db", &"x".repeat(260))
            .unwrap_err()
            .0
            .contains("255"));
        assert!(check_database_name("admin")
            .unwrap_err()
            .0
            .contains("reserved"));
    }
}
