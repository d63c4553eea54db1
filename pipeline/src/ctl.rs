//! `gated ctl`: the operator's client. It asks the running gated (over zenoh, on the endpoints gated
//! listens on) rather than talking to the doors itself, so gated stays the one writer of door commands
//! and every operator action lands in its journal.

use std::time::Duration;

use protocol::{
    CtlDoor, CtlReply, CtlRequest, DoorAction, Keys, VERSION, ZenohEndpoints, decode, encode,
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
}

pub async fn request(
    station: &str,
    gated_endpoints: &[String],
    door: Option<(String, DoorAction)>,
    timeout: Duration,
) -> Result<CtlReply, CtlError> {
    let keys = Keys::new(station)?;
    let ep = ZenohEndpoints {
        listen: vec![],
        connect: gated_endpoints.to_vec(),
    };
    let session = zenoh::open(protocol::zenoh_config(&ep)?)
        .await
        .map_err(CtlError::Zenoh)?;
    let req = CtlRequest {
        v: VERSION,
        door: door.map(|(lane, action)| CtlDoor { lane, action }),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    // The session may still be connecting: retry the query until the deadline.
    let result = loop {
        let replies = session
            .get(keys.ctl())
            .payload(encode(&req))
            .timeout(Duration::from_millis(800))
            .await
            .map_err(CtlError::Zenoh)?;
        if let Ok(reply) = replies.recv_async().await {
            break match reply.result() {
                Ok(sample) => {
                    decode::<CtlReply>(&sample.payload().to_bytes()).map_err(CtlError::Reply)
                }
                Err(e) => Err(CtlError::Refused(format!("{:?}", e.payload().to_bytes()))),
            };
        }
        if tokio::time::Instant::now() >= deadline {
            break Err(CtlError::NoAnswer {
                station: station.into(),
                secs: timeout.as_secs(),
                endpoints: gated_endpoints.to_vec(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = session.close().await;
    result
}
