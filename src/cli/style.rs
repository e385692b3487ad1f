//! Colour: on a terminal only (or with `--color always`), never with `NO_COLOR` or
//! `--color never`. Failures and destructive changes are red, held-back or data-dependent
//! ones yellow, successes green; everything else stays plain.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use comfy_table::{Cell, Color};

static ENABLED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and NO_COLOR is not set.
    Auto,
    Always,
    Never,
}

/// Decide once, before any output.
pub fn init(choice: ColorChoice) {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stdout().is_terminal() && !no_color,
    };
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// How a value reads: bad (red), warn (yellow), good (green) or plain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Bad,
    Warn,
    Good,
    Plain,
}

/// A table cell in its tone (plain when colour is off).
pub fn cell(text: impl Into<String>, tone: Tone) -> Cell {
    let c = Cell::new(text.into());
    match (enabled(), tone) {
        (false, _) | (_, Tone::Plain) => c,
        (true, Tone::Bad) => c.fg(Color::Red),
        (true, Tone::Warn) => c.fg(Color::Yellow),
        (true, Tone::Good) => c.fg(Color::Green),
    }
}

/// The tone of a change class (`safe`, `data-dependent`, `destructive`).
pub fn class_tone(class: &str) -> Tone {
    if class.starts_with("destructive") {
        Tone::Bad
    } else if class.starts_with("data-dependent") {
        Tone::Warn
    } else {
        Tone::Plain
    }
}
