//! Ctrl-C. The first one asks every long command to stop at its next safe point (between
//! targets, migrations, steps and backfill batches): what is committed stays committed,
//! leases are released, and the command reports what was done and what was not (exit 130).
//! A second Ctrl-C exits at once; the leases then expire by themselves. The command line
//! listens for the signal and calls [`request`]; the engine only asks [`requested`].

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Ask for a stop (what the first Ctrl-C does).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}
