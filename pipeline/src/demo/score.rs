//! Scoring a station run against a footage folder's ground truth: which walkers were let through,
//! refused or caught tailgating, broken down by lighting scenario and mask. Pure: the benchmark,
//! the tests and the demo table share it.
//!
//! Matching decisions to walkers: a decision belongs to a walker of the same lane when it falls in
//! the walker's time in view, widened by `SLACK_MS` after (a track is decided up to `lost_after_ms`
//! after the face leaves). Identified decisions also carry the identity, so an open is *correct*
//! only for an expected-open walker of that identity in the window; every other open is a *false
//! open* (the wrong person, or someone whose pass or company should have kept the door shut).

use std::collections::BTreeMap;

use protocol::Outcome;
use serde::Serialize;

use super::truth::{Truth, TruthWalker};
use crate::decisions::DecisionRecord;

/// Decisions up to this long after a walker's last frame still belong to them.
pub const SLACK_MS: u64 = 1_500;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Walkers the truth expects to be let through.
    pub expected_opens: u32,
    pub correct_opens: u32,
    pub missed_opens: u32,
    /// Opens for anyone the truth did not expect to open for (wrong person, unknown, expired pass,
    /// a tailgating pair).
    pub false_opens: u32,
    /// Tailgating groups (counted once, on the lead).
    pub tailgating: u32,
    pub tailgating_caught: u32,
    pub tailgating_missed: u32,
    /// Enrolled walkers that must be refused (expired pass, …) and were refused with that reason.
    pub expected_refusals: u32,
    pub correct_refusals: u32,
    /// Walkers not enrolled.
    pub unknown_walkers: u32,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.expected_opens += o.expected_opens;
        self.correct_opens += o.correct_opens;
        self.missed_opens += o.missed_opens;
        self.false_opens += o.false_opens;
        self.tailgating += o.tailgating;
        self.tailgating_caught += o.tailgating_caught;
        self.tailgating_missed += o.tailgating_missed;
        self.expected_refusals += o.expected_refusals;
        self.correct_refusals += o.correct_refusals;
        self.unknown_walkers += o.unknown_walkers;
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Scorecard {
    pub total: Counts,
    /// By lane lighting scenario.
    pub by_scenario: BTreeMap<String, Counts>,
    /// By `mask` / `no mask` of the walker.
    pub by_mask: BTreeMap<String, Counts>,
}

fn window(w: &TruthWalker, fps: f64) -> (u64, u64) {
    let ms = |frame: u64| (frame as f64 * 1e3 / fps.max(1e-3)) as u64;
    (ms(w.first_frame), ms(w.last_frame) + SLACK_MS)
}

/// Scores `decisions`; `identity_of` maps a decision's pseudonymous subject to the truth's identity.
pub fn score(
    truth: &Truth,
    decisions: &[DecisionRecord],
    identity_of: &dyn Fn(&str) -> Option<String>,
) -> Scorecard {
    let mut card = Scorecard::default();
    for lane in &truth.lanes {
        let got: Vec<(&DecisionRecord, Option<String>)> = decisions
            .iter()
            .filter(|d| d.lane == lane.lane)
            .map(|d| (d, d.message.subject.as_deref().and_then(identity_of)))
            .collect();
        let in_window = |w: &TruthWalker, d: &DecisionRecord| {
            let (a, b) = window(w, truth.fps);
            d.at_ms >= a && d.at_ms <= b
        };
        let mut per_walker: Vec<(&TruthWalker, Counts)> = Vec::new();
        for w in &lane.walkers {
            let mut c = Counts::default();
            let named = |d: &DecisionRecord, who: &Option<String>, o: Outcome| {
                d.message.outcome == o
                    && who.as_deref() == Some(w.identity.as_str())
                    && in_window(w, d)
            };
            match w.expected.as_str() {
                "open" => {
                    c.expected_opens = 1;
                    if got.iter().any(|(d, who)| named(d, who, Outcome::Open)) {
                        c.correct_opens = 1;
                    } else {
                        c.missed_opens = 1;
                    }
                }
                "tailgating" if w.lead => {
                    c.tailgating = 1;
                    let caught = got
                        .iter()
                        .any(|(d, _)| d.message.outcome == Outcome::Tailgating && in_window(w, d));
                    if caught {
                        c.tailgating_caught = 1;
                    } else {
                        c.tailgating_missed = 1;
                    }
                }
                "closed" if w.enrolled => {
                    c.expected_refusals = 1;
                    let reason = w.reason.as_deref().unwrap_or("");
                    if got.iter().any(|(d, who)| {
                        named(d, who, Outcome::Closed) && d.message.reason == reason
                    }) {
                        c.correct_refusals = 1;
                    }
                }
                _ => {}
            }
            if !w.enrolled {
                c.unknown_walkers = 1;
            }
            per_walker.push((w, c));
        }
        // Every open that is not some expected-open walker's correct open is false; it is charged
        // to the walker in view at the time (the lead if several), else to the lane's first walker.
        for (d, who) in got
            .iter()
            .filter(|(d, _)| d.message.outcome == Outcome::Open)
        {
            let legit = lane.walkers.iter().any(|w| {
                w.expected == "open"
                    && who.as_deref() == Some(w.identity.as_str())
                    && in_window(w, d)
            });
            if legit {
                continue;
            }
            let charged = per_walker
                .iter()
                .position(|(w, _)| Some(w.identity.as_str()) == who.as_deref() && in_window(w, d))
                .or_else(|| per_walker.iter().position(|(w, _)| in_window(w, d)))
                .unwrap_or(0);
            if let Some((_, c)) = per_walker.get_mut(charged) {
                c.false_opens += 1;
            }
        }
        for (w, c) in &per_walker {
            card.total.add(c);
            card.by_scenario
                .entry(if lane.scenario.is_empty() {
                    "-".into()
                } else {
                    lane.scenario.clone()
                })
                .or_default()
                .add(c);
            card.by_mask
                .entry(if w.mask { "mask" } else { "no mask" }.into())
                .or_default()
                .add(c);
        }
    }
    card
}

/// The scorecard as Markdown: one row for the total, then per scenario and per mask.
pub fn markdown(card: &Scorecard) -> String {
    let mut s = String::from(
        "| group | opens correct | missed | false opens | tailgating caught | missed | refusals with reason | unknown walkers |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let row = |name: &str, c: &Counts| {
        format!(
            "| {name} | {} / {} | {} | {} | {} / {} | {} | {} / {} | {} |\n",
            c.correct_opens,
            c.expected_opens,
            c.missed_opens,
            c.false_opens,
            c.tailgating_caught,
            c.tailgating,
            c.tailgating_missed,
            c.correct_refusals,
            c.expected_refusals,
            c.unknown_walkers
        )
    };
    s += &row("all", &card.total);
    for (k, c) in &card.by_scenario {
        s += &row(&format!("scenario {k}"), c);
    }
    for (k, c) in &card.by_mask {
        s += &row(k, c);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::truth::TruthLane;

    fn walker(id: &str, enrolled: bool, frames: (u64, u64), expected: &str) -> TruthWalker {
        TruthWalker {
            walker: id.into(),
            identity: id.into(),
            enrolled,
            first_frame: frames.0,
            last_frame: frames.1,
            mask: false,
            group: None,
            lead: expected == "tailgating",
            expected: expected.into(),
            reason: (expected == "closed")
                .then(|| if enrolled { "expired" } else { "unknown" }.into()),
        }
    }

    fn decision(
        lane: &str,
        at_ms: u64,
        outcome: Outcome,
        reason: &str,
        who: Option<&str>,
    ) -> DecisionRecord {
        DecisionRecord {
            lane: lane.into(),
            at_ms,
            door_command_ms: None,
            door_open_ms: None,
            message: protocol::Decision {
                v: 1,
                lane: lane.into(),
                track: 1,
                outcome,
                reason: reason.into(),
                subject: who.map(str::to_owned),
                similarity: None,
                margin: None,
                frames: 3,
                latency_ms: 0.0,
                t_unix_ms: 0,
            },
        }
    }

    fn truth() -> Truth {
        Truth {
            version: 1,
            fps: 10.0,
            width: 640,
            height: 480,
            enrol: vec![],
            lanes: vec![
                TruthLane {
                    lane: "L1".into(),
                    file: "L1.mp4".into(),
                    scenario: "normal".into(),
                    walkers: vec![
                        walker("ann", true, (0, 15), "open"),
                        walker("u1", false, (20, 35), "closed"),
                        walker("exp", true, (40, 55), "closed"),
                    ],
                },
                TruthLane {
                    lane: "L2".into(),
                    file: "L2.mp4".into(),
                    scenario: "dim".into(),
                    walkers: vec![walker("bob", true, (0, 15), "tailgating")],
                },
            ],
        }
    }

    #[test]
    fn a_perfect_run_scores_as_the_truth_says() {
        let d = vec![
            decision("L1", 1200, Outcome::Open, "granted", Some("ann")),
            decision("L1", 3600, Outcome::Closed, "unknown", None),
            decision("L1", 5200, Outcome::Closed, "expired", Some("exp")),
            decision("L2", 1000, Outcome::Tailgating, "tailgating", Some("bob")),
        ];
        let c = score(&truth(), &d, &|s| Some(s.to_owned()));
        let t = &c.total;
        assert_eq!(
            (
                t.expected_opens,
                t.correct_opens,
                t.missed_opens,
                t.false_opens
            ),
            (1, 1, 0, 0)
        );
        assert_eq!(
            (t.tailgating, t.tailgating_caught, t.tailgating_missed),
            (1, 1, 0)
        );
        assert_eq!(
            (t.expected_refusals, t.correct_refusals, t.unknown_walkers),
            (1, 1, 1)
        );
        assert_eq!(c.by_scenario["dim"].tailgating_caught, 1);
        assert_eq!(c.by_mask["no mask"].correct_opens, 1);
        assert!(markdown(&c).contains("| all | 1 / 1 | 0 | 0 | 1 / 1 | 0 | 1 / 1 | 1 |"));
    }

    #[test]
    fn wrong_person_late_open_and_let_through_pair_are_counted() {
        let d = vec![
            // ann's open comes far too late (after her window): missed, and false.
            decision("L1", 9000, Outcome::Open, "granted", Some("ann")),
            // the expired walker let through: false open.
            decision("L1", 5000, Outcome::Open, "granted", Some("exp")),
            // the tailgating pair opened.
            decision("L2", 1000, Outcome::Open, "granted", Some("bob")),
        ];
        let c = score(&truth(), &d, &|s| Some(s.to_owned()));
        let t = &c.total;
        assert_eq!((t.correct_opens, t.missed_opens, t.false_opens), (0, 1, 3));
        assert_eq!((t.tailgating_caught, t.tailgating_missed), (0, 1));
        assert_eq!(t.correct_refusals, 0);
        assert_eq!(c.by_scenario["dim"].false_opens, 1);
    }
}
