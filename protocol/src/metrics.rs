//! How each service declares its Prometheus metrics: one table of name, type and `# HELP` text per
//! service (gated's `pipeline::telemetry::names`, enrold's `enrolment::metrics`), made with
//! [`metric_table!`](crate::metric_table). The service's recorder describes every metric from it,
//! and the deploy files' test checks every name a dashboard or alert asks for against it.

/// What a metric is, for `# TYPE` and the series a histogram adds (`_bucket`, `_sum`, `_count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// Observations in seconds (the exporter gives `_seconds` metrics buckets).
    Seconds,
    /// Observations of a count (faces per tick). The exporter gives buckets to `_seconds`
    /// only, so these are rendered as summaries: `{quantile=…}`, `_sum`, `_count`.
    Summary,
}

#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

impl Metric {
    /// The series names Prometheus stores for this metric.
    pub fn series(&self) -> Vec<String> {
        let suffixes: &[&str] = match self.kind {
            Kind::Counter | Kind::Gauge => &[""],
            Kind::Seconds => &["_bucket", "_sum", "_count"],
            Kind::Summary => &["", "_sum", "_count"],
        };
        suffixes
            .iter()
            .map(|suffix| format!("{}{suffix}", self.name))
            .collect()
    }
}

/// A service's metric table: a `pub const NAME: &str` per metric (the one place its name is
/// spelled) and `pub const ALL: &[Metric]`.
///
/// ```
/// protocol::metric_table! {
///     /// Doc comments stay on the constant.
///     REQUESTS = "svc_requests_total", Counter, "Requests answered";
/// }
/// assert_eq!(ALL[0].name, REQUESTS);
/// ```
#[macro_export]
macro_rules! metric_table {
    ($($(#[$doc:meta])* $id:ident = $name:literal, $kind:ident, $help:literal;)*) => {
        $($(#[$doc])* pub const $id: &str = $name;)*
        /// Every metric the service exports.
        pub const ALL: &[$crate::metrics::Metric] = &[
            $($crate::metrics::Metric {
                name: $name,
                kind: $crate::metrics::Kind::$kind,
                help: $help,
            }),*
        ];
    };
}

/// Gives every metric of `all` its `# HELP` text (and unit) in the installed recorder.
pub fn describe(all: &[Metric]) {
    for m in all {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Seconds => metrics::describe_histogram!(m.name, metrics::Unit::Seconds, m.help),
            Kind::Summary => metrics::describe_histogram!(m.name, m.help),
        }
    }
}
