//! `gate-calibrate pad --journal FILE`: the PAD thresholds from a station's own honest walks.
//!
//! A lane run in `observe` mode for a while (docs/pad.md) journals every decision with `live`, the
//! mean live probability the rule judges (the latest `window` scores of the track), never acted on.
//! Those walks are the station's bona fide sample under its own cameras and light: from them come
//! the highest `threshold` that keeps BPCER at or under the target (an honest walker not shown live
//! goes to the card reader) and the highest `attack_below` that keeps the share of honest walkers
//! alarmed at or under its target. The attack side (APCER) cannot come from a journal: pictures
//! are measured with `gate-calibrate pad --attack` at the threshold proposed here.
//!
//! Input: `gated journal --kind decision --json` (one journal line per line, the decision as JSON
//! in its `detail`) or bare decisions, one per line.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

// The share of honest walks below a threshold is the genuine side's FNMR.
use crate::scores::{fnmr as below, threshold_for_bpcer};

/// One journal line as `gated journal --json` prints it (only what is read here).
#[derive(Deserialize)]
struct Line {
    kind: String,
    detail: String,
}

/// A decision (only what is read here).
#[derive(Deserialize)]
struct Decision {
    lane: String,
    outcome: String,
    #[serde(default)]
    live: Option<f32>,
}

/// What the journal holds for one lane.
#[derive(Debug, Default)]
pub struct LaneWalks {
    /// `live` of every decision that was not an alarm.
    pub live: Vec<f32>,
    /// Decisions without a `live` (PAD off, or nothing scored).
    pub unscored: usize,
    /// `live` of the alarms (outcome `attack`): left out of the honest sample.
    pub alarms: Vec<f32>,
}

/// Decisions per lane from the files' lines.
pub fn read(paths: &[PathBuf]) -> Result<BTreeMap<String, LaneWalks>> {
    let mut lanes: BTreeMap<String, LaneWalks> = BTreeMap::new();
    for path in paths {
        let file =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let at = || format!("{}:{}", path.display(), i + 1);
            let line = line.with_context(at)?;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some(d) = decision(line).with_context(at)? else {
                continue;
            };
            let walks = lanes.entry(d.lane).or_default();
            match d.live {
                None => walks.unscored += 1,
                Some(v) if !(0.0..=1.0).contains(&v) => {
                    bail!("{}: live {v} is not a probability (0–1)", at())
                }
                Some(v) if d.outcome == "attack" => walks.alarms.push(v),
                Some(v) => walks.live.push(v),
            }
        }
    }
    if lanes.is_empty() {
        bail!(
            "no decisions in {} (expected `gated journal --kind decision --json` output)",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(lanes)
}

/// The decision of one line: a journal line (other kinds are `None`) or a bare decision.
fn decision(line: &str) -> Result<Option<Decision>> {
    let v: serde_json::Value = serde_json::from_str(line).context("not JSON")?;
    if v.get("detail").is_some() {
        let l: Line = serde_json::from_value(v).context("not a journal line")?;
        if l.kind != "decision" {
            return Ok(None);
        }
        return serde_json::from_str(&l.detail)
            .map(Some)
            .context("the line's detail is not a decision");
    }
    serde_json::from_value(v)
        .map(Some)
        .context("neither a journal line nor a decision")
}

/// The proposal for one group of walks.
#[derive(Debug, PartialEq)]
pub struct Proposal {
    /// Highest live threshold with BPCER at or under the target.
    pub threshold: Option<f32>,
    /// Highest attack threshold (≤ `threshold`) alarming at most the target share of walks.
    pub attack_below: Option<f32>,
}

pub fn propose(live: &[f32], bpcer: f64, alarm_rate: f64) -> Proposal {
    let threshold = threshold_for_bpcer(live, bpcer);
    let attack_below = threshold_for_bpcer(live, alarm_rate)
        .zip(threshold)
        .map(|(a, t)| a.min(t));
    Proposal {
        threshold,
        attack_below,
    }
}

pub struct Targets {
    pub threshold: f32,
    pub attack_below: f32,
    pub bpcer: f64,
    pub alarm_rate: f64,
}

pub fn run(paths: &[PathBuf], t: &Targets) -> Result<()> {
    if !(0.0..=1.0).contains(&t.threshold) || !(0.0..=t.threshold).contains(&t.attack_below) {
        bail!(
            "--threshold must be in 0..=1 (is {}) and --attack-below in 0..=threshold (is {})",
            t.threshold,
            t.attack_below
        );
    }
    let share = |x: f64| x > 0.0 && x < 0.5;
    if !share(t.bpcer) || !share(t.alarm_rate) {
        bail!(
            "--bpcer (is {}) and --alarm-rate (is {}) are shares above 0 and below 0.5",
            t.bpcer,
            t.alarm_rate
        );
    }
    let lanes = read(paths)?;
    print!("{}", report(&lanes, t));
    Ok(())
}

/// The report as printed: per lane and for all lanes together.
pub fn report(lanes: &BTreeMap<String, LaneWalks>, t: &Targets) -> String {
    let mut out = format!(
        "honest walks from the journal (decisions with a live value, alarms left out); now: threshold {:.2}, attack_below {:.2}; targets: BPCER ≤ {:.1} %, honest walkers alarmed ≤ {:.1} %\n",
        t.threshold,
        t.attack_below,
        100.0 * t.bpcer,
        100.0 * t.alarm_rate
    );
    out += &format!(
        "{:<8} {:>6} {:>6} {:>7} {:>7} {:>9} {:>9} {:>10} {:>12}\n",
        "lane",
        "walks",
        "alarms",
        "median",
        "min",
        "BPCER now",
        "alarm now",
        "threshold",
        "attack_below"
    );
    let all: Vec<f32> = lanes
        .values()
        .flat_map(|w| w.live.iter().copied())
        .collect();
    let mut rows: Vec<(&str, &[f32], usize)> = lanes
        .iter()
        .map(|(l, w)| (l.as_str(), w.live.as_slice(), w.alarms.len()))
        .collect();
    let alarms: usize = lanes.values().map(|w| w.alarms.len()).sum();
    rows.push(("all", &all, alarms));
    // Thresholds are printed rounded down: rounded up, the lowest walk kept would fall below.
    let fmt = |v: Option<f32>| v.map_or("-".to_owned(), |v| format!("{:.3}", floor3(v)));
    let pct = |live: &[f32], t: f32| {
        if live.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.1}%", 100.0 * below(live, t))
        }
    };
    for (lane, live, alarms) in &rows {
        let mut s = live.to_vec();
        s.sort_by(f32::total_cmp);
        let p = propose(live, t.bpcer, t.alarm_rate);
        out += &format!(
            "{:<8} {:>6} {:>6} {:>7} {:>7} {:>9} {:>9} {:>10} {:>12}\n",
            lane,
            live.len(),
            alarms,
            s.get(s.len() / 2)
                .map_or("-".to_owned(), |v| format!("{v:.3}")),
            s.first().map_or("-".to_owned(), |v| format!("{v:.3}")),
            pct(live, t.threshold),
            pct(live, t.attack_below),
            fmt(p.threshold),
            fmt(p.attack_below),
        );
    }
    let unscored: usize = lanes.values().map(|w| w.unscored).sum();
    if unscored > 0 {
        out += &format!(
            "{unscored} decisions had no live value (PAD off or nothing scored): not counted\n"
        );
    }
    // A share of r cannot be told from fewer than 1/r walks: the quantile would be the lowest
    // value seen, whatever the station's real rate.
    let needed = (1.0 / t.bpcer.min(t.alarm_rate)).ceil() as usize;
    if alarms > 0 {
        out += &format!(
            "{alarms} alarms were left out: ask the staff whether they were pictures; an honest walker among them means the lane was not in observe mode or attack_below is too high\n"
        );
    }
    let p = propose(&all, t.bpcer, t.alarm_rate);
    match (p.threshold, p.attack_below) {
        (Some(th), Some(ab)) if all.len() >= needed => {
            let (th, ab) = (floor3(th), floor3(ab.min(t.threshold)));
            // A lower attack threshold only spares honest walkers the alarm (a grant still needs
            // the live threshold); a lower live threshold lets more pictures through, which honest
            // walks cannot measure: that one is never proposed, only reported.
            out += &format!("proposed [pad]: attack_below = {ab:.3}\n");
            if th >= t.threshold {
                out += &format!(
                    "the threshold {:.3} meets the BPCER target; it could rise to {th:.3} (fewer pictures through) with BPCER still within it\n",
                    t.threshold
                );
            } else {
                out += &format!(
                    "the threshold {:.3} misses the BPCER target on these walks ({:.1} % not shown live); {th:.3} would meet it, but a lower threshold lets more pictures through: measure their APCER at it first (`gate-calibrate pad --attack SPECIES=PATH --threshold {th:.3}`), and see docs/pad.md on why observe-mode values run low\n",
                    t.threshold,
                    100.0 * below(&all, t.threshold)
                );
            }
        }
        _ => {
            out += &format!(
                "nothing proposed: {} walks, and the targets need at least {needed} (the thresholds above are the lowest values seen)\n",
                all.len()
            );
        }
    }
    out
}

/// `v` rounded down to three decimals.
fn floor3(v: f32) -> f32 {
    (v * 1000.0).floor() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_line(lane: &str, outcome: &str, live: Option<f32>) -> String {
        let mut d = serde_json::json!({
            "v": 1, "lane": lane, "track": 3, "outcome": outcome, "reason": "granted",
            "frames": 12, "latency_ms": 40.0, "t_unix_ms": 1_700_000_000_000u64,
        });
        if let Some(v) = live {
            d["live"] = v.into();
        }
        serde_json::json!({
            "seq": 7, "t_unix_ms": 1_700_000_000_000u64, "lane": lane, "kind": "decision",
            "detail": d.to_string(),
        })
        .to_string()
    }

    fn write(lines: &[String]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        std::fs::write(&p, lines.join("\n")).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_decisions_per_lane_and_leaves_alarms_and_other_kinds_out() {
        let door = serde_json::json!({
            "seq": 1, "t_unix_ms": 1, "lane": "L1", "kind": "door_command", "detail": "open",
        })
        .to_string();
        let bare = serde_json::json!({"lane": "L2", "outcome": "closed", "live": 0.7}).to_string();
        let (_d, p) = write(&[
            journal_line("L1", "open", Some(0.9)),
            door,
            String::new(),
            journal_line("L1", "attack", Some(0.05)),
            journal_line("L1", "not_decided", None),
            bare,
        ]);
        let lanes = read(&[p]).unwrap();
        assert_eq!(lanes["L1"].live, vec![0.9]);
        assert_eq!(lanes["L1"].alarms, vec![0.05]);
        assert_eq!(lanes["L1"].unscored, 1);
        assert_eq!(lanes["L2"].live, vec![0.7]);
    }

    #[test]
    fn bad_lines_are_named() {
        let (_d, p) = write(&[journal_line("L1", "open", Some(0.9)), "{not json".into()]);
        let e = format!("{:#}", read(&[p]).unwrap_err());
        assert!(
            e.contains("journal.jsonl:2") && e.contains("not JSON"),
            "{e}"
        );
        let (_d, p) = write(&[journal_line("L1", "open", Some(7.0))]);
        let e = format!("{:#}", read(&[p]).unwrap_err());
        assert!(e.contains(":1") && e.contains("not a probability"), "{e}");
        let (_d, p) = write(&[r#"{"kind":"decision","detail":"{}"}"#.into()]);
        let e = format!("{:#}", read(&[p]).unwrap_err());
        assert!(e.contains("detail is not a decision"), "{e}");
        let (_d, p) = write(&[]);
        assert!(read(&[p]).is_err());
    }

    #[test]
    fn proposes_the_highest_thresholds_within_the_targets() {
        // 200 honest walks, live 0.005, 0.010, … 1.0.
        let live: Vec<f32> = (1..=200).map(|i| i as f32 / 200.0).collect();
        let p = propose(&live, 0.02, 0.005);
        // 4 of 200 may be refused (2 %): the threshold is the fifth lowest; 1 of 200 alarmed.
        assert_eq!(p.threshold, Some(0.025));
        assert_eq!(p.attack_below, Some(0.01));
        assert_eq!(below(&live, 0.025), 0.02);
        assert_eq!(below(&live, 0.01), 0.005);
        // The attack threshold never passes the live one.
        assert_eq!(propose(&live, 0.0, 0.4).attack_below, Some(0.005));
        assert_eq!(
            propose(&[], 0.02, 0.005),
            Proposal {
                threshold: None,
                attack_below: None
            }
        );
    }

    #[test]
    fn the_report_says_what_the_sample_cannot_tell() {
        let mut lanes = BTreeMap::new();
        lanes.insert(
            "L1".to_owned(),
            LaneWalks {
                live: vec![0.3, 0.8, 0.9],
                unscored: 2,
                alarms: vec![0.1],
            },
        );
        let t = Targets {
            threshold: 0.6,
            attack_below: 0.2,
            bpcer: 0.02,
            alarm_rate: 0.005,
        };
        let r = report(&lanes, &t);
        assert!(r.contains("nothing proposed: 3 walks"), "{r}");
        assert!(r.contains("need at least 200"), "{r}");
        assert!(r.contains("1 alarms were left out"), "{r}");
        assert!(r.contains("2 decisions had no live value"), "{r}");
        // Enough walks: proposed, rounded down so the lowest walk kept stays at or above it.
        lanes.insert(
            "L2".to_owned(),
            LaneWalks {
                live: (0..300).map(|i| 0.61277 + i as f32 / 1000.0).collect(),
                ..LaneWalks::default()
            },
        );
        let r = report(&lanes, &t);
        assert!(r.contains("proposed [pad]: attack_below = 0.600"), "{r}");
        assert!(r.contains("could rise to 0.617"), "{r}");
        // Walks that need a lower threshold: reported, never proposed.
        let low: Vec<f32> = (0..300).map(|i| 0.2 + i as f32 / 1000.0).collect();
        let mut lanes = BTreeMap::new();
        lanes.insert(
            "L1".to_owned(),
            LaneWalks {
                live: low,
                ..LaneWalks::default()
            },
        );
        let r = report(&lanes, &t);
        assert!(r.contains("misses the BPCER target"), "{r}");
        assert!(r.contains("proposed [pad]: attack_below = 0.20"), "{r}");
        // A lane with no scored walk shows no rates.
        lanes.insert("L3".to_owned(), LaneWalks::default());
        assert!(
            report(&lanes, &t)
                .lines()
                .any(|l| l.starts_with("L3") && l.contains(" - "))
        );
    }
}
