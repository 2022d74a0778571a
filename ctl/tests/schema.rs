// ctl/OUTPUT.md is a promise: every command it documents is run here, with
// -o json and -o yaml, against fake daemons that fill every field, and the
// test fails when a documented field is missing or of another type, or
// when a command prints a field OUTPUT.md does not document. YAML must be
// the JSON document's shape exactly.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Output;

use common::ipam::{Fake, Script};
use common::{FakeBgpd, FakePolicy, podctl_command, serve, sockets, stdout};
use podroute_proto::ipam::v1::{
    Block, CheckResponse, DeletePoolResponse, ListBlocksResponse, ListPoolsResponse, Pool,
    PoolUsage, Problem, ProblemKind, ReleaseResponse, ShowAddressResponse, UsageResponse,
};
use serde_json::Value;

/// One row of a field table: a path (`peers[].bfd.state`, `.` for "the
/// whole object is of this type") and its type text.
#[derive(Debug, Clone)]
struct Row {
    path: String,
    ty: String,
}

/// OUTPUT.md read: each command's rows, and each named type's.
#[derive(Debug, Default)]
struct Schema {
    commands: Vec<(String, Vec<Row>)>,
    types: HashMap<String, Vec<Row>>,
}

fn read_schema() -> Schema {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("OUTPUT.md"))
        .expect("ctl/OUTPUT.md");
    let mut schema = Schema::default();
    enum Section {
        None,
        Command(usize),
        Type(String),
    }
    let mut section = Section::None;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("### `").and_then(|h| h.strip_suffix('`')) {
            section = if heading.starts_with("podctl ") {
                schema.commands.push((heading.to_owned(), Vec::new()));
                Section::Command(schema.commands.len() - 1)
            } else {
                schema.types.insert(heading.to_owned(), Vec::new());
                Section::Type(heading.to_owned())
            };
            continue;
        }
        if line.starts_with("## ") {
            section = Section::None;
            continue;
        }
        let Some(cells) = line.strip_prefix("| `") else {
            continue;
        };
        let mut cells = cells.split(" | ");
        let path = cells.next().unwrap().trim_end_matches('`').to_owned();
        let ty = cells.next().unwrap_or_default().to_owned();
        let row = Row { path, ty };
        match &section {
            Section::Command(i) => schema.commands[*i].1.push(row),
            Section::Type(name) => schema.types.get_mut(name).unwrap().push(row),
            Section::None => panic!("field row outside a section: {line}"),
        }
    }
    schema
}

/// The named type a type text refers to: "array of `Peer`" → Peer.
fn named_type(ty: &str) -> Option<&str> {
    let start = ty.find('`')? + 1;
    let end = start + ty[start..].find('`')?;
    Some(&ty[start..end])
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// Every documented path with its type text, named types expanded.
fn expand(rows: &[Row], schema: &Schema, prefix: &str, out: &mut BTreeMap<String, String>) {
    for row in rows {
        // "." or "x[]." : the object itself is of the named type.
        if row.path == "." || row.path.ends_with('.') {
            let at = join(prefix, row.path.trim_end_matches('.'));
            let at = at.trim_end_matches('.');
            let name = named_type(&row.ty).unwrap_or_else(|| panic!("{row:?} names no type"));
            let rows = schema
                .types
                .get(name)
                .unwrap_or_else(|| panic!("no type {name}"));
            expand(rows, schema, at, out);
            continue;
        }
        let path = join(prefix, &row.path);
        out.insert(path.clone(), row.ty.clone());
        if let Some(name) = named_type(&row.ty) {
            let rows = schema
                .types
                .get(name)
                .unwrap_or_else(|| panic!("no type {name}"));
            let inner = if row.ty.starts_with("array") {
                format!("{path}[]")
            } else {
                path
            };
            expand(rows, schema, &inner, out);
        }
    }
}

/// Every key path in `value` (`peers[].bfd.state`) with its values.
fn actual<'a>(value: &'a Value, prefix: &str, out: &mut BTreeMap<String, Vec<&'a Value>>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let path = join(prefix, key);
                out.entry(path.clone()).or_default().push(v);
                actual(v, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                actual(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// Whether `value` is of the documented type text.
fn is_of(ty: &str, value: &Value) -> bool {
    if value.is_null() {
        return ty.contains("or null");
    }
    let base = ty.split(" or ").next().unwrap_or_default();
    let scalar = |t: &str, v: &Value| match t {
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => v.is_object(), // "object" or a named type
    };
    match base.strip_prefix("array of ") {
        Some(element) => value
            .as_array()
            .is_some_and(|items| items.iter().all(|i| scalar(element, i))),
        None => scalar(base, value),
    }
}

/// A value with every leaf replaced by its kind: YAML and JSON must agree
/// on it.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::Null => Value::from("null"),
        Value::Bool(_) => Value::from("bool"),
        Value::Number(n) if n.is_f64() => Value::from("float"),
        Value::Number(_) => Value::from("int"),
        Value::String(_) => Value::from("string"),
    }
}

/// The arguments that run each documented command against the fakes.
fn arguments(command: &str) -> Vec<&'static str> {
    match command {
        "podctl version" => vec!["version"],
        "podctl status" => vec!["status"],
        "podctl bgp peers" => vec!["bgp", "peers"],
        "podctl bgp peer ADDRESS" => vec!["bgp", "peer", "192.0.2.1"],
        "podctl bgp routes" => vec!["bgp", "routes"],
        "podctl bgp route PREFIX" => vec!["bgp", "route", "10.244.1.0/26"],
        "podctl ipam pools" => vec!["ipam", "pools"],
        "podctl ipam blocks" => vec!["ipam", "blocks"],
        "podctl ipam show --ip ADDRESS" => vec!["ipam", "show", "--ip", "10.244.3.7"],
        "podctl ipam usage" => vec!["ipam", "usage"],
        "podctl ipam check" => vec!["ipam", "check"],
        "podctl ipam release --handle HANDLE" => vec!["ipam", "release", "--handle", "h1"],
        "podctl ipam pool create" => {
            vec!["ipam", "pool", "create", "blue", "--cidr", "10.250.0.0/16"]
        }
        "podctl ipam pool delete NAME" => vec!["ipam", "pool", "delete", "blue"],
        "podctl policy endpoints" => vec!["policy", "endpoints"],
        "podctl policy explain" => vec![
            "policy",
            "explain",
            "--from",
            "web/front-0",
            "--to",
            "shop/db-0",
            "--port",
            "5432",
        ],
        other => panic!("OUTPUT.md documents {other:?}: add how to run it to this test"),
    }
}

/// ipamd answers with every field filled.
fn full_ipam() -> Script {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let pool = Pool {
        name: "default-ipv4".into(),
        cidr: "10.244.0.0/16".into(),
        block_size: 26,
        disabled: false,
        node_selector: "zone == a".into(),
        disable_bgp_export: false,
        reserved_cidrs: vec!["10.244.0.0/28".into()],
    };
    Script {
        pools: ListPoolsResponse {
            pools: vec![pool.clone()],
        },
        usage: UsageResponse {
            pools: vec![PoolUsage {
                pool: "default-ipv4".into(),
                cidr: "10.244.0.0/16".into(),
                capacity: 65_520,
                allocated: 200,
                cooling: 3,
                reserved: 16,
                blocks_total: 1024,
                blocks_claimed: 4,
                ..PoolUsage::default()
            }],
        },
        blocks: ListBlocksResponse {
            blocks: vec![Block {
                cidr: "10.244.3.64/26".into(),
                pool: "default-ipv4".into(),
                node: "node-b".into(),
                capacity: 64,
                empty_since_unix_ms: now_ms - 60_000,
                ..Block::default()
            }],
        },
        show: ShowAddressResponse {
            address: "10.244.3.7".into(),
            pool: "default-ipv4".into(),
            block: "10.244.3.0/26".into(),
            block_node: "node-a".into(),
            allocated: true,
            handle: "h1".into(),
            node: "node-b".into(),
            pod_namespace: "default".into(),
            pod_name: "web-0".into(),
            borrowed: true,
            allocated_at_unix_ms: now_ms - 60_000,
            // Cooling fields only apply to a free address: the fake's
            // answer is not one ipamd would give, to fill every field.
            cooling_until_unix_ms: now_ms + 3_600_000,
            ..ShowAddressResponse::default()
        },
        check: CheckResponse {
            problems: vec![Problem {
                kind: ProblemKind::LeakedEmptyBlock.into(),
                subject: "10.244.9.0/26".into(),
                detail: "empty for 2h".into(),
            }],
            pools_checked: 1,
            blocks_checked: 3,
            handles_checked: 10,
            allocations_checked: 10,
            nodes_checked: true,
        },
        release: ReleaseResponse {
            released: 1,
            addresses: vec!["10.244.3.7".into()],
        },
        delete: DeletePoolResponse { blocks_removed: 2 },
        error: None,
    }
}

async fn run(sockets: &common::Sockets, ipamd: &Path, args: &[&str], format: &str) -> Output {
    podctl_command()
        .arg("--bgpd")
        .arg(&sockets.bgpd)
        .arg("--ipamd")
        .arg(ipamd)
        .arg("--policy")
        .arg(&sockets.policy)
        .args(args)
        .args(["-o", format])
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_field_is_printed_and_nothing_else() {
    let schema = read_schema();
    assert!(schema.commands.len() >= 15, "{schema:?}");

    let s = sockets();
    let bgpd = serve(&s.bgpd, FakeBgpd::default().router()).await;
    let policy = serve(&s.policy, FakePolicy.router()).await;
    let ipamd = Fake::start(full_ipam()).await;

    let mut failures = Vec::new();
    for (command, rows) in &schema.commands {
        let mut documented = BTreeMap::new();
        expand(rows, &schema, "", &mut documented);
        let args = arguments(command);

        let out = run(&s, &ipamd.socket, &args, "json").await;
        // `ipam check` and `status` exit 1 when they find problems, after
        // printing.
        assert!(
            out.status.success() || command == "podctl ipam check" || command == "podctl status",
            "{command}: {out:?}"
        );
        let json: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{command}: not JSON ({e}): {}", stdout(&out)));
        let mut printed = BTreeMap::new();
        actual(&json, "", &mut printed);

        let documented_paths: BTreeSet<&String> = documented.keys().collect();
        let printed_paths: BTreeSet<&String> = printed.keys().collect();
        for missing in documented_paths.difference(&printed_paths) {
            failures.push(format!("{command}: documented `{missing}` not printed"));
        }
        for extra in printed_paths.difference(&documented_paths) {
            failures.push(format!("{command}: prints `{extra}`, not in OUTPUT.md"));
        }
        for (path, ty) in &documented {
            for value in printed.get(path).into_iter().flatten() {
                if !is_of(ty, value) {
                    failures.push(format!(
                        "{command}: `{path}` is {value}, documented as {ty}"
                    ));
                }
            }
        }

        let out = run(&s, &ipamd.socket, &args, "yaml").await;
        let yaml: Value = serde_yaml_ng::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{command}: not YAML ({e}): {}", stdout(&out)));
        if shape(&yaml) != shape(&json) {
            failures.push(format!("{command}: YAML {yaml} is not the JSON {json}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    bgpd.stop().await.unwrap();
    policy.stop().await.unwrap();
    ipamd.stop().await;
}

#[test]
fn the_checker_catches_what_it_should() {
    // A documented field that is gone, or of another type, is reported:
    // the checker is not vacuous.
    let schema = Schema {
        commands: Vec::new(),
        types: HashMap::from([(
            "T".to_owned(),
            vec![Row {
                path: "n".into(),
                ty: "integer or null".into(),
            }],
        )]),
    };
    let rows = vec![
        Row {
            path: "items".into(),
            ty: "array of `T`".into(),
        },
        Row {
            path: "name".into(),
            ty: "string".into(),
        },
    ];
    let mut documented = BTreeMap::new();
    expand(&rows, &schema, "", &mut documented);
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        ["items", "items[].n", "name"]
    );
    let value = serde_json::json!({"items": [{"n": 1}, {"n": null}], "name": 7});
    let mut printed = BTreeMap::new();
    actual(&value, "", &mut printed);
    assert_eq!(
        printed.keys().collect::<Vec<_>>(),
        ["items", "items[].n", "name"]
    );
    assert!(!is_of("string", &value["name"]));
    assert!(is_of("integer or null", &Value::Null));
    assert!(!is_of("integer", &Value::Null));
    assert!(is_of("array of string", &serde_json::json!(["a"])));
    assert!(!is_of("array of string", &serde_json::json!([1])));
    assert!(is_of("number", &serde_json::json!(0.3)));
    assert!(!is_of("integer", &serde_json::json!(0.3)));
}
