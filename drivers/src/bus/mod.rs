//! The zenoh side of the drivers. Every driver runs the same start-up ([`serve`]: open the session,
//! a controller and a state publisher per lane) and the same loop ([`drive`]): one task per process
//! owns every lane's controller, so no locks are needed. It waits on the driver's subscriptions,
//! gated's liveliness, the ~10 ms control tick and the shutdown signal, and publishes each lane's
//! state when it changes and periodically (late subscribers and gated's staleness checks rely on the
//! periodic copies). What differs between the drivers is a [`Controller`] per lane (its commands, its
//! state and when that state is worth publishing) and their extra inputs (the door's simulated
//! sensors and emergency input, the card reader's simulated taps).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use protocol::{Keys, Message, Stamp, decode, encode};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use zenoh::Session;
use zenoh::pubsub::Publisher;
use zenoh::sample::{Sample, SampleKind};

use crate::Handled;
use crate::error::DriverError;
use crate::settings::BusArgs;

mod card;
mod door;
mod light;

pub use card::{run_card_reader, run_card_reader_with};
pub use door::{run_door_driver, run_door_driver_with};
pub use light::{run_light_driver, run_light_driver_with};

/// Control period of both drivers.
pub const TICK: Duration = Duration::from_millis(10);
/// Door state (and the card reader's) is republished at least this often.
pub const DOOR_STATE_PERIOD: Duration = Duration::from_millis(200);
/// Light state is republished this often while the illumination ramps …
pub const LIGHT_RAMP_PERIOD: Duration = Duration::from_millis(50);
/// … and this often when it is steady.
pub const LIGHT_STATE_PERIOD: Duration = Duration::from_secs(1);

/// One lane's controller as the shared loop drives it.
trait Controller {
    type Command: Message;
    type State: Message;
    fn lane(&self) -> &str;
    fn command(&mut self, cmd: &Self::Command, now: Instant) -> Handled;
    /// A command's epoch, sequence number and deadline, and how it reads in the log.
    fn stamp(cmd: &Self::Command) -> Stamp;
    fn describe(cmd: &Self::Command) -> String;
    /// A command sent many times a second to prove gated is alive (logged at debug only).
    fn routine(_cmd: &Self::Command) -> bool {
        false
    }
    fn gated_alive(&mut self, up: bool, now: Instant);
    fn tick(&mut self, now: Instant);
    fn state(&self) -> Self::State;
    /// Whether `cur` is worth publishing now, `prev` having been published at `at`.
    fn due(&self, prev: &Self::State, at: Instant, cur: &Self::State, now: Instant) -> bool;
}

/// A driver: its name in the log, its command key, where each lane's state goes, and its further
/// inputs.
struct Driver<C: Controller> {
    name: &'static str,
    /// Whose certificate it presents on the bus.
    role: protocol::Role,
    /// Its settings, for the start-up line of the log.
    settings: String,
    /// What the command subscription is called, and its key expression (every lane).
    commands: (&'static str, String),
    state_key: fn(&Keys, &str) -> String,
    inputs: Vec<Input<C>>,
}

/// A further subscription of a driver and what one of its samples does.
struct Input<C: Controller> {
    what: &'static str,
    key: String,
    on: fn(&Sample, &Keys, &mut Lanes<C>, Instant, Trust) -> Publish,
}

/// Who can have sent a message. On the TLS bus the access control lets exactly one role put on
/// each key (docs/protocol.md), so that role is the sender's certificate identity; on an insecure
/// bus, anyone could have.
#[derive(Debug, Clone, Copy)]
pub(super) enum Trust {
    Roles,
    Anyone,
}

impl Trust {
    pub(super) fn sender(self, role: &'static str) -> &'static str {
        match self {
            Self::Roles => role,
            Self::Anyone => "anyone (insecure bus)",
        }
    }
}

/// Which lanes' state an input changed.
enum Publish {
    Nothing,
    Lane(String),
    All,
}

type Lanes<C> = BTreeMap<String, Lane<C>>;

struct Lane<C: Controller> {
    ctl: C,
    out: Outlet<C::State>,
}

impl<C: Controller> Lane<C> {
    async fn publish(&mut self, now: Instant) {
        let cur = self.ctl.state();
        let due = match &self.out.last {
            None => true,
            Some((prev, at)) => self.ctl.due(prev, *at, &cur, now),
        };
        if due {
            self.out.put(cur, now).await;
        }
    }
}

/// The start-up both drivers share: a session, a controller and state publisher per lane, then the
/// loop until `shutdown`, then the session closed.
async fn serve<C: Controller>(
    bus: &BusArgs,
    keys: Keys,
    lane_ids: Vec<String>,
    driver: Driver<C>,
    mut make: impl FnMut(&str) -> C,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let session = open(bus, driver.role).await?;
    let mut lanes = BTreeMap::new();
    for lane in lane_ids {
        let ctl = make(&lane);
        let out = Outlet::declare(&session, (driver.state_key)(&keys, &lane)).await?;
        lanes.insert(lane, Lane { ctl, out });
    }
    info!(
        station = keys.station(),
        lanes = ?lanes.keys().collect::<Vec<_>>(),
        listen = ?bus.listen,
        connect = ?bus.connect,
        settings = %driver.settings,
        "{} up", driver.name,
    );
    let trust = if bus.insecure {
        Trust::Anyone
    } else {
        Trust::Roles
    };
    let result = drive(&session, &keys, &driver, &mut lanes, trust, shutdown).await;
    close(session).await;
    result
}

/// The loop both drivers share.
async fn drive<C: Controller>(
    session: &Session,
    keys: &Keys,
    driver: &Driver<C>,
    lanes: &mut Lanes<C>,
    trust: Trust,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    // Every subscription of the driver feeds one queue, tagged with its index: 0 the commands,
    // i + 1 the driver's input i. Samples are handled in arrival order.
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Sample)>();
    let mut subscriptions = Vec::new();
    let keys_of = std::iter::once((driver.commands.0, &driver.commands.1))
        .chain(driver.inputs.iter().map(|i| (i.what, &i.key)));
    for (which, (what, key)) in keys_of.enumerate() {
        let tx = tx.clone();
        let sub = session
            .declare_subscriber(key.clone())
            .callback(move |s| {
                // The receiver only goes when the loop has stopped.
                let _ = tx.send((which, s));
            })
            .await
            .map_err(DriverError::zenoh(format!("subscribe to {what}")))?;
        subscriptions.push(sub);
    }
    drop(tx);
    let alive = watch_gated(session, keys).await?;
    let mut tick = control_tick();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => {
                info!("{} stopping", driver.name);
                return Ok(());
            }
            r = rx.recv() => {
                let Some((which, s)) = r else {
                    return Err(DriverError::Ended { what: format!("{} subscriptions", driver.name) });
                };
                let now = Instant::now();
                let publish = match which.checked_sub(1).and_then(|i| driver.inputs.get(i)) {
                    None => command(keys, lanes, &s, now, trust),
                    Some(input) => (input.on)(&s, keys, lanes, now, trust),
                };
                match publish {
                    Publish::Nothing => {}
                    Publish::Lane(id) => if let Some(lane) = lanes.get_mut(&id) {
                        lane.publish(now).await;
                    },
                    Publish::All => for lane in lanes.values_mut() {
                        lane.publish(now).await;
                    },
                }
            }
            r = alive.recv_async() => {
                let s = r.map_err(DriverError::zenoh("liveliness subscription"))?;
                let up = gated_liveliness(&s);
                let now = Instant::now();
                for lane in lanes.values_mut() {
                    lane.ctl.gated_alive(up, now);
                    lane.publish(now).await;
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                for throttle in [&MALFORMED, &REJECTED] {
                    if let Ok(mut t) = throttle.lock() {
                        t.flush(now);
                    }
                }
                for lane in lanes.values_mut() {
                    lane.ctl.tick(now);
                    lane.publish(now).await;
                }
            }
        }
    }
}

/// A command for one of the driver's lanes.
fn command<C: Controller>(
    keys: &Keys,
    lanes: &mut Lanes<C>,
    s: &Sample,
    now: Instant,
    trust: Trust,
) -> Publish {
    let Some((lane, cmd)) = lane_payload::<C::Command, _>(keys, lanes, s) else {
        return Publish::Nothing;
    };
    let what = C::describe(&cmd);
    let stamp = C::stamp(&cmd);
    let handled = lane.ctl.command(&cmd, now);
    log_handled(
        lane.ctl.lane(),
        stamp,
        &what,
        C::routine(&cmd),
        handled,
        now,
        trust.sender("gated"),
    );
    Publish::Lane(lane.ctl.lane().to_owned())
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

async fn open(bus: &BusArgs, role: protocol::Role) -> Result<Session, DriverError> {
    let config = protocol::zenoh_config(&bus.endpoints(role)?)?;
    zenoh::open(config)
        .await
        .map_err(DriverError::zenoh("open session"))
}

async fn close(session: Session) {
    if let Err(e) = session.close().await {
        warn!(error = %e, "closing the zenoh session failed");
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

/// Decodes a sample; a malformed payload is dropped and logged with its key, at most
/// [`Throttle::BURST`] times per [`Throttle::WINDOW`] (a flood of garbage must not flood the log).
fn payload<M: Message>(s: &Sample) -> Option<M> {
    match decode::<M>(&s.payload().to_bytes()) {
        Ok(m) => Some(m),
        Err(e) => {
            if admitted(&MALFORMED, Instant::now()) {
                warn!(key = s.key_expr().as_str(), error = %e, "dropping malformed payload");
            }
            None
        }
    }
}

/// Malformed payloads of this process (one driver loop per process).
static MALFORMED: std::sync::Mutex<Throttle> =
    std::sync::Mutex::new(Throttle::new("malformed payloads dropped"));
/// Commands the guard rejected, every lane and reason of this process: an attacker's flood is
/// counted in the lanes' states, not written line by line.
static REJECTED: std::sync::Mutex<Throttle> =
    std::sync::Mutex::new(Throttle::new("rejected commands"));

/// Whether `throttle` lets this occurrence be logged (yes if its lock is poisoned: better a line
/// too many than none).
fn admitted(throttle: &std::sync::Mutex<Throttle>, now: Instant) -> bool {
    throttle.lock().map(|mut t| t.admit(now)).unwrap_or(true)
}

/// Rate limit for one kind of warning: the first [`Self::BURST`] of each [`Self::WINDOW`] are
/// logged, the rest counted and reported in one line when the window closes. Local because the
/// rule is this simple; a rate-limiting crate would add a token bucket and a clock abstraction
/// for a counter.
pub(crate) struct Throttle {
    /// What is counted, as the closing line says it: "N more {what} without a log line".
    what: &'static str,
    since: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl Throttle {
    pub const WINDOW: Duration = Duration::from_secs(10);
    pub const BURST: u32 = 5;

    pub const fn new(what: &'static str) -> Self {
        Self {
            what,
            since: None,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Whether this occurrence should be logged.
    pub fn admit(&mut self, now: Instant) -> bool {
        self.flush(now);
        self.since.get_or_insert(now);
        if self.logged < Self::BURST {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Closes a window that has run out: reports what it suppressed. Returns that count.
    pub fn flush(&mut self, now: Instant) -> u64 {
        match self.since {
            Some(t) if now.duration_since(t) >= Self::WINDOW => {
                let n = std::mem::take(&mut self.suppressed);
                if n > 0 {
                    warn!(
                        suppressed = n,
                        window_s = Self::WINDOW.as_secs(),
                        "{n} more {} without a log line",
                        self.what
                    );
                }
                self.since = None;
                self.logged = 0;
                n
            }
            _ => 0,
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

/// Every applied command is an operator-visible action (a flap moved, a lamp changed) and is logged
/// at info; heartbeats, many per second, only at debug. A rejected command is a warning (a replay,
/// a forged or stale number: someone other than gated, or a broken link), throttled because whoever
/// sends one can send thousands.
fn log_handled(
    lane: &str,
    stamp: Stamp,
    what: &str,
    routine: bool,
    handled: Handled,
    now: Instant,
    from: &str,
) {
    let seq = stamp.seq;
    let epoch = stamp.epoch;
    match handled {
        Handled::Applied if routine => debug!(lane, seq, what, "command applied"),
        Handled::Applied => info!(lane, seq, what, from, %epoch, "command applied"),
        Handled::Refused(why) => info!(lane, seq, what, why = %why, "command refused"),
        Handled::Rejected(why) => {
            if admitted(&REJECTED, now) {
                warn!(lane, seq, what, reason = why.name(), epoch = %stamp.epoch,
                    deadline_ms = stamp.deadline_ms, "command rejected");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_logged_a_few_times_then_counted() {
        let mut t = Throttle::new("test lines");
        let t0 = Instant::now();
        let logged = (0..20_000).filter(|_| t.admit(t0)).count();
        assert_eq!(logged, Throttle::BURST as usize);
        assert_eq!(t.flush(t0 + Duration::from_secs(1)), 0, "window still open");
        assert_eq!(
            t.flush(t0 + Throttle::WINDOW),
            20_000 - Throttle::BURST as u64
        );
        // A new window logs again.
        assert!(t.admit(t0 + Throttle::WINDOW));
    }
}
