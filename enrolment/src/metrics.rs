//! enrold's metrics: every name, its type and `# HELP` text, spelled once. The service exports them
//! on its `[metrics] listen` address; `deploy/` (scrape job, alerts) names them, and the deploy
//! files' test checks every name it uses against [`ALL`].

pub use protocol::metrics::{Kind, Metric};

protocol::metric_table! {
    /// Labelled `route` (the route template, e.g. `/subjects/{id}`), `method` and `status`.
    REQUESTS = "enrold_requests_total", Counter,
        "HTTP requests answered, by route template, method and status code";
    /// Labelled `route`.
    REQUEST_SECONDS = "enrold_request_seconds", Seconds,
        "Time to answer an HTTP request, by route template";
    AUTH_FAILURES = "enrold_auth_failures_total", Counter,
        "Requests refused for a missing or unknown bearer token";
    RATE_LIMITED = "enrold_rate_limited_total", Counter,
        "Requests refused by the per-client or failed-authentication rate limit";
    SUBJECTS = "enrold_subjects", Gauge, "Subjects enrolled (the gallery's size)";
    /// Stations export `gate_sync_last_seq`; the difference is how far a station is behind.
    CHANGES_HEAD = "enrold_changes_head_seq", Gauge,
        "Sequence number of the newest template change, which stations sync up to";
    /// Labelled `station`.
    LEDGER_PASSAGES = "enrold_ledger_passages_total", Counter,
        "Passages booked in the fare ledger, by reporting station";
    LEDGER_CHARGED = "enrold_ledger_charged_total", Counter,
        "Fares charged by the booked passages, in the smallest currency unit";
    /// Labelled `kind` (`ride_used_twice`, `exit_without_known_entry`, `entry_over_open_trip`).
    LEDGER_CONFLICTS = "enrold_ledger_conflicts_total", Counter,
        "Booked passages that disagree with what the centre knew, flagged for review";
    /// Labelled `reason` (`malformed`, `version`, `mac`, `station`, `mismatch`, `retired_store`).
    UPLINK_REFUSED = "enrold_uplink_refused_total", Counter,
        "Passage batches from stations refused before booking";
    /// Labelled `kind`: `new_store` (a station reports from a new store file) or `behind` (its
    /// store lost passages the ledger booked: restored from a backup).
    UPLINK_STORE_CHANGES = "enrold_uplink_store_changes_total", Counter,
        "Station store files replaced or restored, as the ledger saw them";
}

/// Gives every metric its `# HELP` text and creates the unlabelled counters at 0, so alerts see them
/// before their first event (with the process-wide recorder installed).
pub fn describe() {
    protocol::metrics::describe(ALL);
    metrics::counter!(AUTH_FAILURES).absolute(0);
    metrics::counter!(RATE_LIMITED).absolute(0);
    metrics::counter!(LEDGER_CHARGED).absolute(0);
}
