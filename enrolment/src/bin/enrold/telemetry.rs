//! `/metrics` on its own listener (`[metrics] listen`), and the request counting of every route.
//! The names, types and HELP texts are `enrolment::metrics`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use enrolment::metrics::{CHANGES_HEAD, REQUEST_SECONDS, REQUESTS, SUBJECTS};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::App;

/// Seconds: from a token check to an enrolment's few seconds of analysis.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide recorder and describes every metric.
pub fn install() -> Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .context("metrics buckets")?
        .install_recorder()
        .context("metrics recorder")?;
    enrolment::metrics::describe();
    Ok(handle)
}

/// Serves `/metrics` (anything else: 404) until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    app: Arc<App>,
) -> Result<()> {
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(render))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found: /metrics\n") })
        .with_state((handle, app));
    axum::serve(listener, router)
        .await
        .context("metrics endpoint")
}

/// The gauges are read at scrape time, from the state the API serves.
async fn render(State((handle, app)): State<(PrometheusHandle, Arc<App>)>) -> Response {
    if let Ok(g) = app.gallery.read() {
        metrics::gauge!(SUBJECTS).set(g.len() as f64);
    }
    match app.store.head_seq() {
        Ok(seq) => metrics::gauge!(CHANGES_HEAD).set(seq as f64),
        // The scrape still answers; the gauge keeps its last value and the log says why.
        Err(e) => tracing::warn!(error = %e, "metrics: reading the change head"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// Counts and times each answered request by its route template (never its path, which would
/// carry subject ids into the metrics).
pub async fn track(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let t = Instant::now();
    let res = next.run(req).await;
    metrics::counter!(REQUESTS, "route" => route.clone(), "method" => method,
        "status" => res.status().as_u16().to_string())
    .increment(1);
    metrics::histogram!(REQUEST_SECONDS, "route" => route).record(t.elapsed().as_secs_f64());
    res
}
