//! caas: MongoDB schemas as code for multi-tenant SaaS platforms.
//!
//! The data flows one way: spec files -> [`spec`] (load, lint) -> [`compile`] (desired
//! state per physical target, placed by [`tenancy`]) -> inspect -> plan -> apply.
//! The engine prints nothing and parses no arguments: it returns values and reports, and the
//! `caas` binary parses, renders and chooses exit codes.

pub use base::error::{Error, Result};

pub mod adopt;
pub mod apply;
pub mod base;
pub mod compile;
pub mod config;
pub mod connect;
pub mod docs;
pub mod fleet;
pub mod inspect;
pub mod lifecycle;
pub mod migrate;
pub mod plan;
pub mod project;
pub mod roles;
pub mod scaffold;
pub mod schemas;
pub mod seed;
pub mod spec;
pub mod tenancy;
