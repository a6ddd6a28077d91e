//! `vigil readiness`. (Being written.)

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args)]
pub struct ReadinessArgs {}

pub fn run(_: ReadinessArgs) -> Result<ExitCode> {
    bail!("`readiness` is not implemented yet")
}
