//! `light-driver`: see `docs/drivers.md`.

use anyhow::Context;
use clap::Parser;
use drivers::{LightDriverSettings, init_tracing, run_light_driver, terminated};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = LightDriverSettings::parse();
    init_tracing();
    run_light_driver(settings, terminated())
        .await
        .context("light driver")
}
