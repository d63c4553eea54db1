//! The zenoh side of the drivers: one task per process that owns every lane's controller, so no locks
//! are needed. It waits on the subscriptions, the ~10 ms control tick and the shutdown signal, and
//! publishes each lane's state when it changes and periodically (late subscribers and gated's
//! staleness checks rely on the periodic copies).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use protocol::{
    DoorCommand, DoorSim, DoorState, Emergency, Keys, LightCommand, LightState, Message, decode,
    encode,
};
use tracing::{debug, info, warn};
use zenoh::Session;
use zenoh::pubsub::Publisher;
use zenoh::sample::{Sample, SampleKind};

use crate::Handled;
use crate::door::DoorController;
use crate::error::DriverError;
use crate::flap::{FlapHardware, SimFlap};
use crate::light::{LightController, LightHardware, SimLight};
use crate::settings::{BusArgs, DoorDriverSettings, LightDriverSettings};

/// Control period of both drivers.
pub const TICK: Duration = Duration::from_millis(10);
/// Door state is republished at least this often.
pub const DOOR_STATE_PERIOD: Duration = Duration::from_millis(200);
/// Light state is republished this often while the illumination ramps …
pub const LIGHT_RAMP_PERIOD: Duration = Duration::from_millis(50);
/// … and this often when it is steady.
pub const LIGHT_STATE_PERIOD: Duration = Duration::from_secs(1);

/// Runs the door driver with a simulated flap per lane until `shutdown` resolves.
pub async fn run_door_driver(
    settings: DoorDriverSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let travel = settings.door_config()?.travel;
    run_door_driver_with(settings, |_lane: &str| SimFlap::new(travel), shutdown).await
}

/// Runs the door driver on the hardware `make_hw` returns for each lane until `shutdown` resolves.
pub async fn run_door_driver_with<H: FlapHardware>(
    settings: DoorDriverSettings,
    mut make_hw: impl FnMut(&str) -> H,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let (keys, lane_ids) = settings.bus.validate()?;
    let cfg = settings.door_config()?;
    let session = open(&settings.bus).await?;
    let mut lanes = BTreeMap::new();
    for lane in lane_ids {
        let ctl = DoorController::new(lane.clone(), cfg.clone(), make_hw(&lane));
        let out = Outlet::declare(&session, keys.door_state(&lane)).await?;
        lanes.insert(lane, DoorLane { ctl, out });
    }
    info!(
        station = keys.station(),
        lanes = ?lanes.keys().collect::<Vec<_>>(),
        listen = ?settings.bus.listen,
        connect = ?settings.bus.connect,
        failsafe = ?cfg.failsafe,
        watchdog_ms = cfg.watchdog.as_millis() as u64,
        "door driver up",
    );
    let result = door_loop(&session, &keys, &mut lanes, shutdown).await;
    close(session).await;
    result
}

struct DoorLane<H> {
    ctl: DoorController<H>,
    out: Outlet<DoorState>,
}

impl<H: FlapHardware> DoorLane<H> {
    async fn publish(&mut self, now: Instant) {
        let cur = self.ctl.state();
        let due = match &self.out.last {
            None => true,
            Some((prev, at)) => {
                door_changed(prev, &cur) || now.saturating_duration_since(*at) >= DOOR_STATE_PERIOD
            }
        };
        if due {
            self.out.put(cur, now).await;
        }
    }
}

/// Position moves every tick while the flap travels; publishing each 10 ms step would flood the bus,
/// so a stroke is reported in steps of a tenth (the end positions come with the flap state change).
fn door_changed(prev: &DoorState, cur: &DoorState) -> bool {
    prev.flap != cur.flap
        || prev.mode != cur.mode
        || prev.obstructed != cur.obstructed
        || prev.ack_seq != cur.ack_seq
        || prev.reason != cur.reason
        || (prev.position - cur.position).abs() >= 0.1
}

type SampleSubscriber =
    zenoh::pubsub::Subscriber<zenoh::handlers::FifoChannelHandler<zenoh::sample::Sample>>;

/// Both drivers follow gated's liveliness token. With history, a gated that was up before the driver
/// is reported at once instead of looking absent.
async fn watch_gated(session: &Session, keys: &Keys) -> Result<SampleSubscriber, DriverError> {
    session
        .liveliness()
        .declare_subscriber(keys.gated_alive())
        .history(true)
        .await
        .map_err(DriverError::zenoh("subscribe to gated liveliness"))
}

/// The controllers' tick; a late tick is skipped rather than bunched, so timing stays even.
fn control_tick() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick
}

async fn door_loop<H: FlapHardware>(
    session: &Session,
    keys: &Keys,
    lanes: &mut BTreeMap<String, DoorLane<H>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let sub = |what: &'static str| DriverError::zenoh(format!("subscribe to {what}"));
    let cmds = session
        .declare_subscriber(keys.all_door_cmds())
        .await
        .map_err(sub("door commands"))?;
    let sims = session
        .declare_subscriber(keys.all_door_sims())
        .await
        .map_err(sub("door sim inputs"))?;
    let emergency = session
        .declare_subscriber(keys.emergency())
        .await
        .map_err(sub("emergency"))?;
    let alive = watch_gated(session, keys).await?;
    let mut tick = control_tick();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => {
                info!("door driver stopping");
                return Ok(());
            }
            r = cmds.recv_async() => {
                let s = r.map_err(|e| lost("door command", e))?;
                let Some((lane, cmd)) = lane_payload::<DoorCommand, _>(keys, lanes, &s) else { continue };
                let now = Instant::now();
                let handled = lane.ctl.command(&cmd, now);
                log_handled(lane.ctl.lane(), cmd.seq, &format!("{:?}", cmd.action), handled);
                lane.publish(now).await;
            }
            r = sims.recv_async() => {
                let s = r.map_err(|e| lost("door sim", e))?;
                let Some((lane, input)) = lane_payload::<DoorSim, _>(keys, lanes, &s) else { continue };
                if lane.ctl.hardware_mut().inject(&input) {
                    debug!(lane = lane.ctl.lane(), ?input, "sim input");
                } else {
                    warn!(lane = lane.ctl.lane(), "sim input ignored: this flap has real sensors");
                }
            }
            r = emergency.recv_async() => {
                let s = r.map_err(|e| lost("emergency", e))?;
                let Some(e) = payload::<Emergency>(&s) else { continue };
                if e.active {
                    warn!("emergency input active: opening every flap");
                } else {
                    info!("emergency input cleared");
                }
                let now = Instant::now();
                for lane in lanes.values_mut() {
                    lane.ctl.set_emergency(e.active, now);
                    lane.publish(now).await;
                }
            }
            r = alive.recv_async() => {
                let s = r.map_err(|e| lost("liveliness", e))?;
                let up = gated_liveliness(&s);
                let now = Instant::now();
                for lane in lanes.values_mut() {
                    lane.ctl.gated_alive(up, now);
                    lane.publish(now).await;
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                for lane in lanes.values_mut() {
                    lane.ctl.tick(now);
                    lane.publish(now).await;
                }
            }
        }
    }
}

/// Runs the light driver with simulated lamps per lane until `shutdown` resolves.
pub async fn run_light_driver(
    settings: LightDriverSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    run_light_driver_with(settings, |_lane: &str| SimLight::default(), shutdown).await
}

/// Runs the light driver on the lamps `make_hw` returns for each lane until `shutdown` resolves.
pub async fn run_light_driver_with<H: LightHardware>(
    settings: LightDriverSettings,
    mut make_hw: impl FnMut(&str) -> H,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let (keys, lane_ids) = settings.bus.validate()?;
    let cfg = settings.light_config()?;
    let session = open(&settings.bus).await?;
    let mut lanes = BTreeMap::new();
    for lane in lane_ids {
        let ctl = LightController::new(lane.clone(), cfg.clone(), make_hw(&lane));
        let out = Outlet::declare(&session, keys.light_state(&lane)).await?;
        lanes.insert(lane, LightLane { ctl, out });
    }
    info!(
        station = keys.station(),
        lanes = ?lanes.keys().collect::<Vec<_>>(),
        listen = ?settings.bus.listen,
        connect = ?settings.bus.connect,
        ramp_per_s = cfg.ramp_per_s,
        "light driver up",
    );
    let result = light_loop(&session, &keys, &mut lanes, shutdown).await;
    close(session).await;
    result
}

struct LightLane<H> {
    ctl: LightController<H>,
    out: Outlet<LightState>,
}

impl<H: LightHardware> LightLane<H> {
    async fn publish(&mut self, now: Instant) {
        let cur = self.ctl.state();
        let ramping = self.ctl.is_ramping();
        let due = match &self.out.last {
            None => true,
            Some((prev, at)) => {
                let age = now.saturating_duration_since(*at);
                prev.arch != cur.arch
                    || prev.target != cur.target
                    || prev.ack_seq != cur.ack_seq
                    // The end of a ramp is reported at once, so nobody waits a second for the final level.
                    || (!ramping && prev.level != cur.level)
                    || (ramping && age >= LIGHT_RAMP_PERIOD)
                    || age >= LIGHT_STATE_PERIOD
            }
        };
        if due {
            self.out.put(cur, now).await;
        }
    }
}

async fn light_loop<H: LightHardware>(
    session: &Session,
    keys: &Keys,
    lanes: &mut BTreeMap<String, LightLane<H>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let sub = |what: &'static str| DriverError::zenoh(format!("subscribe to {what}"));
    let cmds = session
        .declare_subscriber(keys.all_light_cmds())
        .await
        .map_err(sub("light commands"))?;
    let alive = watch_gated(session, keys).await?;
    let mut tick = control_tick();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => {
                info!("light driver stopping");
                return Ok(());
            }
            r = cmds.recv_async() => {
                let s = r.map_err(|e| lost("light command", e))?;
                let Some((lane, cmd)) = lane_payload::<LightCommand, _>(keys, lanes, &s) else { continue };
                let now = Instant::now();
                let what = format!("arch {:?} illumination {:?}", cmd.arch, cmd.illumination);
                let handled = lane.ctl.command(&cmd, now);
                log_handled(lane.ctl.lane(), cmd.seq, &what, handled);
                lane.publish(now).await;
            }
            r = alive.recv_async() => {
                let s = r.map_err(|e| lost("liveliness", e))?;
                let up = gated_liveliness(&s);
                let now = Instant::now();
                for lane in lanes.values_mut() {
                    lane.ctl.gated_alive(up);
                    lane.publish(now).await;
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                for lane in lanes.values_mut() {
                    lane.ctl.tick(now);
                    lane.publish(now).await;
                }
            }
        }
    }
}

/// A lane's state publisher and what it last sent.
struct Outlet<M> {
    publisher: Publisher<'static>,
    last: Option<(M, Instant)>,
}

impl<M: Message> Outlet<M> {
    async fn declare(session: &Session, key: String) -> Result<Self, DriverError> {
        let publisher = session
            .declare_publisher(key.clone())
            .await
            .map_err(DriverError::zenoh(format!("publisher on {key}")))?;
        Ok(Self {
            publisher,
            last: None,
        })
    }

    async fn put(&mut self, msg: M, now: Instant) {
        if let Err(e) = self.publisher.put(encode(&msg)).await {
            // A failed put is retried by the next periodic publication; stopping the driver would
            // leave the flap without control, which is worse than a missed state message.
            warn!(key = %self.publisher.key_expr(), error = %e, "publishing state failed");
        }
        self.last = Some((msg, now));
    }
}

async fn open(bus: &BusArgs) -> Result<Session, DriverError> {
    let config = protocol::zenoh_config(&bus.endpoints())?;
    zenoh::open(config)
        .await
        .map_err(DriverError::zenoh("open session"))
}

async fn close(session: Session) {
    if let Err(e) = session.close().await {
        warn!(error = %e, "closing the zenoh session failed");
    }
}

/// A subscription only ends when its session is gone; nothing sensible is left to do but stop.
fn lost(what: &str, e: impl std::fmt::Display) -> DriverError {
    DriverError::Zenoh {
        what: format!("{what} subscription"),
        message: e.to_string(),
    }
}

fn gated_liveliness(s: &Sample) -> bool {
    match s.kind() {
        SampleKind::Put => {
            info!(
                key = s.key_expr().as_str(),
                "gated liveliness token present"
            );
            true
        }
        SampleKind::Delete => {
            warn!(key = s.key_expr().as_str(), "gated liveliness token gone");
            false
        }
    }
}

/// Decodes a sample; a malformed payload is logged with its key and dropped.
fn payload<M: Message>(s: &Sample) -> Option<M> {
    match decode::<M>(&s.payload().to_bytes()) {
        Ok(m) => Some(m),
        Err(e) => {
            warn!(key = s.key_expr().as_str(), error = %e, "dropping malformed payload");
            None
        }
    }
}

/// The served lane a per-lane sample is for, with its decoded payload.
fn lane_payload<'a, M: Message, L>(
    keys: &Keys,
    lanes: &'a mut BTreeMap<String, L>,
    s: &Sample,
) -> Option<(&'a mut L, M)> {
    let key = s.key_expr().as_str();
    let Some(lane) = keys.lane_of(key).and_then(|id| lanes.get_mut(id)) else {
        debug!(key, "not a lane of this driver; ignored");
        return None;
    };
    payload(s).map(|m| (lane, m))
}

fn log_handled(lane: &str, seq: u64, what: &str, handled: Handled) {
    match handled {
        Handled::Applied => debug!(lane, seq, what, "command applied"),
        Handled::Refused(why) => info!(lane, seq, what, why = %why, "command refused"),
        Handled::Replay { last_seq } => {
            debug!(lane, seq, last_seq, what, "replayed command ignored")
        }
    }
}
