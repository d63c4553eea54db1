//! The fare of a stored-value IC card at a gate (`docs/tickets.md`, "IC cards"). The card carries
//! its own state, as Suica and ICOCA cards do: a balance and, while a trip is open on it, where it
//! entered. Pure like the rest of the rules: the gate writes what [`card`] returns to the card, and
//! opens only once the write is done.

use super::{Amount, DenyReason, Direction, FareTable};
use crate::ids::StationId;

/// What the card holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardFare {
    pub balance: Amount,
    /// The station the open trip on the card entered at.
    pub entry: Option<StationId>,
}

/// What the gate does with the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardDecision {
    /// Write `after` to the card, `charged` taken from the balance, then open.
    Allow {
        after: CardFare,
        charged: Amount,
        /// The trip's fare (exit only).
        fare: Option<Amount>,
    },
    Deny(DenyReason),
}

/// Entry: no trip open on the card, and at least the lowest fare on it (a card that could not pay
/// for the shortest ride is sent to the top-up machine, `fare_adjustment_needed`, before it
/// travels). Exit: the fare from the card's entry station here, taken from the balance; short of it,
/// `fare_adjustment_needed` with what is missing, and nothing is taken.
pub fn card(
    table: &FareTable,
    card: &CardFare,
    station: &StationId,
    direction: Direction,
) -> CardDecision {
    let Some(here) = table.zone(station) else {
        return CardDecision::Deny(DenyReason::UnknownStation);
    };
    match direction {
        Direction::Entry => {
            if card.entry.is_some() {
                return CardDecision::Deny(DenyReason::DoubleEntry);
            }
            let least = table.fare_for_distance(0).unwrap_or(table.max_fare());
            if card.balance < least {
                return CardDecision::Deny(DenyReason::FareAdjustmentNeeded {
                    due: least - card.balance,
                });
            }
            CardDecision::Allow {
                after: CardFare {
                    balance: card.balance,
                    entry: Some(station.clone()),
                },
                charged: 0,
                fare: None,
            }
        }
        Direction::Exit => {
            let Some(from) = &card.entry else {
                return CardDecision::Deny(DenyReason::NoEntry);
            };
            let Some(fare) = table
                .zone(from)
                .and_then(|z| table.fare_for_distance(z.abs_diff(here)))
            else {
                return CardDecision::Deny(DenyReason::UnknownStation);
            };
            if card.balance < fare {
                return CardDecision::Deny(DenyReason::FareAdjustmentNeeded {
                    due: fare - card.balance,
                });
            }
            CardDecision::Allow {
                after: CardFare {
                    balance: card.balance - fare,
                    entry: None,
                },
                charged: fare,
                fare: Some(fare),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> FareTable {
        FareTable::parse(
            "fares = [150, 190, 230]\n[stations]\numeda = 1\nnoda = 2\nnamba = 3\n",
            "test",
        )
        .expect("table")
    }

    fn st(s: &str) -> StationId {
        StationId::new(s).expect("id")
    }

    fn fare(balance: Amount, entry: Option<&str>) -> CardFare {
        CardFare {
            balance,
            entry: entry.map(st),
        }
    }

    #[test]
    fn entry_records_the_station_and_needs_the_lowest_fare() {
        let t = table();
        assert_eq!(
            card(&t, &fare(150, None), &st("umeda"), Direction::Entry),
            CardDecision::Allow {
                after: fare(150, Some("umeda")),
                charged: 0,
                fare: None
            }
        );
        assert_eq!(
            card(&t, &fare(100, None), &st("umeda"), Direction::Entry),
            CardDecision::Deny(DenyReason::FareAdjustmentNeeded { due: 50 })
        );
        assert_eq!(
            card(&t, &fare(900, Some("noda")), &st("umeda"), Direction::Entry),
            CardDecision::Deny(DenyReason::DoubleEntry)
        );
        assert_eq!(
            card(&t, &fare(900, None), &st("kyoto"), Direction::Entry),
            CardDecision::Deny(DenyReason::UnknownStation)
        );
    }

    #[test]
    fn exit_takes_the_fare_between_the_stations_or_nothing() {
        let t = table();
        assert_eq!(
            card(&t, &fare(500, Some("umeda")), &st("namba"), Direction::Exit),
            CardDecision::Allow {
                after: fare(270, None),
                charged: 230,
                fare: Some(230)
            }
        );
        assert_eq!(
            card(&t, &fare(200, Some("umeda")), &st("namba"), Direction::Exit),
            CardDecision::Deny(DenyReason::FareAdjustmentNeeded { due: 30 })
        );
        assert_eq!(
            card(&t, &fare(500, None), &st("namba"), Direction::Exit),
            CardDecision::Deny(DenyReason::NoEntry)
        );
        assert_eq!(
            card(&t, &fare(500, Some("kyoto")), &st("namba"), Direction::Exit),
            CardDecision::Deny(DenyReason::UnknownStation)
        );
    }
}
