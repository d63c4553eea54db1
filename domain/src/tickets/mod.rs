//! Tickets, the fare table and the gate rules (`docs/tickets.md`).
//!
//! Everything here is pure: the rules take the subject's tickets, its open trip, the station, the lane
//! direction and the local date/time, and return a [`Decision`]; persisting the trip state and the
//! journal record is the caller's job, so the rules can be tested exhaustively without a store.

mod card;
mod fares;
#[cfg(feature = "openapi")]
mod openapi;
mod rules;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use crate::ids::{StationId, SubjectId};

pub use card::{CardDecision, CardFare, card};
pub use fares::{FareTable, FareTableError, Zone};
pub use rules::{decide, entry, exit};

/// Money in the smallest currency unit (yen, cents). Integer so that sums and differences are exact.
pub type Amount = u32;

/// A ticket's id, unique per centre.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TicketId(pub u64);

/// A ticket linked to a subject.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ticket {
    pub id: TicketId,
    pub kind: TicketKind,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TicketKind {
    /// One ride from `origin`, on service day `valid_on`, worth `value`. Consumed at exit.
    SingleRide {
        origin: StationId,
        valid_on: NaiveDate,
        value: RideValue,
        /// Set by the caller when an exit [`Effect::CloseTrip`] consumed it.
        used: bool,
    },
    /// Unlimited rides on one service day within `coverage`.
    DayPass { date: NaiveDate, coverage: Coverage },
    /// Unlimited rides from `from` to `to` (both service days, inclusive) within `coverage`.
    CommuterPass {
        from: NaiveDate,
        to: NaiveDate,
        coverage: Coverage,
    },
}

/// What a single ride was bought for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RideValue {
    /// A fare paid, in [`Amount`] units: any trip whose fare is at most this.
    Fare(Amount),
    /// A number of zones: `n` covers trips of zone distance `0..n` (1 = within one zone).
    Zones(u8),
}

/// Where a pass is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Coverage {
    Network,
    Stations(BTreeSet<StationId>),
    Zones(BTreeSet<Zone>),
}

/// Which way the lane is walked.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Entry,
    Exit,
}

/// A trip that was entered and not yet exited. At most one per subject.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenTrip {
    pub entry_station: StationId,
    pub entered_at: NaiveDateTime,
    /// The service day of the entry: a pass is judged on this day for the whole trip, so a ride that
    /// crosses the end of the service day is not refused at exit.
    pub service_day: NaiveDate,
    pub ticket: TicketId,
}

/// The centre's view of a subject's trip, sent to every station with the subject's tickets: what
/// the passages booked from all stations leave open, as of the latest of them. A station judges by
/// whichever is newer, this or its own last passage of the subject (`docs/tickets.md`, "Across the
/// network"), so an entry at one station is known at the exit of another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentreTrip {
    pub open: Option<OpenTrip>,
    /// The time of the latest booked passage (the station's clock, as in its `TripRecord`).
    pub as_of: NaiveDateTime,
}

/// What a subject can pay with at a gate, as a station knows it: its tickets, and whether it has a
/// payment account that a pass's extension fare is charged to (post-pay).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wallet {
    pub tickets: Vec<Ticket>,
    pub postpay: bool,
}

impl From<Vec<Ticket>> for Wallet {
    /// Tickets alone, no payment account.
    fn from(tickets: Vec<Ticket>) -> Self {
        Self {
            tickets,
            postpay: false,
        }
    }
}

/// What the rules need to know about the subject at the lane.
#[derive(Debug, Clone, Copy)]
pub struct Rider<'a> {
    pub subject: SubjectId,
    pub tickets: &'a [Ticket],
    pub open_trip: Option<&'a OpenTrip>,
    /// The subject linked a payment account that pass extensions may be charged to.
    pub postpay: bool,
}

/// Where and when the passenger is.
#[derive(Debug, Clone, Copy)]
pub struct Gate<'a> {
    pub station: &'a StationId,
    pub direction: Direction,
    /// Local wall-clock time of the station.
    pub at: NaiveDateTime,
}

/// Why a passage was refused. Machine-readable: serialised as `snake_case`, see [`DenyReason::code`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case", deny_unknown_fields)]
pub enum DenyReason {
    /// Entry while a trip is open (the previous exit was never recorded).
    DoubleEntry,
    /// Exit with no open trip.
    NoEntry,
    /// The gate's station (or the trip's entry station) is not in the fare table.
    UnknownStation,
    /// No ticket linked at all.
    NoTicket,
    /// The best ticket's validity ended before this service day.
    Expired,
    /// The best ticket's validity starts after this service day.
    NotYetValid,
    /// The best ticket is a pass that does not cover this station.
    StationNotCovered,
    /// The best ticket is a single ride from another station.
    WrongOrigin,
    /// The ticket is a single ride that was already consumed.
    AlreadyUsed,
    /// The ticket the trip was entered with is no longer linked (unlinked during the ride).
    EntryTicketGone,
    /// Underpaid: keep the flap closed and send the passenger to the fare adjustment machine.
    FareAdjustmentNeeded {
        #[cfg_attr(feature = "openapi", schema(value_type = u32))]
        due: Amount,
    },
}

impl DenyReason {
    /// Stable code for logs, metrics and the lane display.
    pub fn code(&self) -> &'static str {
        match self {
            Self::DoubleEntry => "double_entry",
            Self::NoEntry => "no_entry",
            Self::UnknownStation => "unknown_station",
            Self::NoTicket => "no_ticket",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::StationNotCovered => "station_not_covered",
            Self::WrongOrigin => "wrong_origin",
            Self::AlreadyUsed => "already_used",
            Self::EntryTicketGone => "entry_ticket_gone",
            Self::FareAdjustmentNeeded { .. } => "fare_adjustment_needed",
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Deny { reason: DenyReason },
}

/// The state change an allowed passage asks the caller to persist, atomically with the journal record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Nothing changes (every refusal).
    None,
    /// Store this as the subject's open trip.
    OpenTrip(OpenTrip),
    /// Delete the open trip, mark `consume` used (a single ride) and charge `charge` to the account.
    CloseTrip {
        consume: Option<TicketId>,
        charge: Amount,
    },
}

/// One line of the trip journal, for allowed and refused passages alike.
///
/// Keyed by the pseudonymous subject id; it holds no name, no card number and never biometric data.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TripRecord {
    pub subject: SubjectId,
    pub station: StationId,
    pub direction: Direction,
    pub at: NaiveDateTime,
    pub service_day: NaiveDate,
    pub verdict: Verdict,
    pub ticket: Option<TicketId>,
    /// Exit records: where the trip began.
    pub entry_station: Option<StationId>,
    /// Exit records: the full fare from the entry station to here.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    pub fare: Option<Amount>,
    /// Exit records: what was charged to the account (0 when fully covered).
    #[cfg_attr(feature = "openapi", schema(value_type = u32))]
    pub charged: Amount,
}

/// What the gate does, why, with which ticket, and what to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The ticket used (allow) or the ticket judged (deny), if any.
    pub ticket: Option<TicketId>,
    pub effect: Effect,
    pub record: TripRecord,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    pub fn reason(&self) -> Option<DenyReason> {
        match self.verdict {
            Verdict::Allow => None,
            Verdict::Deny { reason } => Some(reason),
        }
    }
}
