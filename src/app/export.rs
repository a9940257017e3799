//! `crimg export`: images from the content store into one OCI + docker archive.

use anyhow::Result;

use crate::app::{Outcome, Settings};
use crate::cli::ExportArgs;

pub async fn run(_settings: Settings, _args: ExportArgs) -> Result<Outcome> {
    anyhow::bail!("export is not implemented yet")
}
