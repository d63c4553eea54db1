//! `gated ctl`: the operator's client. It asks the running gated (over zenoh, on the endpoints gated
//! listens on) rather than talking to the doors itself, so gated stays the one writer of door commands
//! and every operator action lands in its journal.

use std::time::Duration;

use protocol::{
    CtlDoor, CtlReply, CtlRequest, DoorAction, DoorState, Health, JournalLine, JournalQuery, Keys,
    VERSION, ZenohEndpoints, decode, encode,
};

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("zenoh")]
    Zenoh(#[source] zenoh::Error),
    #[error(transparent)]
    Protocol(#[from] protocol::ProtocolError),
    #[error(
        "no answer from gated of station {station} within {secs} s (is it running, and listening on {endpoints:?}?)"
    )]
    NoAnswer {
        station: String,
        secs: u64,
        endpoints: Vec<String>,
    },
    #[error("bad reply from gated")]
    Reply(#[source] protocol::ProtocolError),
    #[error("gated answered with an error: {0}")]
    Refused(String),
    #[error(
        "the door driver of lane {lane} did not acknowledge command {seq} within {secs} s (is it running?)"
    )]
    NotAcknowledged { lane: String, seq: u64, secs: u64 },
}

pub async fn request(
    station: &str,
    bus: &ZenohEndpoints,
    door: Option<(String, DoorAction)>,
    timeout: Duration,
) -> Result<CtlReply, CtlError> {
    let keys = Keys::new(station)?;
    let session = open(bus).await?;
    let req = CtlRequest {
        v: VERSION,
        door: door.map(|(lane, action)| CtlDoor { lane, action }),
        journal: None,
    };
    let result = ask(&session, &keys, &req, station, bus, timeout).await;
    let _ = session.close().await;
    result
}

/// The running gated's journal entries matching `q` (`gated journal`).
pub async fn journal(
    station: &str,
    bus: &ZenohEndpoints,
    q: JournalQuery,
    timeout: Duration,
) -> Result<Vec<JournalLine>, CtlError> {
    let keys = Keys::new(station)?;
    let session = open(bus).await?;
    let req = CtlRequest {
        v: VERSION,
        door: None,
        journal: Some(q),
    };
    let result = ask(&session, &keys, &req, station, bus, timeout).await;
    let _ = session.close().await;
    match result? {
        CtlReply {
            ok: true,
            journal: Some(lines),
            ..
        } => Ok(lines),
        reply => Err(CtlError::Refused(reply.message)),
    }
}

/// Sends a door command through gated and waits until the lane's door driver acknowledges it (its
/// state names the command's epoch and echoes its seq): the reply and the acknowledging state.
pub async fn door(
    station: &str,
    bus: &ZenohEndpoints,
    lane: &str,
    action: DoorAction,
    timeout: Duration,
) -> Result<(CtlReply, DoorState), CtlError> {
    let keys = Keys::new(station)?;
    let session = open(bus).await?;
    // Subscribed before the command goes out, so the acknowledging state cannot be missed.
    let states = session
        .declare_subscriber(keys.door_state(lane))
        .await
        .map_err(CtlError::Zenoh)?;
    let req = CtlRequest {
        v: VERSION,
        door: Some(CtlDoor {
            lane: lane.to_owned(),
            action,
        }),
        journal: None,
    };
    let result = async {
        let reply = ask(&session, &keys, &req, station, bus, timeout).await?;
        let (Some(seq), Some(epoch), true) = (reply.seq, reply.epoch, reply.ok) else {
            return Err(CtlError::Refused(reply.message));
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let sample = tokio::time::timeout_at(deadline, states.recv_async()).await;
            let Ok(Ok(sample)) = sample else {
                return Err(CtlError::NotAcknowledged {
                    lane: lane.to_owned(),
                    seq,
                    secs: timeout.as_secs(),
                });
            };
            // A malformed state is someone else's problem (gated counts it); keep waiting.
            // Another epoch's acknowledgement says nothing about gated's command.
            if let Ok(state) = decode::<DoorState>(&sample.payload().to_bytes())
                && state.acknowledges(epoch, seq)
            {
                return Ok((reply, state));
            }
        }
    }
    .await;
    let _ = session.close().await;
    result
}

async fn open(bus: &ZenohEndpoints) -> Result<zenoh::Session, CtlError> {
    zenoh::open(protocol::zenoh_config(bus)?)
        .await
        .map_err(CtlError::Zenoh)
}

async fn ask(
    session: &zenoh::Session,
    keys: &Keys,
    req: &CtlRequest,
    station: &str,
    bus: &ZenohEndpoints,
    timeout: Duration,
) -> Result<CtlReply, CtlError> {
    let deadline = tokio::time::Instant::now() + timeout;
    // The session may still be connecting: retry the query until the deadline.
    loop {
        let replies = session
            .get(keys.ctl())
            .payload(encode(req))
            .timeout(Duration::from_millis(800))
            .await
            .map_err(CtlError::Zenoh)?;
        if let Ok(reply) = replies.recv_async().await {
            return match reply.result() {
                Ok(sample) => {
                    decode::<CtlReply>(&sample.payload().to_bytes()).map_err(CtlError::Reply)
                }
                Err(e) => Err(CtlError::Refused(format!("{:?}", e.payload().to_bytes()))),
            };
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CtlError::NoAnswer {
                station: station.into(),
                secs: timeout.as_secs(),
                endpoints: bus.connect.clone(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The station's health as a table for people: one line per lane, and why a lane is degraded.
pub fn format_status(h: &Health) -> String {
    let head = format!(
        "station {}   GPU {}{}\n",
        h.station,
        h.gpu_adapter,
        if h.gpu_lost { " (LOST)" } else { "" }
    );
    let rows = h.lanes.iter().map(|l| {
        vec![
            l.lane.clone(),
            wire_name(&l.status),
            l.frames_in.to_string(),
            l.frames_processed.to_string(),
            l.frames_dropped.to_string(),
            format!("{:.2}", l.luma_mean),
            l.illumination.to_string(),
            l.door.as_ref().map_or("-".into(), wire_name),
            l.door_mode.as_ref().map_or("-".into(), wire_name),
            l.reason.clone().unwrap_or_default(),
        ]
    });
    let header = [
        "lane",
        "camera",
        "in",
        "done",
        "dropped",
        "luma",
        "light%",
        "door",
        "door mode",
        "reason",
    ];
    head + &crate::table::table(&header, &[2, 3, 4, 5, 6], rows)
}

/// A state's name as the protocol spells it (`failsafe_closed`), as docs/protocol.md lists them.
fn wire_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v)
        .map(|s| s.trim_matches('"').to_owned())
        .unwrap_or_default()
}

/// Journal lines as a table for people: time (UTC), lane, kind, detail.
pub fn format_journal(lines: &[JournalLine]) -> String {
    let rows = lines.iter().map(|l| {
        let t = chrono::DateTime::from_timestamp_millis(l.t_unix_ms as i64)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
            .unwrap_or_else(|| l.t_unix_ms.to_string());
        vec![
            l.seq.to_string(),
            t,
            l.lane.clone(),
            l.kind.clone(),
            l.detail.clone(),
        ]
    });
    crate::table::table(&["seq", "time (UTC)", "lane", "kind", "detail"], &[0], rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{DoorMode, Flap, LaneHealth, LaneStatus, VERSION};

    #[test]
    fn the_status_table_has_a_line_per_lane_numbers_right_and_the_reason_last() {
        let lane = |id: &str, frames: u64, reason: Option<&str>| LaneHealth {
            lane: id.into(),
            status: LaneStatus::Running,
            frames_in: frames,
            frames_processed: frames,
            frames_dropped: 0,
            luma_mean: 0.5,
            illumination: 40,
            door: Some(Flap::Closed),
            door_mode: Some(DoorMode::FailsafeClosed),
            door_age_ms: Some(10),
            reason: reason.map(str::to_owned),
        };
        let h = Health {
            v: VERSION,
            station: "s1".into(),
            gpu_adapter: "llvmpipe".into(),
            gpu_lost: false,
            lanes: vec![lane("L1", 7, None), lane("L2", 12345, Some("source ended"))],
            t_unix_ms: 0,
        };
        let text = format_status(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "station s1   GPU llvmpipe");
        assert!(
            lines[1].starts_with("lane ") && lines[1].ends_with("reason"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("L1 ") && lines[3].starts_with("L2 "),
            "{text}"
        );
        // Right-aligned: the short count ends where the long one does.
        let end = |l: &str, n: &str| l.find(n).map(|i| i + n.len());
        assert_eq!(end(lines[2], " 7 "), end(lines[3], "12345 "), "{text}");
        assert!(lines[2].contains("failsafe_closed") && lines[3].ends_with("source ended"));
    }
}
