//! `crimg import`: archives into containerd, verified, atomic, unpacked for CRI.

use anyhow::Result;

use crate::app::{Outcome, Settings};
use crate::cli::ImportArgs;

pub async fn run(_settings: Settings, _args: ImportArgs) -> Result<Outcome> {
    anyhow::bail!("import is not implemented yet")
}
