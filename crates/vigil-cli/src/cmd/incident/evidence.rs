//! `vigil incident scope|runbook|report|export|verify`. (Being written.)

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

pending!(scope => ScopeArgs, runbook => RunbookArgs, report => ReportArgs,
    export => ExportArgs, verify => VerifyArgs);
