//! `vigil demo`. (Being written.)

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args)]
pub struct DemoArgs {}

pub fn run(_: DemoArgs) -> Result<ExitCode> {
    bail!("`demo` is not implemented yet")
}
