//! Findings: what lint (and loading) report about a file, with the place and the fix.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::base::yaml::Pos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in one file, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable identifier of the check, e.g. `unknown-key`.
    pub code: &'static str,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the spec element, e.g. `fields.email.pattern`.
    pub path: String,
    pub message: String,
    pub fix: String,
}

impl Finding {
    pub fn error(
        code: &'static str,
        file: impl Into<PathBuf>,
        pos: Pos,
        path: impl Into<String>,
    ) -> FindingBuilder {
        FindingBuilder(Finding {
            severity: Severity::Error,
            code,
            file: file.into(),
            line: pos.line,
            column: pos.col,
            path: path.into(),
            message: String::new(),
            fix: String::new(),
        })
    }

    pub fn warning(
        code: &'static str,
        file: impl Into<PathBuf>,
        pos: Pos,
        path: impl Into<String>,
    ) -> FindingBuilder {
        let mut b = Finding::error(code, file, pos, path);
        b.0.severity = Severity::Warning;
        b
    }
}

/// Finishes a finding with its message and fix.
pub struct FindingBuilder(Finding);

impl FindingBuilder {
    pub fn says(mut self, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        self.0.message = message.into();
        self.0.fix = fix.into();
        self.0
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {sev}[{}]: {}",
            self.file.display(),
            self.line,
            self.column,
            self.code,
            self.message
        )?;
        if !self.path.is_empty() {
            write!(f, "\n  at: {}", self.path)?;
        }
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}

/// Convert a JSON pointer (`/fields/email/type`) into the dotted path users read
/// (`fields.email.type`, `indexes[0].keys`).
pub fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths() {
        assert_eq!(dotted("/fields/email/type"), "fields.email.type");
        assert_eq!(dotted("/indexes/0/keys/a~1b"), "indexes[0].keys.a/b");
        assert_eq!(dotted(""), "");
    }
}

/// "did you mean `x`?" for serde's `unknown variant `y`, expected one of `a`, `b`` and
/// `unknown field ...` messages, when one of the expected names is close.
pub fn did_you_mean(serde_message: &str) -> Option<String> {
    let rest = serde_message
        .strip_prefix("unknown variant `")
        .or_else(|| serde_message.strip_prefix("unknown field `"))?;
    let (word, expected) = rest.split_once('`')?;
    let candidates: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    closest_name(word, &candidates).map(|best| format!("did you mean `{best}`?"))
}

/// The closest candidate by edit distance, if it is close enough to be a typo.
pub fn closest_name(word: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

#[cfg(test)]
mod did_you_mean_tests {
    use super::did_you_mean;

    #[test]
    fn suggests_the_close_name() {
        assert_eq!(
            did_you_mean("unknown variant `rename_feild`, expected one of `update_many`, `rename_field`, `backfill`").as_deref(),
            Some("did you mean `rename_field`?")
        );
        assert_eq!(
            did_you_mean(
                "unknown field `conection`, expected one of `project`, `connection`, `databases`"
            )
            .as_deref(),
            Some("did you mean `connection`?")
        );
        assert_eq!(did_you_mean("unknown field `zzz`, expected `a`"), None);
        assert_eq!(did_you_mean("missing field `x`"), None);
    }

    #[test]
    fn closest_is_conservative() {
        let c = vec!["string".to_string(), "int".to_string()];
        assert_eq!(super::closest_name("strng", &c), Some("string".into()));
        assert_eq!(super::closest_name("zzzzzzzz", &c), None);
    }
}
