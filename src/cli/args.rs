//! Argument types the command line owns. The engine's own types (`Tier`, `OnError`,
//! `ConnectOpts`) know nothing of clap; these mirror them for parsing and help text.

use caas_core::connect::ConnectOpts;
use caas_core::migrate::runner::OnError;
use caas_core::tenancy::Tier;
use clap::{Args, ValueEnum};

/// Where to connect, and how long to wait for a server.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// MongoDB connection string. Default: MONGODB_URI, then `[connection] uri` in caas.toml.
    #[arg(long, env = "MONGODB_URI", hide_env_values = true, global = true)]
    pub uri: Option<String>,
    /// Seconds to wait for a reachable server before giving up (exit 2).
    #[arg(long, default_value_t = 5, global = true)]
    pub connect_timeout: u64,
}

impl From<ConnectArgs> for ConnectOpts {
    fn from(args: ConnectArgs) -> ConnectOpts {
        ConnectOpts {
            uri: args.uri,
            connect_timeout: args.connect_timeout,
        }
    }
}

/// A tenant's commercial tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TierArg {
    Free,
    Starter,
    Pro,
    Enterprise,
}

impl From<TierArg> for Tier {
    fn from(arg: TierArg) -> Tier {
        match arg {
            TierArg::Free => Tier::Free,
            TierArg::Starter => Tier::Starter,
            TierArg::Pro => Tier::Pro,
            TierArg::Enterprise => Tier::Enterprise,
        }
    }
}

/// Tiers given on the command line, as the engine's type.
pub fn tiers(args: &[TierArg]) -> Vec<Tier> {
    args.iter().map(|&t| t.into()).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnErrorArg {
    /// Other targets go on after a failure (the end report lists every failure).
    Continue,
    /// No new target starts after the first failure.
    Stop,
}

impl From<OnErrorArg> for OnError {
    fn from(arg: OnErrorArg) -> OnError {
        match arg {
            OnErrorArg::Continue => OnError::Continue,
            OnErrorArg::Stop => OnError::Stop,
        }
    }
}
