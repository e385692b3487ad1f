//! caas: MongoDB schemas as code for multi-tenant SaaS platforms.
//!
//! The data flows one way: spec files -> [`spec`] (load, lint) -> [`compile`] (desired
//! state per physical target, placed by [`tenancy`]) -> inspect -> plan -> apply.
//! The CLI ([`cli`]) parses and renders; the engine returns values and reports.

pub mod apply;
pub mod cli;
pub mod compile;
pub mod config;
pub mod connect;
pub mod diagnostic;
pub mod docs;
pub mod fleet;
pub mod inspect;
pub mod interrupt;
pub mod migrate;
pub mod plan;
pub mod redact;
pub mod render;
pub mod roles;
pub mod seed;
pub mod spec;
pub mod tenancy;
pub mod yaml;

use std::process::ExitCode;

/// How a command ended when it could do its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Success, or "in sync": exit 0.
    Clean,
    /// The check found something (drift, lint findings, pending migrations): exit 1.
    Found,
    /// Stopped at a safe point after Ctrl-C: exit 130.
    Interrupted,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Clean => ExitCode::SUCCESS,
            Outcome::Found => ExitCode::from(1),
            Outcome::Interrupted => ExitCode::from(interrupt::EXIT),
        }
    }
}

pub use cli::run;
