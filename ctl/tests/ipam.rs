// Runs the built podctl's `ipam` commands against a fake Ipam gRPC service
// (common/ipam.rs) on a Unix socket in a temporary directory: canned answers
// in, and the requests podctl made recorded, so each test checks both what
// podctl sent and what it printed, including how ipamd's status codes are
// worded.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;

use common::ipam::{Call, Fake, Script};
use podroute_proto::admin_socket::BackgroundServer;
use podroute_proto::ipam::v1::{
    Block, CheckRequest, CheckResponse, CreatePoolRequest, DeletePoolRequest, DeletePoolResponse,
    ListBlocksRequest, ListBlocksResponse, ListPoolsResponse, Pool, PoolUsage, Problem,
    ProblemKind, ReleaseRequest, ReleaseResponse, ShowAddressRequest, ShowAddressResponse,
    UsageResponse,
};
use tokio::io::AsyncWriteExt;
use tonic::Code;

impl Fake {
    async fn podctl(&self, args: &[&str]) -> Output {
        podctl(&self.socket, args, None).await
    }
}

/// Runs podctl with `--ipamd socket` and `args`, `stdin` on its standard
/// input.
async fn podctl(socket: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = common::podctl_command()
        .arg("--ipamd")
        .arg(socket)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run podctl");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await.expect("write stdin");
    }
    child.wait_with_output().await.expect("podctl output")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn parse_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", stdout(out)))
}

fn default_pool() -> Pool {
    Pool {
        name: "default-ipv4".into(),
        cidr: "10.244.0.0/16".into(),
        block_size: 26,
        ..Pool::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_join_the_spec_with_the_usage() {
    let fake = Fake::start(Script {
        pools: ListPoolsResponse {
            pools: vec![
                default_pool(),
                Pool {
                    name: "edge".into(),
                    cidr: "10.250.0.0/24".into(),
                    block_size: 28,
                    disabled: true,
                    node_selector: "zone == edge".into(),
                    disable_bgp_export: true,
                    reserved_cidrs: vec!["10.250.0.0/28".into()],
                },
            ],
        },
        usage: UsageResponse {
            pools: vec![
                PoolUsage {
                    pool: "default-ipv4".into(),
                    cidr: "10.244.0.0/16".into(),
                    capacity: 65_536,
                    allocated: 200,
                    cooling: 3,
                    blocks_total: 1024,
                    blocks_claimed: 4,
                    ..PoolUsage::default()
                },
                PoolUsage {
                    pool: "edge".into(),
                    cidr: "10.250.0.0/24".into(),
                    disabled: true,
                    capacity: 240,
                    allocated: 60,
                    reserved: 16,
                    blocks_total: 16,
                    blocks_claimed: 15,
                    ..PoolUsage::default()
                },
            ],
        },
        ..Script::default()
    })
    .await;

    let out = fake.podctl(&["ipam", "pools"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "\
NAME          CIDR           BLOCK SIZE  DISABLED  SELECTOR      BGP EXPORT  ALLOCATED  USED
default-ipv4  10.244.0.0/16  /26         no        all()         yes         200/65536  0.3%
edge          10.250.0.0/24  /28         yes       zone == edge  no          60/240     25.0%
"
    );
    // One connection, both questions.
    assert_eq!(fake.calls(), [Call::ListPools, Call::Usage]);

    let out = fake.podctl(&["ipam", "pools", "-o", "json"]).await;
    let json = parse_json(&out);
    assert_eq!(json["pools"][1]["name"], "edge");
    assert_eq!(json["pools"][1]["block_size"], 28);
    assert_eq!(json["pools"][1]["disable_bgp_export"], true);
    assert_eq!(json["pools"][1]["reserved_cidrs"][0], "10.250.0.0/28");
    assert_eq!(json["pools"][1]["allocated"], 60);
    assert_eq!(json["pools"][1]["capacity"], 240);
    assert_eq!(json["pools"][1]["used_percent"], 25.0);
    assert_eq!(fake.calls(), [Call::ListPools, Call::Usage]);

    let out = fake.podctl(&["ipam", "usage"]).await;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "POOL          CIDR           ALLOCATED  USED   COOLING  RESERVED  FREE   BLOCKS CLAIMED  DISABLED\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("\nedge          10.250.0.0/24  60/240     25.0%  0        16        180    15/16           yes\n"),
        "{text}"
    );
    assert_eq!(fake.calls(), [Call::Usage]);
    let out = fake.podctl(&["ipam", "usage", "-o", "json"]).await;
    assert_eq!(parse_json(&out)["pools"][0]["free"], 65_333);

    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_pass_the_node_on() {
    let fake = Fake::start(Script {
        blocks: ListBlocksResponse {
            blocks: vec![Block {
                cidr: "10.244.3.0/26".into(),
                pool: "default-ipv4".into(),
                node: "node-a".into(),
                capacity: 64,
                allocated: 12,
                cooling: 1,
                borrowed_by_others: 2,
                ..Block::default()
            }],
        },
        ..Script::default()
    })
    .await;

    let out = fake.podctl(&["ipam", "blocks", "--node", "node-a"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "\
CIDR           POOL          NODE    ALLOCATED  COOLING  BORROWED BY OTHERS  EMPTY FOR
10.244.3.0/26  default-ipv4  node-a  12/64      1        2                   -
"
    );
    assert_eq!(
        fake.calls(),
        [Call::ListBlocks(ListBlocksRequest {
            node: "node-a".into()
        })]
    );

    let out = fake.podctl(&["ipam", "blocks", "-o", "json"]).await;
    let json = parse_json(&out);
    assert_eq!(json["blocks"][0]["borrowed_by_others"], 2);
    assert_eq!(json["blocks"][0]["empty_for_s"], serde_json::Value::Null);
    assert_eq!(
        fake.calls(),
        [Call::ListBlocks(ListBlocksRequest::default())]
    );
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_names_the_holder() {
    let fake = Fake::start(Script {
        show: ShowAddressResponse {
            address: "10.244.3.7".into(),
            pool: "default-ipv4".into(),
            block: "10.244.3.0/26".into(),
            block_node: "node-a".into(),
            allocated: true,
            handle: "podroute.0123abcd.eth0".into(),
            node: "node-a".into(),
            pod_namespace: "default".into(),
            pod_name: "web-0".into(),
            ..ShowAddressResponse::default()
        },
        ..Script::default()
    })
    .await;

    // A host prefix is taken as the address.
    let out = fake
        .podctl(&["ipam", "show", "--ip", "10.244.3.7/32"])
        .await;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("State:        allocated to handle podroute.0123abcd.eth0 for pod default/web-0 on node node-a\n"),
        "{text}"
    );
    assert!(
        text.contains("Block:        10.244.3.0/26 (affine to node-a)\n"),
        "{text}"
    );
    assert_eq!(
        fake.calls(),
        [Call::Show(ShowAddressRequest {
            address: "10.244.3.7".into()
        })]
    );

    let out = fake
        .podctl(&["ipam", "show", "--ip", "10.244.3.7", "-o", "json"])
        .await;
    let json = parse_json(&out);
    assert_eq!(json["state"], "allocated");
    assert_eq!(json["handle"], "podroute.0123abcd.eth0");
    assert_eq!(json["borrowed"], false);

    // A bad address never reaches the daemon.
    let out = fake.podctl(&["ipam", "show", "--ip", "web-0"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("is not an IP address"), "{out:?}");
    assert_eq!(
        fake.calls(),
        [Call::Show(ShowAddressRequest {
            address: "10.244.3.7".into()
        })]
    );
    fake.stop().await;
}

fn problems() -> CheckResponse {
    CheckResponse {
        problems: vec![Problem {
            kind: ProblemKind::BlockOfUnknownNode.into(),
            subject: "10.244.3.0/26".into(),
            detail: "affine to node node-gone, which does not exist".into(),
        }],
        pools_checked: 1,
        blocks_checked: 3,
        handles_checked: 10,
        allocations_checked: 10,
        nodes_checked: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_sends_the_known_nodes_and_exits_1_on_problems() {
    let fake = Fake::start(Script {
        check: problems(),
        ..Script::default()
    })
    .await;
    let out = fake
        .podctl(&["ipam", "check", "--node", "node-a", "--node", "node-b"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stdout(&out),
        "\
KIND                   SUBJECT        DETAIL
block_of_unknown_node  10.244.3.0/26  affine to node node-gone, which does not exist

checked 1 pool, 3 blocks, 10 handles, 10 allocations; nodes checked
1 problem found
"
    );
    assert_eq!(stderr(&out), "");
    assert_eq!(
        fake.calls(),
        [Call::Check(CheckRequest {
            known_nodes: vec!["node-a".into(), "node-b".into()]
        })]
    );

    let out = fake.podctl(&["ipam", "check", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let json = parse_json(&out);
    assert_eq!(json["ok"], false);
    assert_eq!(json["problems"][0]["kind"], "block_of_unknown_node");
    assert_eq!(fake.calls(), [Call::Check(CheckRequest::default())]);
    fake.stop().await;

    let clean = Fake::start(Script {
        check: CheckResponse {
            problems: Vec::new(),
            nodes_checked: false,
            ..problems()
        },
        ..Script::default()
    })
    .await;
    let out = clean.podctl(&["ipam", "check"]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).ends_with("no problems found\n"), "{out:?}");
    assert!(stdout(&out).contains("pass --node NAME"), "{out:?}");
    clean.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_sends_the_handle_and_says_what_was_freed() {
    let fake = Fake::start(Script {
        release: ReleaseResponse {
            released: 2,
            addresses: vec!["10.244.3.7".into(), "fd00:10:244::7".into()],
        },
        ..Script::default()
    })
    .await;
    let out = fake
        .podctl(&["ipam", "release", "--handle", "podroute.0123abcd.eth0"])
        .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "released 2 addresses of handle podroute.0123abcd.eth0: 10.244.3.7, fd00:10:244::7\n"
    );
    assert_eq!(
        fake.calls(),
        [Call::Release(ReleaseRequest {
            handle: "podroute.0123abcd.eth0".into()
        })]
    );
    let out = fake
        .podctl(&["ipam", "release", "--handle", "h", "-o", "json"])
        .await;
    assert_eq!(parse_json(&out)["released"], 2);
    fake.stop().await;

    // An unknown handle: ipamd frees nothing and says so with success.
    let none = Fake::start(Script::default()).await;
    let out = none.podctl(&["ipam", "release", "--handle", "gone"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "handle gone holds no addresses: nothing to release\n"
    );
    none.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_create_from_flags_from_a_manifest_and_from_stdin() {
    let fake = Fake::start(Script::default()).await;
    let out = fake
        .podctl(&[
            "ipam",
            "pool",
            "create",
            "blue",
            "--cidr",
            "10.250.0.0/16",
            "--block-size",
            "28",
            "--node-selector",
            "zone in (a,b)",
            "--disabled",
            "--disable-bgp-export",
            "--reserved",
            "10.250.0.0/28",
            "10.250.255.0/24",
        ])
        .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "pool blue created: 10.250.0.0/16, /28 blocks, disabled, nodes zone in (a,b), not exported over BGP, reserved 10.250.0.0/28 10.250.255.0/24\n"
    );
    let blue = Pool {
        name: "blue".into(),
        cidr: "10.250.0.0/16".into(),
        block_size: 28,
        disabled: true,
        node_selector: "zone in (a,b)".into(),
        disable_bgp_export: true,
        reserved_cidrs: vec!["10.250.0.0/28".into(), "10.250.255.0/24".into()],
    };
    assert_eq!(
        fake.calls(),
        [Call::CreatePool(CreatePoolRequest {
            pool: Some(blue.clone())
        })]
    );

    // The same pool as a manifest file.
    let manifest = "\
apiVersion: podroute.io/v1
kind: IPPool
metadata:
  name: blue
spec:
  cidr: 10.250.0.0/16
  blockSize: 28
  disabled: true
  nodeSelector: zone in (a,b)
  disableBGPExport: true
  reservedCIDRs: [10.250.0.0/28, 10.250.255.0/24]
";
    let file = fake.dir.path().join("blue.yaml");
    std::fs::write(&file, manifest).unwrap();
    let file = file.to_str().unwrap();
    let out = fake
        .podctl(&["ipam", "pool", "create", "-f", file, "-o", "json"])
        .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(parse_json(&out)["pool"]["node_selector"], "zone in (a,b)");
    assert_eq!(
        fake.calls(),
        [Call::CreatePool(CreatePoolRequest {
            pool: Some(blue.clone())
        })]
    );

    // Defaults from standard input: block size 0 asks ipamd for its own.
    let minimal = "apiVersion: podroute.io/v1\nkind: IPPool\nmetadata: {name: green}\nspec: {cidr: 10.251.0.0/16}\n";
    let out = podctl(
        &fake.socket,
        &["ipam", "pool", "create", "-f", "-"],
        Some(minimal),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).starts_with("pool green created: 10.251.0.0/16, /26 blocks, enabled, nodes all(), exported over BGP\n"),
        "{out:?}"
    );
    assert_eq!(
        fake.calls(),
        [Call::CreatePool(CreatePoolRequest {
            pool: Some(Pool {
                name: "green".into(),
                cidr: "10.251.0.0/16".into(),
                ..Pool::default()
            })
        })]
    );

    // A manifest with a typo never reaches the daemon.
    std::fs::write(
        fake.dir.path().join("typo.yaml"),
        manifest.replace("blockSize", "blocksize"),
    )
    .unwrap();
    let typo = fake.dir.path().join("typo.yaml");
    let out = fake
        .podctl(&["ipam", "pool", "create", "-f", typo.to_str().unwrap()])
        .await;
    assert!(!out.status.success(), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "podctl: {}: not a valid IPPool manifest: ",
            typo.display()
        )),
        "{err}"
    );
    assert!(err.contains("unknown field `blocksize`"), "{err}");
    assert_eq!(fake.calls(), []);
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_delete_sends_the_name() {
    let fake = Fake::start(Script {
        delete: DeletePoolResponse { blocks_removed: 3 },
        ..Script::default()
    })
    .await;
    let out = fake.podctl(&["ipam", "pool", "delete", "blue"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "pool blue deleted, with its 3 empty blocks\n");
    assert_eq!(
        fake.calls(),
        [Call::DeletePool(DeletePoolRequest {
            name: "blue".into()
        })]
    );
    let out = fake
        .podctl(&["ipam", "pool", "delete", "blue", "-o", "json"])
        .await;
    assert_eq!(
        parse_json(&out),
        serde_json::json!({"pool": "blue", "blocks_removed": 3})
    );
    fake.stop().await;
}

/// podctl's stderr for `args` when every call fails with `code`.
async fn error_for(code: Code, message: &'static str, args: &[&str]) -> String {
    let fake = Fake::start(Script {
        error: Some((code, message)),
        ..Script::default()
    })
    .await;
    let out = fake.podctl(args).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stdout(&out), "", "{out:?}");
    fake.stop().await;
    stderr(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_become_advice() {
    let err = error_for(
        Code::Unavailable,
        "etcd: context deadline exceeded",
        &["ipam", "pools"],
    )
    .await;
    assert_eq!(
        err,
        "podctl: listing IP pools: the IPAM store is unreachable, retry (podroute-ipamd: etcd: context deadline exceeded)\n"
    );

    let err = error_for(
        Code::NotFound,
        "no pool named \"blue\"",
        &["ipam", "pool", "delete", "blue"],
    )
    .await;
    assert_eq!(
        err,
        "podctl: deleting pool \"blue\": no pool named \"blue\"; `podctl ipam pools` lists the pools\n"
    );

    let err = error_for(
        Code::FailedPrecondition,
        "pool \"blue\" still holds 3 addresses",
        &["ipam", "pool", "delete", "blue"],
    )
    .await;
    assert!(
        err.ends_with("still holds 3 addresses; release its addresses first; `podctl ipam blocks` shows which blocks still hold some\n"),
        "{err}"
    );

    let err = error_for(
        Code::AlreadyExists,
        "pool \"blue\" exists with cidr 10.1.0.0/16",
        &["ipam", "pool", "create", "blue", "--cidr", "10.250.0.0/16"],
    )
    .await;
    assert!(
        err.starts_with("podctl: creating pool \"blue\": pool \"blue\" exists with cidr 10.1.0.0/16; `podctl ipam pools` shows the pool there is"),
        "{err}"
    );

    // RESOURCE_EXHAUSTED and the like: the daemon's words, as they are.
    let words = "pool \"default-ipv4\" (10.244.0.0/16) is exhausted: 65536 of 65536 addresses in use, 0 cooling down";
    let err = error_for(Code::ResourceExhausted, words, &["ipam", "usage"]).await;
    assert_eq!(err, format!("podctl: reading pool usage: {words}\n"));

    let err = error_for(
        Code::InvalidArgument,
        "block size 20 is shorter than the pool's prefix /24",
        &[
            "ipam",
            "pool",
            "create",
            "x",
            "--cidr",
            "10.0.0.0/24",
            "--block-size",
            "20",
        ],
    )
    .await;
    assert!(
        err.ends_with("shorter than the pool's prefix /24; fix the pool's spec and try again\n"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_socket_asks_whether_ipamd_runs() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ipamd.sock");
    for args in [
        &["ipam", "pools"][..],
        &["ipam", "check"],
        &["ipam", "release", "--handle", "h"],
    ] {
        let out = podctl(&socket, args, None).await;
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(
            stderr(&out),
            format!(
                "podctl: is podroute-ipamd running? socket {} not found\n",
                socket.display()
            )
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_the_real_ipam_engine() {
    // The real engine on its embedded store, not the fake: what podctl
    // prints is what ipamd holds.
    use podroute_ipam::allocator::{AllocateRequest, Settings};
    use podroute_ipam::service::Ipamd;
    use podroute_ipam::service::nodes::NodeDirectory;
    use podroute_ipam::store::EmbeddedStore;

    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("data")).unwrap();
    let ipamd = Ipamd::start(
        store,
        Settings::default(),
        Arc::new(NodeDirectory::default()),
    )
    .await
    .unwrap();
    let socket = dir.path().join("ipamd.sock");
    let server = BackgroundServer::start(&socket, podroute_ipam::admin::router(ipamd.clone()))
        .await
        .unwrap();

    let out = podctl(
        &socket,
        &[
            "ipam",
            "pool",
            "create",
            "blue",
            "--cidr",
            "10.77.0.0/24",
            "--block-size",
            "28",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let allocated = ipamd
        .allocate(AllocateRequest {
            node: "n1".into(),
            handle: "net.abc.eth0".into(),
            pod_namespace: "shop".into(),
            pod_name: "cart-0".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(allocated[0].address.to_string(), "10.77.0.0");

    let out = podctl(
        &socket,
        &["ipam", "show", "--ip", "10.77.0.0", "-o", "json"],
        None,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["state"], "allocated");
    assert_eq!(shown["handle"], "net.abc.eth0");
    assert_eq!(shown["pod_name"], "cart-0");
    assert_eq!(shown["block"], "10.77.0.0/28");

    let out = podctl(
        &socket,
        &["ipam", "blocks", "--node", "n1", "-o", "json"],
        None,
    )
    .await;
    let blocks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(blocks["blocks"][0]["cidr"], "10.77.0.0/28");
    assert_eq!(blocks["blocks"][0]["allocated"], 1);

    let out = podctl(&socket, &["ipam", "check", "--node", "n1"], None).await;
    assert!(out.status.success(), "{out:?}");

    let out = podctl(
        &socket,
        &["ipam", "release", "--handle", "net.abc.eth0"],
        None,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("10.77.0.0"),
        "{out:?}"
    );
    let out = podctl(&socket, &["ipam", "pool", "delete", "blue"], None).await;
    assert!(out.status.success(), "{out:?}");
    let out = podctl(&socket, &["ipam", "pools", "-o", "json"], None).await;
    let pools: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pools["pools"], serde_json::json!([]));
    server.stop().await.unwrap();
}
