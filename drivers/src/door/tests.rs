//! State-machine tests on a simulated flap with an injected clock: 10 ms ticks like the driver's loop,
//! no sleeping, so timing assertions are exact to a tick.

use protocol::{Epoch, Rejection, Stamp};

use super::*;
use crate::error::HwError;
use crate::flap::SimFlap;

const TICK: Duration = Duration::from_millis(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn epoch(n: u8) -> Epoch {
    Epoch::from_bytes([n; 16])
}

struct Rig {
    c: DoorController<SimFlap>,
    /// The driver clock's origin (it reads 0 here).
    t0: Instant,
    now: Instant,
    /// The epoch `send` writes, and its last seq.
    epoch: Epoch,
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
        let clock = DriverClock::at(now, 0);
        let mut c = DoorController::new("L1", cfg.clone(), SimFlap::new(cfg.travel), clock);
        c.tick(now);
        Self {
            c,
            t0: now,
            now,
            epoch: epoch(1),
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

    /// The next command of the rig's epoch, alive for 500 ms.
    fn send(&mut self, action: DoorAction) -> Handled {
        let cmd = self.cmd(self.epoch, self.seq + 1, action);
        self.send_cmd(cmd)
    }

    fn cmd(&self, epoch: Epoch, seq: u64, action: DoorAction) -> DoorCommand {
        let now_ms = (self.now - self.t0).as_millis() as u64;
        DoorCommand::new(
            Stamp {
                epoch,
                seq,
                deadline_ms: now_ms + 500,
            },
            action,
        )
    }

    fn send_cmd(&mut self, cmd: DoorCommand) -> Handled {
        let handled = self.c.command(&cmd, self.now);
        if !matches!(handled, Handled::Rejected(_)) {
            self.seq = cmd.seq;
            self.epoch = cmd.epoch;
            self.last_feed = self.now;
        }
        handled
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
        ..r.cmd(r.epoch, r.seq + 1, DoorAction::Open)
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
    let mut c = DoorController::new("L1", DoorConfig::default(), Dead, DriverClock::at(now, 0));
    let stamp = Stamp {
        epoch: epoch(1),
        seq: 1,
        deadline_ms: 100,
    };
    c.command(&DoorCommand::new(stamp, DoorAction::Open), now);
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

    // The token's return reopens nothing of the old epoch: its sequence goes on.
    r.c.gated_alive(true, r.now);
    assert_eq!(r.c.reason(), "no command from gated yet");
    let old = r.cmd(epoch(1), 1, DoorAction::HoldOpen);
    assert_eq!(r.send_cmd(old), Handled::Rejected(Rejection::Replay));
    assert_eq!(r.c.mode(), DoorMode::FailsafeClosed);
    // A restarted gated comes with a new epoch counting from 1, and takes the lane over.
    let new = r.cmd(epoch(2), 1, DoorAction::Heartbeat);
    assert_eq!(r.send_cmd(new), Handled::Applied);
    assert_eq!((r.c.mode(), r.c.ack_seq()), (DoorMode::Normal, 1));
    assert_eq!(r.c.state().epoch, Some(epoch(2)));
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

#[test]
fn rejected_commands_neither_act_nor_feed_the_watchdog() {
    let mut r = Rig::started(FailsafePosition::Closed);
    let first = r.cmd(epoch(1), 5, DoorAction::Heartbeat);
    assert_eq!(r.send_cmd(first), Handled::Applied);
    assert_eq!((r.c.mode(), r.c.ack_seq()), (DoorMode::Normal, 5));
    let fed = r.now;
    // The pinning attack of issue 15, and its relatives, arriving every 200 ms.
    let hostile = |r: &Rig| {
        let fresh = r.cmd(epoch(1), 6, DoorAction::HoldOpen);
        let stale = DoorCommand {
            deadline_ms: 0,
            ..fresh.clone()
        };
        let far = DoorCommand {
            deadline_ms: u64::MAX,
            ..fresh.clone()
        };
        [
            (
                r.cmd(epoch(1), u64::MAX, DoorAction::HoldOpen),
                Rejection::Future,
            ),
            (r.cmd(epoch(1), 5, DoorAction::HoldOpen), Rejection::Replay),
            (r.cmd(epoch(1), 0, DoorAction::HoldOpen), Rejection::Replay),
            (r.cmd(epoch(9), 1, DoorAction::HoldOpen), Rejection::Epoch),
            (stale, Rejection::Stale),
            (far, Rejection::Future),
        ]
    };
    let mut rounds = 0;
    while r.c.mode() == DoorMode::Normal {
        assert!(rounds < 10, "rejected commands kept the watchdog fed");
        r.run_for(200);
        // Until the watchdog trips the lane is not open to a claim, so another epoch is `epoch`.
        for (cmd, why) in hostile(&r) {
            if r.c.mode() == DoorMode::Normal {
                assert_eq!(r.send_cmd(cmd), Handled::Rejected(why));
            }
        }
        rounds += 1;
    }
    assert_eq!(r.c.mode(), DoorMode::FailsafeClosed);
    within((r.now - fed).as_millis() as u64, 1000, 1210);
    assert!(r.c.reason().contains("watchdog"), "{}", r.c.reason());
    let s = r.c.state();
    assert_eq!((s.epoch, s.ack_seq), (Some(epoch(1)), 5));
    assert!(
        s.rejected.future >= 10 && s.rejected.epoch >= 5,
        "{:?}",
        s.rejected
    );

    // gated's next command still gets in, and the door follows it.
    assert_eq!(r.send(DoorAction::HoldClosed), Handled::Applied);
    assert_eq!((r.c.mode(), r.c.ack_seq()), (DoorMode::HeldClosed, 6));
}

#[test]
fn another_epoch_takes_the_lane_only_once_it_is_in_failsafe() {
    let mut r = Rig::normal();
    r.send(DoorAction::HoldOpen);
    let intruder = r.cmd(epoch(7), 1, DoorAction::Release);
    assert_eq!(r.send_cmd(intruder), Handled::Rejected(Rejection::Epoch));
    assert_eq!(r.c.mode(), DoorMode::HeldOpen);

    // gated goes silent; once the watchdog has put the lane in fail-safe, a new epoch may claim it.
    r.feed = false;
    r.until_mode(DoorMode::FailsafeClosed, 2000);
    let hostile_claim = r.cmd(epoch(7), u64::MAX, DoorAction::HoldOpen);
    assert_eq!(
        r.send_cmd(hostile_claim),
        Handled::Rejected(Rejection::Future)
    );
    let claim = r.cmd(epoch(7), 1, DoorAction::Heartbeat);
    assert_eq!(r.send_cmd(claim), Handled::Applied);
    assert_eq!(
        r.c.mode(),
        DoorMode::Normal,
        "the hold went with the old gated"
    );
    assert_eq!((r.c.state().epoch, r.c.ack_seq()), (Some(epoch(7)), 1));
    let late = r.cmd(epoch(1), 100, DoorAction::HoldOpen);
    assert_eq!(r.send_cmd(late), Handled::Rejected(Rejection::Epoch));
}
