//! Who may say what on the station bus: zenoh's own access control, deny by default, keyed on the
//! common name of the peer's certificate (its `certs::Role`). Every process loads the same policy,
//! so each one refuses what arrives from a role that may not send it (ingress) and sends nothing to a
//! role that may not receive it (egress). The table here is the one in `docs/protocol.md`
//! ("Bus security"); a test there checks that the two agree.

use serde_json::{Value, json};

use crate::certs::Role;
use crate::certs::Role::{DoorDriver, Enrold, Gated, LightDriver, Operator, Sim};

/// One kind of message on one key, from the roles that may send it to the roles that may receive it.
pub struct Channel {
    pub key: &'static str,
    pub message: &'static str,
    pub from: &'static [Role],
    pub to: &'static [Role],
}

const fn ch(
    key: &'static str,
    message: &'static str,
    from: &'static [Role],
    to: &'static [Role],
) -> Channel {
    Channel {
        key,
        message,
        from,
        to,
    }
}

const PUT: &str = "put";
const SUB: &str = "declare_subscriber";
const TOKEN: &str = "liveliness_token";
const WATCH: &str = "declare_liveliness_subscriber";
const ASK_ALIVE: &str = "liveliness_query";
const QUERYABLE: &str = "declare_queryable";
const QUERY: &str = "query";
const REPLY: &str = "reply";

/// Every permitted flow. A publication needs the receiver's subscription to travel the other way,
/// a query its queryable's declaration, a liveliness token its watcher's subscription.
pub const CHANNELS: &[Channel] = &[
    ch("gate/*/*/door/cmd", PUT, &[Gated], &[DoorDriver]),
    ch("gate/*/*/door/cmd", SUB, &[DoorDriver], &[Gated]),
    ch(
        "gate/*/*/door/state",
        PUT,
        &[DoorDriver],
        &[Gated, Operator],
    ),
    ch(
        "gate/*/*/door/state",
        SUB,
        &[Gated, Operator],
        &[DoorDriver],
    ),
    ch("gate/*/*/door/sim", PUT, &[Sim], &[DoorDriver]),
    ch("gate/*/*/door/sim", SUB, &[DoorDriver], &[Sim]),
    ch("gate/*/emergency", PUT, &[Operator], &[DoorDriver]),
    ch("gate/*/emergency", SUB, &[DoorDriver], &[Operator]),
    ch("gate/*/*/light/cmd", PUT, &[Gated], &[LightDriver]),
    ch("gate/*/*/light/cmd", SUB, &[LightDriver], &[Gated]),
    ch(
        "gate/*/*/light/state",
        PUT,
        &[LightDriver],
        &[Gated, Operator],
    ),
    ch(
        "gate/*/*/light/state",
        SUB,
        &[Gated, Operator],
        &[LightDriver],
    ),
    ch("gate/*/*/event", PUT, &[Gated], &[Operator]),
    ch("gate/*/*/event", SUB, &[Operator], &[Gated]),
    ch("gate/*/*/decision", PUT, &[Gated], &[Operator]),
    ch("gate/*/*/decision", SUB, &[Operator], &[Gated]),
    ch("gate/*/health", PUT, &[Gated], &[Operator]),
    ch("gate/*/health", SUB, &[Operator], &[Gated]),
    ch(
        "gate/*/gated/alive",
        TOKEN,
        &[Gated],
        &[DoorDriver, LightDriver, Operator],
    ),
    ch(
        "gate/*/gated/alive",
        WATCH,
        &[DoorDriver, LightDriver, Operator],
        &[Gated],
    ),
    ch(
        "gate/*/gated/alive",
        ASK_ALIVE,
        &[DoorDriver, LightDriver, Operator],
        &[Gated],
    ),
    ch(
        "gate/*/gated/alive",
        REPLY,
        &[Gated],
        &[DoorDriver, LightDriver, Operator],
    ),
    ch("gate/*/ctl", QUERYABLE, &[Gated], &[Operator]),
    ch("gate/*/ctl", QUERY, &[Operator], &[Gated]),
    ch("gate/*/ctl", REPLY, &[Gated], &[Operator]),
    ch("gate/centre/templates/*", PUT, &[Enrold], &[Gated]),
    ch("gate/centre/templates/*", SUB, &[Gated], &[Enrold]),
    ch("gate/centre/changes", QUERYABLE, &[Enrold], &[Gated]),
    ch("gate/centre/changes", QUERY, &[Gated], &[Enrold]),
    ch("gate/centre/changes", REPLY, &[Enrold], &[Gated]),
    ch("gate/centre/alive", TOKEN, &[Enrold], &[Gated]),
    ch("gate/centre/alive", WATCH, &[Gated], &[Enrold]),
    ch("gate/centre/alive", ASK_ALIVE, &[Gated], &[Enrold]),
    ch("gate/centre/alive", REPLY, &[Enrold], &[Gated]),
];

/// The `access_control` section of a zenoh configuration that enforces `CHANNELS`.
pub fn policy() -> Value {
    let subjects: Vec<Value> = Role::ALL
        .iter()
        .map(|r| json!({ "id": r.name(), "cert_common_names": [r.name()] }))
        .collect();
    let mut rules = Vec::new();
    let mut policies = Vec::new();
    for (i, c) in CHANNELS.iter().enumerate() {
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
    for c in CHANNELS {
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
