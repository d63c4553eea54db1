//! `card-reader`: see `docs/drivers.md`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    drivers::process::main("card reader", drivers::run_card_reader).await
}
