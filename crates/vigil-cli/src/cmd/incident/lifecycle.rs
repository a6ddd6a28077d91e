//! `vigil alerts`, `vigil incident open|list|show|note|phase|close`. (Being written.)

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

macro_rules! pending {
    ($($name:ident => $args:ident),*) => {$(
        #[derive(Args)]
        pub struct $args {}
        pub fn $name(_: $args) -> Result<ExitCode> {
            bail!(concat!("`", stringify!($name), "` is not implemented yet"))
        }
    )*};
}

pending!(alerts => AlertsArgs, open => OpenArgs, list => ListArgs, show => ShowArgs,
    note => NoteArgs, phase => PhaseArgs, close => CloseArgs);
