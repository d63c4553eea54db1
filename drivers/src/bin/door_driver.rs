//! `door-driver`: see `docs/drivers.md`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    drivers::process::main("door driver", drivers::run_door_driver).await
}
