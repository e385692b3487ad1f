//! Adopting caas on a deployment that already exists: `caas schema pull` reads the live
//! databases back into specs (validators decompiled, or fields inferred from a sample),
//! recognises the tenancy layout, and proposes the registry entries; `caas schema audit`
//! counts the documents the current validators would refuse.
//!
//! The flow runs backwards from the rest of caas, live -> spec, and then forwards again to
//! check itself: every pulled spec is compiled for its copy and compared, with the
//! normalisation `schema diff` uses, against what the server holds.

mod assemble;
pub mod audit;
mod decompile;
pub mod emit;
mod indexes;
pub mod infer;
pub mod layout;
pub mod merge;
pub mod pull;
mod read;
pub mod write;

use serde::Serialize;

pub use assemble::{differences, spec_of, Source};

/// Something a pull could not say exactly, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// A field path (`profile.bio`), `validator`, `options`, `indexes.<name>` or a
    /// database or collection name.
    pub at: String,
    pub message: String,
}

impl Note {
    pub fn new(at: &str, message: String) -> Note {
        Note {
            at: at.to_owned(),
            message,
        }
    }
}
