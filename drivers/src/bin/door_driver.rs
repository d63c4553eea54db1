//! `door-driver`: see `docs/drivers.md`.

use anyhow::Context;
use clap::Parser;
use drivers::{DoorDriverSettings, init_tracing, run_door_driver, terminated};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = DoorDriverSettings::parse();
    init_tracing();
    run_door_driver(settings, terminated())
        .await
        .context("door driver")
}
