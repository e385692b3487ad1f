//! The engine's errors, typed for what callers decide on: a lease held or lost, applied
//! migrations edited since, input refused (with its findings), a server's refusal (code,
//! namespace), no connection. Everything else is [`Error::Other`], with its context chain.
//! The command line turns these into messages and exit codes; tests match on variants.

use super::diagnostic::Finding;

/// Why a lease could not be had or kept.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("target {id} is locked by {holder}; waited {waited}s. If that process is gone, the lease expires by itself; `caas migrate unlock --force --owner <owner>` evicts a live one")]
    Held {
        id: String,
        holder: String,
        waited: u64,
    },
    #[error("lost the lease on {id} (token {token}): {why}; this runner wrote nothing after that and stopped. Rerun to continue from the last committed checkpoint")]
    Lost { id: String, token: i64, why: String },
}

/// An applied migration whose file changed since it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub target: String,
    pub version: u32,
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{} applied migration(s) were edited since they ran:\n  {}\nrestore the files, or accept the new content with `caas migrate repair --accept-checksum`", .0.len(), edited_list(.0))]
    EditedMigrations(Vec<Edited>),
    /// Input that fails its checks; nothing was done. `summary` says what and how many;
    /// the message lists the first `listed` findings.
    #[error("{summary}:\n{}", shown(.findings, *.listed))]
    Refused {
        summary: String,
        findings: Vec<Finding>,
        listed: usize,
    },
    /// The server refused a command or write.
    #[error("{namespace}: {message}")]
    Server {
        code: Option<i32>,
        namespace: String,
        message: String,
    },
    /// No server answered, or the connection string is unusable.
    #[error("{0}")]
    Connection(String),
    #[error(transparent)]
    Other(anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn edited_list(edited: &[Edited]) -> String {
    edited
        .iter()
        .map(|e| format!("V{:04}__{} on {}", e.version, e.name, e.target))
        .collect::<Vec<_>>()
        .join("\n  ")
}

fn shown(findings: &[Finding], listed: usize) -> String {
    findings
        .iter()
        .take(listed)
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A typed error that went through an `anyhow` chain inside the engine comes back out
/// typed; anything else stays [`Error::Other`].
impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Error {
        match e.downcast::<Error>() {
            Ok(typed) => typed,
            Err(e) => match e.downcast::<LockError>() {
                Ok(lock) => Error::Lock(lock),
                Err(e) => Error::Other(e),
            },
        }
    }
}

impl Error {
    /// The findings of refused input (empty for other errors).
    pub fn findings(&self) -> &[Finding] {
        match self {
            Error::Refused { findings, .. } => findings,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_error_survives_an_anyhow_chain() {
        let lost = LockError::Lost {
            id: "pro:acme".into(),
            token: 3,
            why: "taken over".into(),
        };
        let through: anyhow::Error = anyhow::Error::new(lost);
        assert!(matches!(
            Error::from(through),
            Error::Lock(LockError::Lost { token: 3, .. })
        ));
        let edited = Error::EditedMigrations(vec![Edited {
            target: "shared".into(),
            version: 2,
            name: "x".into(),
        }]);
        let through = anyhow::Error::new(edited);
        let back = Error::from(through);
        assert!(matches!(back, Error::EditedMigrations(ref e) if e[0].version == 2));
        assert!(back.to_string().contains("V0002__x on shared"));
        assert!(matches!(
            Error::from(anyhow::anyhow!("plain")),
            Error::Other(_)
        ));
    }
}
