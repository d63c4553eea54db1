//! State-machine tests on a simulated flap with an injected clock: 10 ms ticks like the driver's loop,
//! no sleeping, so timing assertions are exact to a tick.

use super::*;
use crate::error::HwError;
use crate::flap::SimFlap;

const TICK: Duration = Duration::from_millis(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Rig {
    c: DoorController<SimFlap>,
    now: Instant,
    seq: u64,
    /// Send a heartbeat every 200 ms like gated does, so long scenarios do not trip the watchdog.
    feed: bool,
    last_feed: Instant,
}

impl Rig {
    /// A driver just started: fail-safe, nothing heard from gated.
    fn started(failsafe: FailsafePosition) -> Self {
        let cfg = DoorConfig {
            failsafe,
            ..DoorConfig::default()
        };
        let now = Instant::now();
        let mut c = DoorController::new("L1", cfg.clone(), SimFlap::new(cfg.travel));
        c.tick(now);
        Self {
            c,
            now,
            seq: 0,
            feed: false,
            last_feed: now,
        }
    }

    /// gated is up and feeding the watchdog.
    fn normal() -> Self {
        let mut r = Self::started(FailsafePosition::Closed);
        r.feed = true;
        assert_eq!(r.send(DoorAction::Heartbeat), Handled::Applied);
        assert_eq!(r.c.mode(), DoorMode::Normal);
        r
    }

    fn send(&mut self, action: DoorAction) -> Handled {
        self.send_cmd(DoorCommand::new(self.seq + 1, action))
    }

    fn send_cmd(&mut self, cmd: DoorCommand) -> Handled {
        self.seq = self.seq.max(cmd.seq);
        self.last_feed = self.now;
        self.c.command(&cmd, self.now)
    }

    fn step(&mut self) {
        self.now += TICK;
        if self.feed && self.now - self.last_feed >= ms(200) {
            self.send(DoorAction::Heartbeat);
        }
        self.c.tick(self.now);
    }

    fn run_for(&mut self, n: u64) {
        for _ in 0..n / 10 {
            self.step();
        }
    }

    /// Ticks until `pred` holds and returns how long that took, in ms.
    fn run_until(
        &mut self,
        what: &str,
        limit_ms: u64,
        pred: impl Fn(&DoorController<SimFlap>) -> bool,
    ) -> u64 {
        let start = self.now;
        while !pred(&self.c) {
            assert!(
                self.now - start < ms(limit_ms),
                "no {what} within {limit_ms} ms; state {:?}",
                self.c.state()
            );
            self.step();
        }
        (self.now - start).as_millis() as u64
    }

    fn until_flap(&mut self, flap: Flap, limit_ms: u64) -> u64 {
        self.run_until(&format!("{flap:?}"), limit_ms, |c| c.flap() == flap)
    }

    fn until_mode(&mut self, mode: DoorMode, limit_ms: u64) -> u64 {
        self.run_until(&format!("{mode:?}"), limit_ms, |c| c.mode() == mode)
    }

    fn sim(&mut self) -> &mut SimFlap {
        self.c.hardware_mut()
    }
}

fn within(t: u64, lo: u64, hi: u64) {
    assert!((lo..=hi).contains(&t), "{t} ms outside {lo}..={hi} ms");
}

#[test]
fn grant_opens_waits_for_passage_then_closes_after_clearance() {
    let mut r = Rig::normal();
    assert_eq!(r.c.flap(), Flap::Closed);
    assert_eq!(r.send(DoorAction::Open), Handled::Applied);
    assert_eq!(r.c.ack_seq(), 2);
    r.step();
    assert_eq!(r.c.flap(), Flap::Opening);
    // One 300 ms stroke, starting at the first tick after the command.
    within(r.until_flap(Flap::Open, 1000), 300, 320);
    r.run_for(500);
    assert_eq!(r.c.flap(), Flap::Open, "waits for the passage");
    r.sim().passage();
    within(r.until_flap(Flap::Closing, 1000), 300, 320);
    within(r.until_flap(Flap::Closed, 1000), 290, 310);
    assert_eq!(r.c.state().position, 0.0);
}

#[test]
fn grant_without_passage_closes_after_pass_timeout() {
    let mut r = Rig::normal();
    r.send(DoorAction::Open);
    within(r.until_flap(Flap::Closing, 5000), 3000, 3010);

    r.until_flap(Flap::Closed, 1000);
    let cmd = DoorCommand {
        pass_timeout_ms: Some(1000),
        ..DoorCommand::new(r.seq + 1, DoorAction::Open)
    };
    r.send_cmd(cmd);
    let sent = r.now;
    r.until_flap(Flap::Open, 1000);
    r.until_flap(Flap::Closing, 5000);
    within((r.now - sent).as_millis() as u64, 1000, 1010);
}

#[test]
fn each_open_grants_one_passage() {
    let mut r = Rig::normal();
    r.send(DoorAction::Open);
    r.send(DoorAction::Open);
    r.until_flap(Flap::Open, 1000);
    r.sim().passage();
    r.run_for(1000);
    assert_eq!(
        r.c.flap(),
        Flap::Open,
        "the second person still has to pass"
    );
    r.sim().passage();
    within(r.until_flap(Flap::Closing, 1000), 300, 320);
}

#[test]
fn obstruction_reverses_closing_and_holds_until_clear() {
    let mut r = Rig::normal();
    r.send(DoorAction::Open);
    r.until_flap(Flap::Open, 1000);
    r.send(DoorAction::Close);
    r.until_flap(Flap::Closing, 100);
    r.run_for(100);
    let pos = r.c.state().position;
    assert!(pos < 0.8 && pos > 0.4, "{pos}");
    r.sim().set_obstructed(true);
    r.step();
    assert_eq!(r.c.flap(), Flap::Opening, "never closes on a person");
    assert!(r.c.state().obstructed);
    within(r.until_flap(Flap::Open, 1000), 80, 130);
    r.run_for(2000);
    assert_eq!(r.c.flap(), Flap::Open, "stays open while obstructed");
    r.sim().set_obstructed(false);
    within(r.until_flap(Flap::Closing, 1000), 300, 320);
    r.until_flap(Flap::Closed, 1000);

    // Someone leaning on a closed flap is no reason to open it.
    r.sim().set_obstructed(true);
    r.run_for(500);
    assert_eq!(r.c.flap(), Flap::Closed);
}

#[test]
fn jammed_motor_faults_after_twice_the_travel_time_and_recovers_on_command() {
    let mut r = Rig::normal();
    r.send(DoorAction::Open);
    r.run_for(100);
    r.sim().set_jammed(true);
    // The stroke began at the first tick; the limit is 2 x 300 ms from there.
    within(r.until_flap(Flap::Fault, 2000), 500, 530);
    let s = r.c.state();
    assert!(
        s.reason.contains("did not reach open within 600 ms"),
        "{}",
        s.reason
    );
    assert!(s.position > 0.2 && s.position < 0.4, "{}", s.position);
    assert_eq!(
        r.sim().motor(),
        Motor::Stop,
        "a faulted motor is switched off"
    );

    r.sim().set_jammed(false);
    r.run_for(500);
    assert_eq!(r.c.flap(), Flap::Fault, "no retry without a reason to move");
    r.send(DoorAction::Open);
    r.until_flap(Flap::Open, 1000);
    assert_eq!(r.c.reason(), "");
}

#[test]
fn motor_error_is_a_fault_with_its_text() {
    struct Dead;
    impl FlapHardware for Dead {
        fn drive(&mut self, _: Motor) -> Result<(), HwError> {
            Err(HwError::Io("serial port gone".into()))
        }
        fn sense(&mut self, _: Instant) -> Sensors {
            Sensors {
                position: 0.0,
                open_limit: false,
                closed_limit: true,
                obstructed: false,
                passages: 0,
            }
        }
    }
    let now = Instant::now();
    let mut c = DoorController::new("L1", DoorConfig::default(), Dead);
    c.command(&DoorCommand::new(1, DoorAction::Open), now);
    c.tick(now + TICK);
    assert_eq!(c.flap(), Flap::Fault);
    assert!(c.reason().contains("serial port gone"), "{}", c.reason());
}

#[test]
fn starts_in_failsafe_until_the_first_command() {
    let r = Rig::started(FailsafePosition::Closed);
    let s = r.c.state();
    assert_eq!(
        (s.mode, s.flap, s.ack_seq),
        (DoorMode::FailsafeClosed, Flap::Closed, 0)
    );
    assert_eq!(s.reason, "no command from gated yet");

    let mut r = Rig::started(FailsafePosition::Open);
    assert_eq!(r.c.mode(), DoorMode::FailsafeOpen);
    r.until_flap(Flap::Open, 1000);
    r.send(DoorAction::Heartbeat);
    assert_eq!(r.c.mode(), DoorMode::Normal);
    r.until_flap(Flap::Closed, 1000);
}

#[test]
fn watchdog_expiry_goes_to_the_configured_failsafe_position() {
    for (policy, mode, end) in [
        (
            FailsafePosition::Closed,
            DoorMode::FailsafeClosed,
            Flap::Closed,
        ),
        (FailsafePosition::Open, DoorMode::FailsafeOpen, Flap::Open),
    ] {
        let mut r = Rig::started(policy);
        r.send(DoorAction::Heartbeat);
        r.send(DoorAction::HoldOpen);
        r.until_flap(Flap::Open, 1000);
        // gated goes silent.
        r.until_mode(mode, 3000);
        within((r.now - r.last_feed).as_millis() as u64, 1000, 1010);
        assert!(r.c.reason().contains("watchdog"), "{}", r.c.reason());
        r.until_flap(end, 1000);

        // Back to normal (the hold is forgotten) as soon as a valid command arrives.
        r.send(DoorAction::Heartbeat);
        assert_eq!(r.c.mode(), DoorMode::Normal);
        assert_eq!(r.c.reason(), "");
        r.until_flap(Flap::Closed, 1000);
    }
}

#[test]
fn lost_liveliness_is_failsafe_until_the_new_gated_commands() {
    let mut r = Rig::normal();
    r.c.gated_alive(true, r.now);
    r.send(DoorAction::Open);
    r.step();
    r.c.gated_alive(false, r.now);
    assert_eq!(r.c.mode(), DoorMode::FailsafeClosed);
    assert_eq!(r.c.reason(), "gated liveliness token lost");
    r.run_for(500);
    assert_eq!(
        r.c.mode(),
        DoorMode::FailsafeClosed,
        "commands do not override a lost token"
    );
    r.until_flap(Flap::Closed, 1000);

    // A restarted gated counts its seq from 1 again.
    r.c.gated_alive(true, r.now);
    assert_eq!(r.c.reason(), "no command from gated yet");
    assert_eq!(
        r.c.command(&DoorCommand::new(1, DoorAction::Heartbeat), r.now),
        Handled::Applied
    );
    assert_eq!((r.c.mode(), r.c.ack_seq()), (DoorMode::Normal, 1));
}

#[test]
fn emergency_overrides_hold_closed_and_failsafe_closed() {
    let mut r = Rig::normal();
    r.send(DoorAction::HoldClosed);
    assert_eq!(r.c.mode(), DoorMode::HeldClosed);
    assert!(matches!(r.send(DoorAction::Open), Handled::Refused(_)));
    r.c.set_emergency(true, r.now);
    assert_eq!(r.c.mode(), DoorMode::Emergency);
    r.until_flap(Flap::Open, 1000);
    r.c.set_emergency(false, r.now);
    assert_eq!(
        r.c.mode(),
        DoorMode::HeldClosed,
        "the hold survives the emergency"
    );
    r.until_flap(Flap::Closed, 1000);

    // Fail-safe closed (gated silent) gives way to the emergency too.
    r.feed = false;
    r.until_mode(DoorMode::FailsafeClosed, 2000);
    r.c.set_emergency(true, r.now);
    r.until_flap(Flap::Open, 1000);
    assert_eq!(r.c.mode(), DoorMode::Emergency);
    r.c.set_emergency(false, r.now);
    assert_eq!(r.c.mode(), DoorMode::FailsafeClosed);
    r.until_flap(Flap::Closed, 1000);
}

#[test]
fn replayed_seq_is_ignored_but_feeds_the_watchdog() {
    let mut r = Rig::started(FailsafePosition::Closed);
    assert_eq!(
        r.send_cmd(DoorCommand::new(5, DoorAction::Heartbeat)),
        Handled::Applied
    );
    assert_eq!(
        r.send_cmd(DoorCommand::new(5, DoorAction::HoldClosed)),
        Handled::Replay { last_seq: 5 }
    );
    assert_eq!(
        r.send_cmd(DoorCommand::new(3, DoorAction::HoldClosed)),
        Handled::Replay { last_seq: 5 }
    );
    assert_eq!((r.c.mode(), r.c.ack_seq()), (DoorMode::Normal, 5));
    for _ in 0..10 {
        r.run_for(200);
        r.c.command(&DoorCommand::new(4, DoorAction::Heartbeat), r.now);
    }
    assert_eq!(
        r.c.mode(),
        DoorMode::Normal,
        "replays keep the watchdog fed"
    );
    assert_eq!(r.c.ack_seq(), 5);
}

#[test]
fn safe_command_latches_failsafe_until_release() {
    let mut r = Rig::normal();
    r.send(DoorAction::Open);
    r.send(DoorAction::Safe);
    assert_eq!(r.c.mode(), DoorMode::FailsafeClosed);
    assert!(
        r.c.reason().starts_with("safe requested by gated"),
        "{}",
        r.c.reason()
    );
    r.run_for(1500);
    assert_eq!(
        r.c.mode(),
        DoorMode::FailsafeClosed,
        "heartbeats do not end it"
    );
    assert_eq!(r.c.flap(), Flap::Closed, "the grant was dropped");
    r.send(DoorAction::Release);
    assert_eq!(r.c.mode(), DoorMode::Normal);
}
