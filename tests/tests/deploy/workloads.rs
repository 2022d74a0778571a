// The workloads' settings: privileges container by container, the node
// DaemonSet everywhere on the host network, the CNI install writing what
// the host can read, ipamd's one store writer, and the cleanup removing
// what the install leaves.

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::api::core::v1::Container;

use crate::builds::{build, builds, command_line, containers, flag_value};
use crate::tables::{CLUSTER_IP, IMAGE_UID, NODE_NAME, PRIVILEGES};
use crate::typed::Object;

#[test]
fn privileges_are_the_reasoned_ones() {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for build in builds() {
        for (_, workload) in build.workloads() {
            let pod_context = workload.spec.security_context.as_ref();
            if pod_context
                .and_then(|s| s.seccomp_profile.as_ref())
                .map(|p| p.type_.as_str())
                != Some("RuntimeDefault")
            {
                problems.push(format!(
                    "{}: {}: seccompProfile is not RuntimeDefault",
                    build.name, workload.id
                ));
            }
            if workload.spec.host_pid == Some(true) || workload.spec.host_ipc == Some(true) {
                problems.push(format!(
                    "{}: {}: host PID or IPC namespace",
                    build.name, workload.id
                ));
            }
            let pod_user = pod_context.and_then(|s| s.run_as_user);
            for container in containers(workload.spec) {
                let at = format!(
                    "{}: {} container {}",
                    build.name, workload.id, container.name
                );
                let Some((_, _, root, add)) = PRIVILEGES
                    .iter()
                    .find(|(w, c, _, _)| *w == workload.name && *c == container.name)
                else {
                    problems.push(format!(
                        "{at}: not in PRIVILEGES (tests/tests/deploy/tables.rs): reason it out there"
                    ));
                    continue;
                };
                seen.insert((workload.name.to_owned(), container.name.clone()));
                let context = container.security_context.clone().unwrap_or_default();
                let user = context.run_as_user.or(pod_user).unwrap_or(IMAGE_UID);
                if (user == 0) != *root {
                    problems.push(format!("{at}: runs as {user}, expected root: {root}"));
                }
                if context.privileged == Some(true)
                    || context.allow_privilege_escalation != Some(false)
                {
                    problems.push(format!(
                        "{at}: privileged, or privilege escalation not refused"
                    ));
                }
                let capabilities = context.capabilities.unwrap_or_default();
                if capabilities.drop != Some(vec!["ALL".to_owned()]) {
                    problems.push(format!("{at}: capabilities.drop is not [ALL]"));
                }
                let added: BTreeSet<String> =
                    capabilities.add.unwrap_or_default().into_iter().collect();
                let expected: BTreeSet<String> = add.iter().map(|s| (*s).to_owned()).collect();
                if added != expected {
                    problems.push(format!("{at}: adds {added:?}, expected {expected:?}"));
                }
            }
        }
    }
    for (workload, container, _, _) in PRIVILEGES {
        if !seen.contains(&(workload.to_owned(), container.to_owned())) {
            problems.push(format!(
                "PRIVILEGES lists {workload}/{container}, which no build has"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_node_daemonset_runs_everywhere_on_the_host_network() {
    for build in builds()
        .iter()
        .filter(|b| b.name != "deploy/uninstall.yaml")
    {
        let node = build
            .objects
            .iter()
            .find_map(|t| match &t.object {
                Object::DaemonSet(d) if t.doc.name() == "podroute-node" => Some(d.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{}: no DaemonSet podroute-node", build.name));
        let spec = &node.spec;
        let strategy = spec.update_strategy.as_ref().unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        assert_eq!(
            strategy
                .rolling_update
                .as_ref()
                .and_then(|r| r.max_unavailable.clone()),
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
        );
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.host_network, Some(true));
        assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
        assert_eq!(
            pod.priority_class_name.as_deref(),
            Some("system-node-critical")
        );
        assert_eq!(pod.service_account_name.as_deref(), Some("podroute-node"));
        // No key and no effect: every taint, NoExecute ones included
        // (not-ready, unreachable), for ever.
        let tolerations = pod.tolerations.clone().unwrap_or_default();
        assert!(
            tolerations.len() == 1
                && tolerations[0].operator.as_deref() == Some("Exists")
                && tolerations[0].key.is_none()
                && tolerations[0].effect.is_none()
                && tolerations[0].toleration_seconds.is_none(),
            "{}: podroute-node must tolerate every taint",
            build.name
        );
        assert!(pod.termination_grace_period_seconds.unwrap_or(30) >= 30);
        let init: Vec<&str> = pod
            .init_containers
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            init,
            ["install-tls", "install-cni"],
            "TLS files first: the conflist names them"
        );
        let main: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(main, ["bgpd", "policy-agent"]);
        // The sockets where podctl on the host looks.
        let mounts_run = |c: &Container, socket: &str| {
            let dir = Path::new(socket)
                .parent()
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == dir)
        };
        assert!(mounts_run(&pod.containers[0], podroute_proto::BGPD_SOCKET));
        assert!(mounts_run(
            &pod.containers[1],
            podroute_proto::POLICY_SOCKET
        ));
        let host_path = |name: &str| {
            pod.volumes
                .iter()
                .flatten()
                .find(|v| v.name == name)
                .and_then(|v| v.host_path.clone())
                .unwrap_or_else(|| panic!("no hostPath volume {name}"))
        };
        let lock = host_path("xtables-lock");
        assert_eq!(
            (lock.path.as_str(), lock.type_.as_deref()),
            ("/run/xtables.lock", Some("FileOrCreate"))
        );
        assert_eq!(host_path("lib-modules").path, "/lib/modules");
        assert_eq!(host_path("run-podroute").path, "/var/run/podroute");
    }
}

#[test]
fn the_cni_install_writes_what_the_host_can_read() {
    let build = build("deploy/podroute.yaml");
    let (index, node) = build
        .workloads()
        .find(|(_, w)| w.name == "podroute-node")
        .unwrap();
    let find = |name: &str| containers(node.spec).find(|c| c.name == name).unwrap();
    let install = command_line(&build, index, &node, find("install-cni")).unwrap();
    let tls = command_line(&build, index, &node, find("install-tls")).unwrap();
    let bgpd = command_line(&build, index, &node, find("bgpd")).unwrap();
    // A host folder mounted at /host<folder> in `container`.
    let host_mount = |container: &str, mount: &str| -> String {
        let m = find(container)
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == mount)
            .unwrap_or_else(|| panic!("{container} mounts nothing at {mount}"));
        let volume = node
            .spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == m.name)
            .unwrap();
        volume.host_path.as_ref().unwrap().path.clone()
    };
    for (flag, host) in [
        ("--bin-dir", "/opt/cni/bin"),
        ("--conf-dir", "/etc/cni/net.d"),
    ] {
        let dir = flag_value(&install, flag).unwrap();
        assert_eq!(dir, format!("/host{host}"));
        assert_eq!(host_mount("install-cni", dir), host);
    }
    // install-tls copies the Secret's files to the host folder whose paths
    // the conflist names (the plugin runs on the host).
    let target = flag_value(&tls, "-t").unwrap();
    let host_dir = host_mount("install-tls", target);
    assert_eq!(target, format!("/host{host_dir}"));
    for flag in ["--tls-ca", "--tls-cert", "--tls-key"] {
        let file = flag_value(&install, flag).unwrap();
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        assert_eq!(
            Path::new(file).parent().unwrap(),
            Path::new(&host_dir),
            "{flag}"
        );
        assert!(
            tls.iter().any(|w| w.ends_with(&format!("/{name}"))),
            "install-tls copies no {name}"
        );
    }
    // The plugin and bgpd reach the same ipamd, at the Service's cluster IP.
    let endpoint = flag_value(&install, "--ipamd-endpoint").unwrap();
    assert_eq!(Some(endpoint), flag_value(&bgpd, "--ipamd"));
    assert_eq!(endpoint, format!("https://{CLUSTER_IP}:9640"));
    assert!(podroute_proto::ipamd_client::Endpoint::parse(endpoint).is_ok());
    assert_eq!(flag_value(&install, "--node-name"), Some(NODE_NAME));
    // ipamd's certificate names the address they dial.
    let (i, ipamd) = build
        .workloads()
        .find(|(_, w)| w.name == "podroute-ipamd")
        .unwrap();
    let ipamd_container = ipamd
        .spec
        .containers
        .iter()
        .find(|c| c.name == "ipamd")
        .unwrap();
    let ipamd_line = command_line(&build, i, &ipamd, ipamd_container).unwrap();
    let names: Vec<&str> = flag_value(&ipamd_line, "--tls-dns-names")
        .unwrap()
        .split(',')
        .collect();
    assert!(names.contains(&CLUSTER_IP), "{names:?}");
    assert!(
        names.contains(&"podroute-ipamd.podroute-system.svc"),
        "{names:?}"
    );
    // The Service comes before the workloads: their pods get its address
    // from the environment only if it existed when they were made.
    let service = build
        .objects
        .iter()
        .position(|t| t.doc.kind() == "Service")
        .unwrap();
    for (i, w) in build.workloads() {
        assert!(service < i, "the Service must come before {}", w.id);
    }
}

#[test]
fn ipamd_keeps_one_store_writer() {
    for build in builds()
        .iter()
        .filter(|b| b.name != "deploy/uninstall.yaml")
    {
        let deployment = build
            .objects
            .iter()
            .find_map(|t| match &t.object {
                Object::Deployment(d) if t.doc.name() == "podroute-ipamd" => Some(d.clone()),
                _ => None,
            })
            .unwrap();
        let spec = &deployment.spec;
        let pod = spec.template.spec.as_ref().unwrap();
        let (index, workload) = build
            .workloads()
            .find(|(_, w)| w.name == "podroute-ipamd")
            .unwrap();
        let ipamd = pod.containers.iter().find(|c| c.name == "ipamd").unwrap();
        let line = command_line(build, index, &workload, ipamd).unwrap();
        assert_eq!(pod.host_network, Some(true));
        assert_eq!(pod.service_account_name.as_deref(), Some("podroute-ipamd"));
        assert_eq!(
            pod.node_selector
                .clone()
                .unwrap_or_default()
                .get("node-role.kubernetes.io/control-plane"),
            Some(&String::new())
        );
        // On a control-plane node that is not Ready yet (no CNI before
        // ipamd runs), and never evicted from it: NoExecute not-ready (a
        // fresh node's) and unreachable tolerated for ever, not the
        // default 300 s.
        let tolerations = pod.tolerations.clone().unwrap_or_default();
        for (key, effect) in [
            ("node-role.kubernetes.io/control-plane", "NoSchedule"),
            ("node.kubernetes.io/not-ready", "NoSchedule"),
            ("node.kubernetes.io/network-unavailable", "NoSchedule"),
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
        ] {
            assert!(
                tolerations.iter().any(|t| t.key.as_deref() == Some(key)
                    && t.operator.as_deref() == Some("Exists")
                    && t.effect.as_deref() == Some(effect)
                    && t.toleration_seconds.is_none()),
                "{}: ipamd does not tolerate {key}:{effect} for ever",
                build.name
            );
        }
        let context = pod.security_context.as_ref().unwrap();
        assert_eq!(
            (context.run_as_non_root, context.run_as_user),
            (Some(true), Some(IMAGE_UID))
        );
        assert_eq!(
            flag_value(&line, "--tls-secret"),
            Some("podroute-ipamd-tls")
        );
        assert!(
            workload.spec.containers.iter().any(|c| c
                .env
                .iter()
                .flatten()
                .any(|e| e.name == "POD_NAMESPACE")),
            "--tls-secret needs POD_NAMESPACE"
        );
        assert!(
            ipamd
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| Path::new(&m.mount_path)
                    == Path::new(podroute_proto::IPAMD_SOCKET).parent().unwrap())
        );
        let store_volume = pod.volumes.iter().flatten().find(|v| v.name == "store");
        if build.name == "overlays/etcd" {
            assert_eq!(flag_value(&line, "--store"), Some("etcd"));
            assert_eq!(spec.replicas, Some(3));
            let strategy = spec.strategy.as_ref().unwrap();
            assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
            assert!(
                pod.affinity
                    .as_ref()
                    .and_then(|a| a.pod_anti_affinity.as_ref())
                    .is_some()
            );
            assert!(store_volume.is_none(), "no hostPath store with etcd");
            assert!(!line.iter().any(|w| w == "--data-dir"));
        } else {
            // The embedded store: one file on one node, one writer.
            assert_eq!(flag_value(&line, "--store"), Some("embedded"));
            assert_eq!(spec.replicas, Some(1));
            assert_eq!(
                spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
                Some("Recreate")
            );
            let data_dir = flag_value(&line, "--data-dir").unwrap();
            let host = store_volume.and_then(|v| v.host_path.as_ref()).unwrap();
            assert_eq!(host.path, data_dir);
            let store_owner = command_line(
                build,
                index,
                &workload,
                pod.init_containers
                    .iter()
                    .flatten()
                    .find(|c| c.name == "store-owner")
                    .unwrap(),
            )
            .unwrap();
            let owner = format!("{IMAGE_UID}:{IMAGE_UID}");
            assert_eq!(store_owner, ["chown", owner.as_str(), data_dir]);
        }
    }
}

#[test]
fn uninstall_removes_what_install_leaves() {
    let install = build("deploy/podroute.yaml");
    let uninstall = build("deploy/uninstall.yaml");
    let (index, cleanup) = uninstall
        .workloads()
        .find(|(_, w)| w.name == "podroute-cleanup")
        .unwrap();
    let line = |name: &str| {
        let c = containers(cleanup.spec).find(|c| c.name == name).unwrap();
        command_line(&uninstall, index, &cleanup, c).unwrap()
    };
    let removed = line("files");
    assert_eq!(&removed[..2], ["rm", "-rf"]);
    let (i, node) = install
        .workloads()
        .find(|(_, w)| w.name == "podroute-node")
        .unwrap();
    let cni = command_line(
        &install,
        i,
        &node,
        containers(node.spec)
            .find(|c| c.name == "install-cni")
            .unwrap(),
    )
    .unwrap();
    let tls_dir = Path::new(flag_value(&cni, "--tls-ca").unwrap())
        .parent()
        .unwrap()
        .to_owned();
    let ipamd = build("deploy/podroute.yaml");
    let (j, ipamd_w) = ipamd
        .workloads()
        .find(|(_, w)| w.name == "podroute-ipamd")
        .unwrap();
    let ipamd_line = command_line(
        &ipamd,
        j,
        &ipamd_w,
        ipamd_w
            .spec
            .containers
            .iter()
            .find(|c| c.name == "ipamd")
            .unwrap(),
    )
    .unwrap();
    let expected = [
        format!("/host/opt/cni/bin/{}", podroute_cni::install::BINARY_NAME),
        format!(
            "/host/etc/cni/net.d/{}",
            podroute_cni::install::CONFLIST_NAME
        ),
        format!("/host{}", tls_dir.display()),
        format!(
            "/host{}",
            Path::new(podroute_proto::BGPD_SOCKET)
                .parent()
                .unwrap()
                .display()
        ),
        format!("/host{}", flag_value(&ipamd_line, "--data-dir").unwrap()),
    ];
    assert_eq!(removed[2..], expected);
    // What the install gave to another user than root (ipamd's store
    // folder) root can empty only with DAC_OVERRIDE.
    let store_owner = command_line(
        &ipamd,
        j,
        &ipamd_w,
        containers(ipamd_w.spec)
            .find(|c| c.name == "store-owner")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(store_owner[0], "chown");
    assert!(!store_owner[1].starts_with("0:"), "{store_owner:?}");
    assert!(
        removed.contains(&format!("/host{}", store_owner[2])),
        "{store_owner:?}"
    );
    let files = containers(cleanup.spec)
        .find(|c| c.name == "files")
        .unwrap();
    let added = files
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|c| c.add.clone())
        .unwrap_or_default();
    assert!(
        added.iter().any(|c| c == "DAC_OVERRIDE"),
        "the cleanup's files step removes {} (chowned to {}) as root without DAC_OVERRIDE: rm fails",
        store_owner[2],
        store_owner[1]
    );
    assert_eq!(line("routes")[..2], ["podroute-bgpd", "--cleanup"]);
    assert_eq!(line("policy"), ["podroute-policy-agent", "--cleanup"]);
    // The cleanup's bgpd configuration loads (its kernelTable is all the
    // cleanup reads).
    let config = uninstall
        .config_map("podroute-cleanup")
        .unwrap()
        .data
        .clone()
        .unwrap();
    let loaded =
        podroute_bgpd::config::parse(&config["bgpd.yaml"], "podroute-cleanup bgpd.yaml", |_| {
            Err(std::io::Error::other("no files"))
        })
        .unwrap();
    assert_eq!(
        loaded.bgp.kernel_table,
        podroute_bgpd::config::DEFAULT_KERNEL_TABLE
    );
}
