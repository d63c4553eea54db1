//! Starting a station: every part opened in order, the tick started, the lanes' state made.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::{Inputs, LaneState, Station, StationError};
use crate::capture::{Capture, CaptureEvent, CaptureMode};
use crate::config::{StationConfig, SyncConfig};
use crate::decide::View;
use crate::decide::decisions::Decisions;
use crate::drive::{Incoming, LightingLoop, Link, Outbox};
use crate::normalise::Gpu;
use crate::recognise::tick::{GpuStage, Recognition, Settled};
use crate::recognise::{LaneScope, Recogniser};
use crate::store::{JournalWriter, Store};
use crate::sync::{StationKeys, SyncHandle, Syncer};

impl Station {
    /// Opens the store, metrics, drivers, zenoh link, sync, GPU, recogniser and capture, in that
    /// order, and starts the tick.
    pub(super) async fn start(cfg: StationConfig) -> Result<(Self, Inputs), StationError> {
        let keys = protocol::Keys::new(cfg.station_id()).map_err(StationError::Id)?;
        let store = Arc::new(Store::open(&cfg.store.path)?);
        let journal = JournalWriter::start(store.clone());
        let lane_ids = cfg.lane_ids();
        let mut board = match cfg.metrics.enabled {
            true => {
                let b = crate::telemetry::install(&cfg.metrics, &lane_ids).await?;
                info!(addr = %cfg.metrics.listen,
                    "lane view at http://{0}/, metrics at /metrics, health at /healthz and /readyz",
                    cfg.metrics.listen);
                Some(b)
            }
            false => None,
        };
        metrics::counter!(crate::telemetry::names::GPU_LOSSES).absolute(store.gpu_losses()?);
        let drivers = match cfg.drivers.spawn {
            true => Some(crate::drive::spawn::spawn(
                &cfg.drivers,
                &cfg.zenoh,
                cfg.station_id(),
                &lane_ids,
            )?),
            false => None,
        };
        let (inc_tx, mut incoming) = mpsc::unbounded_channel();
        let endpoints = cfg.zenoh_endpoints()?;
        if let protocol::BusSecurity::Tls(files) = &endpoints.security {
            crate::telemetry::bus_certificates(files);
        }
        let link = Link::open(keys, &endpoints, inc_tx).await?;
        let sync = match &cfg.sync {
            Some(s) => Some(start_sync(cfg.station_id(), s, store.clone(), &link).await?),
            None => None,
        };
        let outbox = Outbox::new(
            link,
            journal,
            &lane_ids,
            Duration::from_millis(cfg.drivers.ack_timeout_ms),
        )?;
        let gpu = Arc::new(Gpu::open(&cfg.gpu)?);
        let adapter = gpu.adapter_name();
        let (recognition, decisions) = recognition(&cfg, &gpu, sync.as_ref(), &store)?;
        let recogniser = recognition.as_ref().map(|r| r.recogniser.backend_name());
        let early = match drivers.is_some() {
            true => await_drivers(&mut incoming, &lane_ids, DRIVERS_WITHIN).await,
            false => Vec::new(),
        };
        if let (Some(h), Some(s)) = (&sync, &cfg.sync) {
            // Longer than one catch-up query may take, so a first query sent before the link was
            // up cannot use up the wait that the centre's arrival should end.
            let within =
                SYNC_WITHIN.max(Duration::from_millis(s.query_timeout_ms) + SYNC_WITHIN / 5);
            await_centre(h, within).await;
        }
        let t0 = Instant::now();
        let (cap_tx, capture_rx) = mpsc::unbounded_channel::<CaptureEvent>();
        let capture = Capture::start(&cfg.cameras(), &cfg.capture, cap_tx)?;
        // A lane's two cameras are handed to the station as one instant (`capture::hub`).
        let streams = cfg.streams();
        for (lower, &(lane, view)) in streams.iter().enumerate() {
            if view == View::Lower {
                let within = Duration::from_millis(crate::decide::views::TWIN_MS);
                capture.hub.twin(lane, lower, within);
            }
        }
        let (tick_tx, tick_rx) = mpsc::unbounded_channel();
        let stage = GpuStage::start(
            gpu.clone(),
            cfg.normalise,
            capture.hub.clone(),
            capture.counters.clone(),
            tick_tx,
            recognition,
            match cfg.capture.mode {
                CaptureMode::Benchmark => Duration::ZERO,
                CaptureMode::Realtime => Duration::from_millis(cfg.gpu.tick_ms),
            },
        )
        .map_err(StationError::Tick)?;
        let lanes: Vec<LaneState> = lane_ids
            .iter()
            .map(|id| LaneState {
                id: id.clone(),
                lighting: LightingLoop::new(cfg.lighting.clone()),
                lighting_commands: 0,
                luma_mean: 0.0,
                door: None,
                door_heard: t0,
                light: None,
                gpu_ns_sum: 0,
                gpu_frames: 0,
                status_detail: None,
                latch: protocol::DoorAction::Release,
            })
            .collect();
        let index = lane_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        let operator = board.as_mut().and_then(|b| b.operator.take());
        let stall = super::stall::StallWatch::new(
            (cfg.capture.mode == CaptureMode::Realtime)
                .then(|| Duration::from_millis(cfg.recognise.stall_ms)),
        );
        let station = Self {
            cfg,
            adapter,
            outbox,
            capture,
            stage,
            decisions,
            recogniser,
            lanes,
            index,
            streams,
            gpu_lost: false,
            stall,
            t0,
            ticks: Vec::new(),
            normalised_s: Vec::new(),
            viewed: (0, 0),
            heartbeat_late_s: Vec::new(),
            decide_s: Vec::new(),
            board,
            store,
            sync,
            drivers,
        };
        let inputs = Inputs {
            operator,
            early,
            capture: capture_rx,
            tick: tick_rx,
            incoming,
        };
        Ok((station, inputs))
    }
}

/// How long a station that starts its own drivers waits for them before it plays anyway.
const DRIVERS_WITHIN: Duration = Duration::from_secs(15);

/// A station that starts its own drivers captures nothing before each lane's door and light
/// driver has reported: a door command's deadline is written on the driver's clock, which only its
/// state tells, so a walker decided earlier would find no door to open. (Recorded footage starts
/// at once and its first walker is decided within a second; live cameras lose nothing by waiting.)
/// Returns what arrived meanwhile, for the station loop to handle first, in order.
async fn await_drivers(
    incoming: &mut mpsc::UnboundedReceiver<Incoming>,
    lanes: &[String],
    within: Duration,
) -> Vec<Incoming> {
    let mut early = Vec::new();
    let mut door = std::collections::BTreeSet::new();
    let mut light = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + within;
    while door.len() < lanes.len() || light.len() < lanes.len() {
        let Ok(Some(inc)) = tokio::time::timeout_at(deadline, incoming.recv()).await else {
            let missing: Vec<String> = lanes
                .iter()
                .flat_map(|l| {
                    let d = (!door.contains(l)).then(|| format!("door {l}"));
                    let g = (!light.contains(l)).then(|| format!("light {l}"));
                    d.into_iter().chain(g)
                })
                .collect();
            warn!(
                ?missing,
                "drivers not heard within {within:?}; capturing anyway, and their lanes' door commands fail until they report"
            );
            return early;
        };
        match &inc {
            Incoming::Door(l, ..) if lanes.contains(l) => {
                door.insert(l.clone());
            }
            Incoming::Light(l, ..) if lanes.contains(l) => {
                light.insert(l.clone());
            }
            _ => {}
        }
        early.push(inc);
    }
    info!(messages = early.len(), "every lane's drivers heard");
    early
}

/// How long a station with `[sync]` waits for its first catch-up before it captures anyway (at
/// least: longer when `[sync] query_timeout_ms` is).
const SYNC_WITHIN: Duration = Duration::from_secs(12);

/// A station following a centre captures nothing before its first catch-up (or `within`): the
/// store's gallery may miss the latest enrolments, and still hold subjects erased meanwhile, whom
/// the station must not recognise. A centre out of reach costs a start `within`, no more: the
/// station then decides from its store, as offline stations do (docs/protocol.md).
async fn await_centre(sync: &SyncHandle, within: Duration) {
    let mut caught_up = sync.caught_up.clone();
    match tokio::time::timeout(within, caught_up.wait_for(|c| *c)).await {
        Ok(Ok(_)) => info!(
            subjects = sync.syncer.gallery().len(),
            "caught up with the centre"
        ),
        _ => warn!(
            subjects = sync.syncer.gallery().len(),
            "no catch-up with the centre completed within {within:?} (unreachable, or its answers refused: see the sync warnings); deciding from the store's gallery until one does"
        ),
    }
}

/// With `[sync]` and `[recognise] enabled`: the recogniser for the tick and the deciders for the
/// station. Recognition needs a gallery, so without `[sync]` the lanes stay in IC-card mode: the
/// deciders are still made, with an empty gallery, because the card readers beside the cameras
/// are judged there.
#[allow(clippy::type_complexity)]
fn recognition(
    cfg: &StationConfig,
    gpu: &Gpu,
    sync: Option<&SyncHandle>,
    store: &Arc<Store>,
) -> Result<
    (
        Option<Recognition>,
        Option<(Decisions, watch::Sender<Settled>)>,
    ),
    StationError,
> {
    match (sync, cfg.recognise.enabled) {
        (Some(h), true) => {
            let pad = cfg.pad_models();
            let streams = cfg.streams();
            let recogniser = Recogniser::new(gpu, &cfg.recognise, streams.len(), pad.as_deref())?;
            let gallery = h.syncer.gallery().clone();
            let decisions = Decisions::new(
                cfg.station_id(),
                &cfg.decision,
                cfg.gate_lanes(),
                recogniser.mirror.numbers(),
                gallery.clone(),
                store.clone(),
            )?;
            // One scope per capture stream: a lower camera's zone is in its own frame.
            let gate_lanes = cfg.gate_lanes();
            let lanes = (streams.iter())
                .filter_map(|&(lane, view)| {
                    let l = gate_lanes.get(lane)?;
                    let zone = match view {
                        View::Upper => l.zone,
                        View::Lower => l.lower?.zone,
                    };
                    Some(LaneScope {
                        settled: Vec::new(),
                        gates: Some(l.fusion.gates),
                        zone: Some(zone),
                    })
                })
                .collect();
            let (recognition, settled) = Recognition::new(
                recogniser,
                gallery,
                cfg.recognise.narrow_to_ticket_holders,
                lanes,
                Duration::from_millis(cfg.decision.confirm_ms),
            );
            let recognition = recognition
                .with_lanes_of(&streams.iter().map(|&(lane, _)| lane).collect::<Vec<_>>());
            Ok((Some(recognition), Some((decisions, settled))))
        }
        (sync, enabled) => {
            if sync.is_none() && enabled {
                info!(
                    "no [sync] section: no gallery, so no recognition; lanes stay in IC-card mode"
                );
            }
            let decisions = Decisions::new(
                cfg.station_id(),
                &cfg.decision,
                cfg.gate_lanes(),
                crate::recognise::SubjectNumbers::default(),
                crate::sync::Gallery::new(),
                store.clone(),
            )?;
            Ok((
                None,
                Some((decisions, watch::channel(Settled::default()).0)),
            ))
        }
    }
}

/// Loads the gallery from the store and starts following the centre (`crate::sync`).
async fn start_sync(
    station: &str,
    s: &SyncConfig,
    store: Arc<Store>,
    link: &Link,
) -> Result<SyncHandle, StationError> {
    let keys = StationKeys::load(station, s).map_err(StationError::SyncKeys)?;
    let syncer = Arc::new(Syncer::load(keys, store).map_err(StationError::Sync)?);
    crate::sync::spawn(
        syncer,
        link.session.clone(),
        s.batch,
        Duration::from_secs(s.poll_s),
        Duration::from_millis(s.query_timeout_ms),
    )
    .await
    .map_err(StationError::SyncZenoh)
}
