//! The gate rules. Pure functions: same inputs, same decision (`docs/tickets.md` is the specification).

use chrono::NaiveDate;

use super::{
    Amount, Coverage, Decision, DenyReason, Direction, Effect, FareTable, Gate, OpenTrip,
    RideValue, Rider, Ticket, TicketId, TicketKind, TripRecord, Verdict, Zone,
};
use crate::ids::StationId;

/// Decides a passage in either direction.
pub fn decide(table: &FareTable, rider: &Rider<'_>, gate: &Gate<'_>) -> Decision {
    match gate.direction {
        Direction::Entry => entry(table, rider, gate),
        Direction::Exit => exit(table, rider, gate),
    }
}

/// How far a ticket got through the entry checks; the refusal reported is the one of the ticket that
/// got furthest, because that is the ticket the passenger most likely meant to use.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Used,
    Date,
    Place,
}

/// Entry: no open trip, and a ticket valid on this service day at this station.
///
/// Tickets are tried commuter passes first, then day passes, then single rides (each in the order given),
/// so a pass is used before a single ride is spent.
pub fn entry(table: &FareTable, rider: &Rider<'_>, gate: &Gate<'_>) -> Decision {
    let day = table.service_day(gate.at);
    let deny = |reason, ticket| deny(rider, gate, day, reason, ticket, None, None);

    if let Some(trip) = rider.open_trip {
        return deny(DenyReason::DoubleEntry, Some(trip.ticket));
    }
    if table.zone(gate.station).is_none() {
        return deny(DenyReason::UnknownStation, None);
    }
    if rider.tickets.is_empty() {
        return deny(DenyReason::NoTicket, None);
    }

    let mut best: Option<(Stage, DenyReason, TicketId)> = None;
    for ticket in by_priority(rider.tickets) {
        match entry_check(table, ticket, gate.station, day) {
            Ok(()) => {
                let trip = OpenTrip {
                    entry_station: gate.station.clone(),
                    entered_at: gate.at,
                    service_day: day,
                    ticket: ticket.id,
                };
                let record = record(
                    rider,
                    gate,
                    day,
                    Verdict::Allow,
                    Some(ticket.id),
                    None,
                    None,
                    0,
                );
                return Decision {
                    verdict: Verdict::Allow,
                    ticket: Some(ticket.id),
                    effect: Effect::OpenTrip(trip),
                    record,
                };
            }
            Err((stage, reason)) => {
                if best.is_none_or(|(s, _, _)| stage > s) {
                    best = Some((stage, reason, ticket.id));
                }
            }
        }
    }
    match best {
        Some((_, reason, id)) => deny(reason, Some(id)),
        None => deny(DenyReason::NoTicket, None),
    }
}

fn by_priority(tickets: &[Ticket]) -> impl Iterator<Item = &Ticket> {
    let rank = |t: &&Ticket| match t.kind {
        TicketKind::CommuterPass { .. } => 0,
        TicketKind::DayPass { .. } => 1,
        TicketKind::SingleRide { .. } => 2,
    };
    (0..3).flat_map(move |r| tickets.iter().filter(move |t| rank(t) == r))
}

/// Checks in a fixed order (used → dates → place) so the stage reached is meaningful.
fn entry_check(
    table: &FareTable,
    ticket: &Ticket,
    station: &StationId,
    day: NaiveDate,
) -> Result<(), (Stage, DenyReason)> {
    let (from, to) = match &ticket.kind {
        TicketKind::SingleRide { used: true, .. } => {
            return Err((Stage::Used, DenyReason::AlreadyUsed));
        }
        TicketKind::SingleRide { valid_on, .. } => (*valid_on, *valid_on),
        TicketKind::DayPass { date, .. } => (*date, *date),
        TicketKind::CommuterPass { from, to, .. } => (*from, *to),
    };
    if day < from {
        return Err((Stage::Date, DenyReason::NotYetValid));
    }
    if day > to {
        return Err((Stage::Date, DenyReason::Expired));
    }
    match &ticket.kind {
        TicketKind::SingleRide { origin, .. } if origin != station => {
            Err((Stage::Place, DenyReason::WrongOrigin))
        }
        TicketKind::SingleRide { .. } => Ok(()),
        TicketKind::DayPass { coverage, .. } | TicketKind::CommuterPass { coverage, .. } => {
            if covers(table, coverage, station) {
                Ok(())
            } else {
                Err((Stage::Place, DenyReason::StationNotCovered))
            }
        }
    }
}

fn covers(table: &FareTable, coverage: &Coverage, station: &StationId) -> bool {
    match coverage {
        Coverage::Network => true,
        Coverage::Stations(set) => set.contains(station),
        Coverage::Zones(set) => table.zone(station).is_some_and(|z| set.contains(&z)),
    }
}

/// Exit: closes the open trip with the ticket it was entered with.
///
/// - single ride: allowed if its value covers the fare entry → here, and consumed; otherwise refused
///   with `FareAdjustmentNeeded { due }` (the trip stays open until the fare adjustment machine closes it);
/// - pass: free if it covers this station; otherwise the extension fare is the fare from the edge of its
///   coverage (the covered station or zone nearest to here) to here, charged to the account when the
///   subject has one, else `FareAdjustmentNeeded { due: extension }`.
///
/// Validity dates are not re-checked: the pass was valid on the trip's service day, judged at entry.
pub fn exit(table: &FareTable, rider: &Rider<'_>, gate: &Gate<'_>) -> Decision {
    let day = table.service_day(gate.at);
    let Some(trip) = rider.open_trip else {
        return deny(rider, gate, day, DenyReason::NoEntry, None, None, None);
    };
    let from = Some(trip.entry_station.clone());
    let deny = |reason, ticket, fare| deny(rider, gate, day, reason, ticket, from.clone(), fare);

    let (Some(entry_zone), Some(exit_zone)) =
        (table.zone(&trip.entry_station), table.zone(gate.station))
    else {
        return deny(DenyReason::UnknownStation, Some(trip.ticket), None);
    };
    // Validation guarantees a fare for every pair of stations in the table.
    let Some(fare) = table.fare_for_distance(entry_zone.abs_diff(exit_zone)) else {
        return deny(DenyReason::UnknownStation, Some(trip.ticket), None);
    };
    let Some(ticket) = rider.tickets.iter().find(|t| t.id == trip.ticket) else {
        return deny(DenyReason::EntryTicketGone, Some(trip.ticket), Some(fare));
    };

    let (consume, due) = match &ticket.kind {
        TicketKind::SingleRide { used: true, .. } => {
            return deny(DenyReason::AlreadyUsed, Some(ticket.id), Some(fare));
        }
        TicketKind::SingleRide { value, .. } => {
            let paid = match *value {
                RideValue::Fare(paid) => paid,
                // Zones(n) is worth the fare of distance n - 1; beyond the table it covers everything.
                RideValue::Zones(0) => 0,
                RideValue::Zones(n) => table.fare_for_distance(n - 1).unwrap_or(table.max_fare()),
            };
            let due = fare.saturating_sub(paid);
            if due > 0 {
                return deny(
                    DenyReason::FareAdjustmentNeeded { due },
                    Some(ticket.id),
                    Some(fare),
                );
            }
            (Some(ticket.id), 0)
        }
        TicketKind::DayPass { coverage, .. } | TicketKind::CommuterPass { coverage, .. } => {
            let due = if covers(table, coverage, gate.station) {
                0
            } else {
                extension_fare(table, coverage, exit_zone).min(fare)
            };
            if due > 0 && !rider.postpay {
                return deny(
                    DenyReason::FareAdjustmentNeeded { due },
                    Some(ticket.id),
                    Some(fare),
                );
            }
            (None, due)
        }
    };

    let record = record(
        rider,
        gate,
        day,
        Verdict::Allow,
        Some(ticket.id),
        from,
        Some(fare),
        due,
    );
    Decision {
        verdict: Verdict::Allow,
        ticket: Some(ticket.id),
        effect: Effect::CloseTrip {
            consume,
            charge: due,
        },
        record,
    }
}

/// Fare from the covered zone nearest to `exit_zone`. An empty coverage has no edge: the full fare
/// applies (the caller caps the extension at the fare entry → exit).
fn extension_fare(table: &FareTable, coverage: &Coverage, exit_zone: Zone) -> Amount {
    let nearest = match coverage {
        Coverage::Network => Some(0),
        Coverage::Zones(zones) => zones.iter().map(|z| z.abs_diff(exit_zone)).min(),
        Coverage::Stations(stations) => stations
            .iter()
            .filter_map(|s| table.zone(s))
            .map(|z| z.abs_diff(exit_zone))
            .min(),
    };
    nearest
        .and_then(|d| table.fare_for_distance(d))
        .unwrap_or(table.max_fare())
}

fn deny(
    rider: &Rider<'_>,
    gate: &Gate<'_>,
    day: NaiveDate,
    reason: DenyReason,
    ticket: Option<TicketId>,
    entry_station: Option<StationId>,
    fare: Option<Amount>,
) -> Decision {
    let verdict = Verdict::Deny { reason };
    Decision {
        verdict,
        ticket,
        effect: Effect::None,
        record: record(rider, gate, day, verdict, ticket, entry_station, fare, 0),
    }
}

#[allow(clippy::too_many_arguments)] // one flat record; a builder would only hide the same fields
fn record(
    rider: &Rider<'_>,
    gate: &Gate<'_>,
    day: NaiveDate,
    verdict: Verdict,
    ticket: Option<TicketId>,
    entry_station: Option<StationId>,
    fare: Option<Amount>,
    charged: Amount,
) -> TripRecord {
    TripRecord {
        subject: rider.subject,
        station: gate.station.clone(),
        direction: gate.direction,
        at: gate.at,
        service_day: day,
        verdict,
        ticket,
        entry_station,
        fare,
        charged,
    }
}
