//! enrold's metrics: every name, its type and `# HELP` text, spelled once. The service exports them
//! on its `[metrics] listen` address; `deploy/` (scrape job, alerts, dashboard) names them, and the
//! deploy files' test checks every name it uses against [`ALL`].

/// What a metric is, for `# TYPE` and the series a histogram adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// A histogram in seconds (`_bucket`, `_sum`, `_count`).
    Seconds,
}

#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// Requests answered, labelled `route` (the route template, e.g. `/subjects/{id}`), `method` and
/// `status`.
pub const REQUESTS: Metric = Metric {
    name: "enrold_requests_total",
    kind: Kind::Counter,
    help: "HTTP requests answered, by route template, method and status code",
};
/// Time to answer, labelled `route`.
pub const REQUEST_SECONDS: Metric = Metric {
    name: "enrold_request_seconds",
    kind: Kind::Seconds,
    help: "Time to answer an HTTP request, by route template",
};
pub const AUTH_FAILURES: Metric = Metric {
    name: "enrold_auth_failures_total",
    kind: Kind::Counter,
    help: "Requests refused for a missing or unknown bearer token",
};
pub const RATE_LIMITED: Metric = Metric {
    name: "enrold_rate_limited_total",
    kind: Kind::Counter,
    help: "Requests refused by the per-client or failed-authentication rate limit",
};
pub const SUBJECTS: Metric = Metric {
    name: "enrold_subjects",
    kind: Kind::Gauge,
    help: "Subjects enrolled (the gallery's size)",
};
/// Stations export `gate_sync_last_seq`; the difference is how far a station is behind.
pub const CHANGES_HEAD: Metric = Metric {
    name: "enrold_changes_head_seq",
    kind: Kind::Gauge,
    help: "Sequence number of the newest template change, which stations sync up to",
};

pub const ALL: &[Metric] = &[
    REQUESTS,
    REQUEST_SECONDS,
    AUTH_FAILURES,
    RATE_LIMITED,
    SUBJECTS,
    CHANGES_HEAD,
];

/// Gives every metric its `# HELP` text and creates the unlabelled series at 0, so alerts see them
/// before their first event (with the process-wide recorder installed).
pub fn describe() {
    for m in ALL {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Seconds => {
                metrics::describe_histogram!(m.name, metrics::Unit::Seconds, m.help)
            }
        }
    }
    metrics::counter!(AUTH_FAILURES.name).absolute(0);
    metrics::counter!(RATE_LIMITED.name).absolute(0);
}
