//! `light-driver`: see `docs/drivers.md`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    drivers::process::main("light driver", drivers::run_light_driver).await
}
