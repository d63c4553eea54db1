//! Who may say what on the station bus: zenoh's own access control, deny by default, keyed on the
//! common name of the peer's certificate (its `certs::Role`). Every process loads the same policy,
//! so each one refuses what arrives from a role that may not send it (ingress) and sends nothing to a
//! role that may not receive it (egress). The table here is the one in `docs/protocol.md`
//! ("Bus security"); a test there checks that the two agree.

use serde_json::{Value, json};

use crate::certs::Role;
use crate::certs::Role::{CardReader, DoorDriver, Enrold, Gated, LightDriver, Operator, Sim};

/// One kind of message on one key, from the roles that may send it to the roles that may receive it.
pub struct Channel {
    pub key: &'static str,
    pub message: &'static str,
    pub from: &'static [Role],
    pub to: &'static [Role],
}

/// One exchange between roles. Each needs declarations travelling the other way (a publication
/// its receivers' subscriptions, a token its watchers', a query the queryable's), so those are
/// derived here rather than listed beside it.
pub enum Flow {
    /// `from` puts on `key`, `to` subscribe to it.
    Publish {
        key: &'static str,
        from: &'static [Role],
        to: &'static [Role],
    },
    /// `holder` declares a liveliness token on `key`, `watchers` subscribe to it and ask for it.
    Liveliness {
        key: &'static str,
        holder: &'static [Role],
        watchers: &'static [Role],
    },
    /// `owner` answers queries on `key` from `askers`.
    Queryable {
        key: &'static str,
        owner: &'static [Role],
        askers: &'static [Role],
    },
}

const fn publish(key: &'static str, from: &'static [Role], to: &'static [Role]) -> Flow {
    Flow::Publish { key, from, to }
}

/// Every permitted exchange on the bus.
pub const FLOWS: &[Flow] = &[
    publish("gate/*/*/door/cmd", &[Gated], &[DoorDriver]),
    publish("gate/*/*/door/state", &[DoorDriver], &[Gated, Operator]),
    publish("gate/*/*/door/sim", &[Sim], &[DoorDriver]),
    publish("gate/*/emergency", &[Operator], &[DoorDriver]),
    publish("gate/*/*/light/cmd", &[Gated], &[LightDriver]),
    publish("gate/*/*/light/state", &[LightDriver], &[Gated, Operator]),
    publish("gate/*/*/event", &[Gated], &[Operator]),
    publish("gate/*/*/decision", &[Gated], &[Operator]),
    publish("gate/*/health", &[Gated], &[Operator]),
    // Not the operator's monitors: a card state carries the card's id, a card number.
    publish("gate/*/*/card/state", &[CardReader], &[Gated]),
    publish("gate/*/*/card/cmd", &[Gated], &[CardReader]),
    publish("gate/*/*/card/sim", &[Sim], &[CardReader]),
    Flow::Liveliness {
        key: "gate/*/gated/alive",
        holder: &[Gated],
        watchers: &[DoorDriver, LightDriver, Operator, CardReader],
    },
    Flow::Queryable {
        key: "gate/*/ctl",
        owner: &[Gated],
        askers: &[Operator],
    },
    publish("gate/centre/templates/*", &[Enrold], &[Gated]),
    Flow::Queryable {
        key: "gate/centre/changes",
        owner: &[Enrold],
        askers: &[Gated],
    },
    Flow::Liveliness {
        key: "gate/centre/alive",
        holder: &[Enrold],
        watchers: &[Gated],
    },
    publish("gate/*/passage-head", &[Gated], &[Enrold]),
    Flow::Queryable {
        key: "gate/*/passages",
        owner: &[Gated],
        askers: &[Enrold],
    },
];

/// Every message each flow needs, in both directions: what the policy and the doc table list.
pub fn channels() -> Vec<Channel> {
    let ch = |key, message, from, to| Channel {
        key,
        message,
        from,
        to,
    };
    FLOWS
        .iter()
        .flat_map(|f| match *f {
            Flow::Publish { key, from, to } => {
                vec![
                    ch(key, "put", from, to),
                    ch(key, "declare_subscriber", to, from),
                ]
            }
            Flow::Liveliness {
                key,
                holder,
                watchers,
            } => vec![
                ch(key, "liveliness_token", holder, watchers),
                ch(key, "declare_liveliness_subscriber", watchers, holder),
                ch(key, "liveliness_query", watchers, holder),
                ch(key, "reply", holder, watchers),
            ],
            Flow::Queryable { key, owner, askers } => vec![
                ch(key, "declare_queryable", owner, askers),
                ch(key, "query", askers, owner),
                ch(key, "reply", owner, askers),
            ],
        })
        .collect()
}

/// The `access_control` section of a zenoh configuration that enforces `FLOWS`.
pub fn policy() -> Value {
    let subjects: Vec<Value> = Role::ALL
        .iter()
        .map(|r| json!({ "id": r.name(), "cert_common_names": [r.name()] }))
        .collect();
    let mut rules = Vec::new();
    let mut policies = Vec::new();
    for (i, c) in channels().iter().enumerate() {
        // Ingress: what a sender may deliver here. Egress: what may be delivered to a receiver.
        for (flow, roles) in [("ingress", c.from), ("egress", c.to)] {
            let id = format!("{i}-{flow}");
            rules.push(json!({
                "id": id,
                "messages": [c.message],
                "flows": [flow],
                "permission": "allow",
                "key_exprs": [c.key],
            }));
            policies.push(json!({
                "rules": [id],
                "subjects": roles.iter().map(|r| r.name()).collect::<Vec<_>>(),
            }));
        }
    }
    json!({
        "enabled": true,
        "default_permission": "deny",
        "rules": rules,
        "subjects": subjects,
        "policies": policies,
    })
}

/// The table of `docs/protocol.md`: one row per key and message, senders and receivers.
pub fn markdown_table() -> String {
    let names = |roles: &[Role]| {
        roles
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = String::from("| key | message | from | to |\n|---|---|---|---|\n");
    for c in channels() {
        s.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            c.key,
            c.message,
            names(c.from),
            names(c.to)
        ));
    }
    s
}
