//! Ctrl-C. The first one asks every long command to stop at its next safe point (between
//! targets, migrations, steps and backfill batches): what is committed stays committed,
//! leases are released, and the command reports what was done and what was not (exit 130).
//! A second Ctrl-C exits at once; the leases then expire by themselves.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Exit status after an interrupt, as shells report SIGINT (128 + 2).
pub const EXIT: u8 = 130;

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Ask for a stop (what the first Ctrl-C does).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Listen for Ctrl-C (SIGINT) for the rest of the process.
pub fn listen() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        request();
        eprintln!(
            "\ninterrupted: stopping at the next safe point (press Ctrl-C again to quit at once)"
        );
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("quitting now; leases held expire by themselves");
            std::process::exit(i32::from(EXIT));
        }
    });
}
