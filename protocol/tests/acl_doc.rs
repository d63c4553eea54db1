//! docs/protocol.md carries the access-control table; this keeps it equal to the policy the code
//! loads (`protocol::acl::FLOWS`). Run with `BLESS=1` to rewrite the doc's copy.

#[test]
fn the_documented_table_is_the_policy() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let (open, close) = ("<!-- acl-table -->\n", "<!-- /acl-table -->");
    let start = doc.find(open).expect("acl-table marker") + open.len();
    let end = doc.find(close).expect("/acl-table marker");
    let want = protocol::acl::markdown_table();
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(path, format!("{}{}{}", &doc[..start], want, &doc[end..])).unwrap();
        return;
    }
    assert_eq!(
        &doc[start..end],
        want,
        "docs/protocol.md's table is stale: BLESS=1 cargo test -p protocol --test acl_doc"
    );
}

#[test]
fn the_policy_is_valid_zenoh_configuration() {
    let mut c = zenoh::Config::default();
    c.insert_json5("access_control", &protocol::acl::policy().to_string())
        .expect("zenoh accepts the policy");
}
