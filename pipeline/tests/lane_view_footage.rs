//! The lane view during recorded footage (the default footage's first lane, played at its own pace
//! through the whole chain, recognition included): the decisions the station makes appear in a
//! real headless Chromium's rendering of the page, with outcome, reason and similarity, and the
//! page carries no image. Needs scripts/setup's footage and models, like the other footage tests.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

mod common;

use common::{browse, chromium, first_lane_only, footage, get, port};
use pipeline::demo::{self, FootageOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_appear_in_the_browser_as_the_footage_plays() {
    let Some(f) = footage() else { return };
    let browser = chromium();
    let lane = first_lane_only(&f);
    let work = tempfile::tempdir().unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port()));
    let opts = FootageOptions {
        spawn_drivers: true,
        metrics: true,
        paced: true,
        view: Some(addr),
        ..Default::default()
    };
    let (path, wd) = (lane.path().to_owned(), work.path().to_owned());
    let run = tokio::spawn(async move { demo::run_footage(&path, &wd, &opts).await });

    // The first grant (the enrolled walker comes first) is in the page's snapshot once made.
    let addr = addr.to_string();
    let mut page = String::new();
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let a = addr.clone();
        page = tokio::task::spawn_blocking(move || match std::net::TcpStream::connect(&a) {
            Ok(_) => get(&a, "/"),
            Err(e) => e.to_string(),
        })
        .await
        .unwrap();
        if page.contains("\"outcome\":\"open\"") || run.is_finished() {
            break;
        }
    }
    assert!(
        page.contains("\"outcome\":\"open\""),
        "no grant in the page: {page}"
    );
    assert!(
        !page.contains("<img") && !page.contains("data:image"),
        "an image in the page"
    );

    let profile = work.path().join("chromium");
    let url = format!("http://{addr}/");
    let dom =
        tokio::task::spawn_blocking(move || browse(&browser, &profile, &["--dump-dom"], &url))
            .await
            .unwrap();
    let rows: Vec<&str> = dom.split("<tr class=\"decision\">").skip(1).collect();
    assert!(
        rows.iter()
            .any(|r| r.contains(">open<") && r.contains(">granted<")),
        "no granted row in the rendered page:\n{dom}"
    );
    let r = run.await.unwrap().expect("footage run");
    // Played at its own pace, a machine busy with other work drops frames as a live station
    // would, and a walker may be left to the card reader; any other difference from the truth (a
    // door opened or kept shut wrongly, an honest walker alarmed) is a fault. The footage's
    // decisions with every frame are checked exactly by `gate_footage`.
    let card = r.score();
    let wrong: Vec<String> = card
        .wrong()
        .filter(|w| {
            let card_reader = w.got.starts_with("not_decided") || w.got == "nothing";
            !card_reader || w.got.contains("a false")
        })
        .map(|w| w.why())
        .collect();
    assert!(
        wrong.is_empty(),
        "the lane's decisions differ from the truth: {wrong:?}"
    );
    let card_reader: Vec<String> = card.wrong().map(|w| w.why()).collect();
    if !card_reader.is_empty() {
        eprintln!("left to the card reader (frames dropped): {card_reader:?}");
    }
}
