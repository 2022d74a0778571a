// Shared by the interop tests (frr.rs, bird.rs, gobgp.rs): podroute-bgpd
// started inside a lab node's namespace with a generated configuration, a
// blocking client for its admin API (gRPC on its Unix socket), polling with
// the last value seen in the failure message, and freezing a router's daemon.
// Needs root, as the labs do.

#![allow(dead_code)]
// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt::{Debug, Write as _};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use podroute_lab::{Lab, netns};
use podroute_proto::admin_socket::connect_unix;
use podroute_proto::bgpd::v1::bgp_admin_client::BgpAdminClient;
use podroute_proto::bgpd::v1::{
    BgpStatus, GetPeerRequest, ListPeersRequest, ListRoutesRequest, Peer, Route, RouteDirection,
    SessionState,
};
use podroute_proto::common::v1::{AddressFamily, GetStatusRequest};
use podroute_proto::metrics::Scrape;
use tonic::transport::Channel;

/// The daemon under test, built by cargo for these tests.
pub const BGPD: &str = env!("CARGO_BIN_EXE_podroute-bgpd");
/// Sessions up and routes exchanged: seconds on this machine, a generous
/// bound for two busy cores.
pub const CONVERGE: Duration = Duration::from_secs(30);
/// How long podroute-bgpd gets to answer on its admin socket.
const START: Duration = Duration::from_secs(10);
/// One admin call; a daemon that hangs fails the test instead of hanging it.
const CALL: Duration = Duration::from_secs(5);
/// Log lines shown when a test fails.
const LOG_TAIL: usize = 80;
/// Where a failing test leaves each daemon's whole log and configuration.
const KEPT_LOGS: &str = "/tmp/bgpd-interop-logs";

/// A `BGPConfiguration` and its `BGPPeer`s, rendered as the YAML documents
/// podroute-bgpd reads with `--config`.
#[derive(Debug, Clone)]
pub struct Speaker {
    pub asn: u32,
    pub router_id: &'static str,
    pub originate: Vec<&'static str>,
    pub peers: Vec<PeerConf>,
    /// More lines for the BGPConfiguration's spec, indented two spaces.
    pub extra: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PeerConf {
    pub name: &'static str,
    pub peer_ip: &'static str,
    pub asn: u32,
    pub password: Option<&'static str>,
    pub hold_time: Option<u32>,
    pub keepalive_time: Option<u32>,
    /// Empty: podroute's default, the family of `peer_ip`.
    pub families: Vec<&'static str>,
    /// More lines for the BGPPeer's spec, indented two spaces.
    pub extra: Vec<String>,
}

impl PeerConf {
    pub fn new(name: &'static str, peer_ip: &'static str, asn: u32) -> PeerConf {
        PeerConf {
            name,
            peer_ip,
            asn,
            password: None,
            hold_time: None,
            keepalive_time: None,
            families: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// A raw line for the spec, e.g. `importPolicy: {defaultAction: accept}`.
    pub fn spec(mut self, line: &str) -> PeerConf {
        self.extra.push(format!("  {line}"));
        self
    }

    pub fn password(mut self, password: &'static str) -> PeerConf {
        self.password = Some(password);
        self
    }

    /// Hold time 3 s, keepalive 1 s: a silent peer is noticed in 3 s.
    pub fn fast_hold(mut self) -> PeerConf {
        self.hold_time = Some(3);
        self.keepalive_time = Some(1);
        self
    }

    pub fn families(mut self, families: &[&'static str]) -> PeerConf {
        self.families = families.to_vec();
        self
    }
}

impl Speaker {
    pub fn yaml(&self) -> String {
        let mut y = String::new();
        let originate: Vec<String> = self.originate.iter().map(|p| format!("{p:?}")).collect();
        writeln!(
            y,
            "apiVersion: podroute.io/v1\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec:\n  \
             asNumber: {}\n  routerID: {:?}\n  listenPort: 179\n  originate: [{}]\n  \
             holdTime: 90\n  connectRetryTime: 1",
            self.asn,
            self.router_id,
            originate.join(", ")
        )
        .unwrap();
        for line in &self.extra {
            writeln!(y, "{line}").unwrap();
        }
        for p in &self.peers {
            writeln!(
                y,
                "---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {{name: {}}}\nspec:\n  \
                 peerIP: {:?}\n  asNumber: {}",
                p.name, p.peer_ip, p.asn
            )
            .unwrap();
            if let Some(pw) = p.password {
                writeln!(y, "  password: {pw:?}").unwrap();
            }
            if let Some(h) = p.hold_time {
                writeln!(y, "  holdTime: {h}").unwrap();
            }
            if let Some(k) = p.keepalive_time {
                writeln!(y, "  keepaliveTime: {k}").unwrap();
            }
            if !p.families.is_empty() {
                writeln!(y, "  families: [{}]", p.families.join(", ")).unwrap();
            }
            for line in &p.extra {
                writeln!(y, "{line}").unwrap();
            }
        }
        y
    }
}

/// podroute-bgpd running in a lab node. Dropping it kills the daemon; when
/// the test is failing it first prints the configuration, the peers as the
/// daemon reports them and the end of its log.
pub struct Bgpd {
    pub node: String,
    lab: String,
    /// The node's network namespace.
    netns: String,
    child: RefCell<Child>,
    dir: tempfile::TempDir,
    config: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Bgpd {
    /// Starts podroute-bgpd with `speaker`'s configuration in `node` and
    /// waits until its admin API answers.
    pub fn start(lab: &Lab, node: &str, speaker: &Speaker) -> Bgpd {
        Bgpd::launch(lab, node, Some(&speaker.yaml()), None, &[], true)
    }

    /// As `start`, with more command line arguments (e.g. `--ipamd`).
    pub fn start_with_args(lab: &Lab, node: &str, speaker: &Speaker, extra: &[&str]) -> Bgpd {
        Bgpd::launch(lab, node, Some(&speaker.yaml()), None, extra, true)
    }

    /// As `start_with_args`, without waiting for the admin API (it answers
    /// only once the speaker runs): for watching the start itself.
    pub fn spawn_with_args(lab: &Lab, node: &str, speaker: &Speaker, extra: &[&str]) -> Bgpd {
        Bgpd::launch(lab, node, Some(&speaker.yaml()), None, extra, false)
    }

    /// Starts podroute-bgpd with configuration `yaml` and more command
    /// line arguments (e.g. `--node NAME`).
    pub fn start_yaml(lab: &Lab, node: &str, yaml: &str, args: &[&str]) -> Bgpd {
        Bgpd::launch(lab, node, Some(yaml), None, args, true)
    }

    /// Starts podroute-bgpd in `node` on the configuration file `config`
    /// (shared by several nodes, as a cluster's is) with more arguments
    /// (`--node`, `--ipamd`), and waits until its admin API answers.
    pub fn start_file(lab: &Lab, node: &str, config: &str, args: &[&str]) -> Bgpd {
        Bgpd::launch(lab, node, None, Some(Path::new(config)), args, true)
    }

    fn launch(
        lab: &Lab,
        node: &str,
        yaml: Option<&str>,
        shared: Option<&Path>,
        args: &[&str],
        wait: bool,
    ) -> Bgpd {
        let dir = tempfile::Builder::new()
            .prefix("bgpd-interop")
            .tempdir()
            .unwrap();
        let config = match shared {
            Some(path) => path.to_owned(),
            None => dir.path().join("bgpd.yaml"),
        };
        if let Some(yaml) = yaml {
            fs::write(&config, yaml).unwrap();
        }
        let socket = dir.path().join("bgpd.sock");
        let log = dir.path().join("bgpd.log");
        let out = fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut argv = vec![
            BGPD,
            "--config",
            path_str(&config),
            "--admin-socket",
            path_str(&socket),
            "--log-level",
            "debug,h2=info,hyper=info,hyper_util=info,tower=info,tonic=info",
        ];
        argv.extend_from_slice(args);
        let mut cmd = lab.command(node, &argv).unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {BGPD} in {node}: {e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bgpd = Bgpd {
            node: node.to_string(),
            lab: lab.name().to_string(),
            netns: lab.netns(node).unwrap(),
            child: RefCell::new(child),
            dir,
            config,
            socket,
            log,
            rt,
        };
        if !wait {
            return bgpd;
        }
        let what = format!(
            "podroute-bgpd in {node} to answer on {}",
            bgpd.socket.display()
        );
        let up = lab.wait_for(START, &what, |_| {
            if let Some(status) = bgpd.exited() {
                panic!("podroute-bgpd in {node} exited ({status}) while starting");
            }
            bgpd.peers().is_ok()
        });
        if let Err(e) = up {
            panic!("{e}");
        }
        bgpd
    }

    /// Writes a new configuration and tells the daemon (SIGHUP).
    pub fn reload(&self, speaker: &Speaker) {
        self.reload_text(&speaker.yaml());
    }

    /// Writes `text` (valid or not) as the configuration and sends SIGHUP.
    pub fn reload_text(&self, text: &str) {
        fs::write(&self.config, text).unwrap();
        let pid = self.child.borrow().id().to_string();
        let sent = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(sent.success(), "kill -HUP {pid}");
    }

    /// Stops the daemon with SIGTERM, as an init system does, and waits for
    /// it to exit.
    pub fn terminate(&self) -> std::process::ExitStatus {
        let pid = self.child.borrow().id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        self.child.borrow_mut().wait().unwrap()
    }

    /// Kills the daemon with SIGKILL (a crash: it cleans nothing up) and
    /// waits for it.
    pub fn kill(&self) {
        let mut child = self.child.borrow_mut();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The exit status, if the daemon has stopped.
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child.borrow_mut().try_wait().ok().flatten()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The admin API's GetStatus.
    pub fn status(&self) -> Result<BgpStatus, String> {
        self.call(async |mut c: BgpAdminClient<Channel>| {
            c.get_status(GetStatusRequest {})
                .await
                .map(|r| r.into_inner())
        })
    }

    /// GET `path` on the daemon's metrics port (as GetStatus reports it),
    /// from inside the daemon's network namespace: (status code, body).
    pub fn http(&self, path: &str) -> Result<(u16, String), String> {
        let status = self.status()?;
        let health = status.health.ok_or("GetStatus without health")?;
        let address: std::net::SocketAddr = health
            .metrics_address
            .parse()
            .map_err(|e| format!("metrics address {:?}: {e}", health.metrics_address))?;
        self.http_at(address, path)
    }

    /// GET `path` on `address` from inside the daemon's network namespace,
    /// without asking GetStatus where the port is (before the admin API
    /// answers).
    pub fn http_at(
        &self,
        address: std::net::SocketAddr,
        path: &str,
    ) -> Result<(u16, String), String> {
        let netns = Path::new("/run/netns").join(&self.netns);
        podroute_bgpd::fib::in_netns(Some(&netns), || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                tokio::time::timeout(CALL, podroute_proto::observe::http_get(address, path))
                    .await
                    .unwrap_or_else(|_| Err(std::io::Error::other("no answer in time")))
            })
        })
        .map_err(|e| format!("GET {path} on {address} in {}: {e}", self.netns))
    }

    /// /metrics, parsed strictly (every sample under a TYPE, valid names
    /// and values); a scrape that does not parse fails the test.
    pub fn scrape(&self) -> Scrape {
        let (code, body) = self.http("/metrics").unwrap();
        assert_eq!(code, 200, "/metrics answered {code}: {body}");
        podroute_proto::metrics::parse(&body).unwrap_or_else(|e| {
            panic!(
                "{}: /metrics does not parse: {e}
{body}",
                self.node
            )
        })
    }

    pub fn peers(&self) -> Result<Vec<Peer>, String> {
        self.call(async |mut c: BgpAdminClient<Channel>| {
            c.list_peers(ListPeersRequest {})
                .await
                .map(|r| r.into_inner().peers)
        })
    }

    pub fn peer(&self, address: &str) -> Result<Peer, String> {
        let address = address.to_string();
        self.call(async move |mut c: BgpAdminClient<Channel>| {
            c.get_peer(GetPeerRequest { address })
                .await
                .map(|r| r.into_inner())
        })
    }

    /// A peer's Adj-RIB-In (`Received`) or Adj-RIB-Out (`Advertised`).
    /// The Loc-RIB's prefixes whose selected route the kernel refused or
    /// another program's route shadows (`kernel_problems`).
    pub fn kernel_problems(&self) -> Result<Vec<Route>, String> {
        self.call(async move |mut c: BgpAdminClient<Channel>| {
            c.list_routes(ListRoutesRequest {
                kernel_problems: true,
                ..ListRoutesRequest::default()
            })
            .await
            .map(|r| r.into_inner().routes)
        })
    }

    pub fn routes(
        &self,
        peer: &str,
        direction: RouteDirection,
        family: AddressFamily,
    ) -> Result<Vec<Route>, String> {
        let peer = peer.to_string();
        self.call(async move |mut c: BgpAdminClient<Channel>| {
            c.list_routes(ListRoutesRequest {
                family: family as i32,
                peer,
                direction: direction as i32,
                ..ListRoutesRequest::default()
            })
            .await
            .map(|r| r.into_inner().routes)
        })
    }

    /// `prefix` as received from `peer`, if it is in that Adj-RIB-In.
    pub fn received(&self, peer: &str, prefix: &str) -> Result<Option<Route>, String> {
        let routes = self.routes(peer, RouteDirection::Received, family_of(prefix))?;
        Ok(routes.into_iter().find(|r| r.prefix == prefix))
    }

    /// `prefix` as advertised to `peer`, if it is in that Adj-RIB-Out.
    pub fn advertised(&self, peer: &str, prefix: &str) -> Result<Option<Route>, String> {
        let routes = self.routes(peer, RouteDirection::Advertised, family_of(prefix))?;
        Ok(routes.into_iter().find(|r| r.prefix == prefix))
    }

    pub fn is_established(&self, peer: &str) -> bool {
        self.peer(peer).is_ok_and(|p| established(&p))
    }

    /// Polls until the session with `peer` is Established; returns the peer.
    pub fn wait_established(&self, lab: &Lab, peer: &str) -> Peer {
        let what = format!("{}: session with {peer} Established", self.node);
        wait_seen(
            lab,
            CONVERGE,
            &what,
            |_| self.peer(peer),
            |p| p.as_ref().is_ok_and(established),
        )
        .unwrap()
    }

    /// Polls until `prefix` is in `peer`'s Adj-RIB-In; returns the route.
    pub fn wait_received(&self, lab: &Lab, peer: &str, prefix: &str) -> Route {
        let what = format!("{}: {prefix} received from {peer}", self.node);
        wait_seen(
            lab,
            CONVERGE,
            &what,
            |_| self.received(peer, prefix),
            |r| matches!(r, Ok(Some(_))),
        )
        .unwrap()
        .unwrap()
    }

    /// Checks for `window` that the session with `peer` never reaches
    /// Established (nor has since the daemon started).
    pub fn assert_never_established(&self, peer: &str, window: Duration) {
        let deadline = Instant::now() + window;
        loop {
            let p = self.peer(peer);
            let ok = p.as_ref().is_ok_and(|p| {
                !established(p) && p.established_transitions == 0 && p.uptime_seconds == 0
            });
            assert!(
                ok,
                "{}: the session with {peer} must never be Established: {p:#?}",
                self.node
            );
            if Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn call<T>(
        &self,
        f: impl AsyncFnOnce(BgpAdminClient<Channel>) -> Result<T, tonic::Status>,
    ) -> Result<T, String> {
        let socket = self.socket.clone();
        self.rt.block_on(async move {
            let work = async move {
                let channel = connect_unix(&socket).await.map_err(|e| e.to_string())?;
                f(BgpAdminClient::new(channel))
                    .await
                    .map_err(|s| format!("{}: {}", s.code(), s.message()))
            };
            tokio::time::timeout(CALL, work)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {CALL:?}")))
        })
    }
}

impl Drop for Bgpd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let config = fs::read_to_string(&self.config).unwrap_or_default();
            let peers = match self.exited() {
                Some(status) => format!("(daemon exited: {status})"),
                None => format!("{:#?}", self.peers()),
            };
            // The tempdir goes with the guard: keep the whole log.
            let kept = Path::new(KEPT_LOGS).join(format!("{}-{}.log", self.lab, self.node));
            let _ = fs::create_dir_all(KEPT_LOGS);
            let _ = fs::copy(&self.log, &kept);
            let _ = fs::write(kept.with_extension("yaml"), &config);
            eprintln!(
                "==== podroute-bgpd in node {}: configuration ====\n{config}\n\
                 ==== peers ====\n{peers}\n\
                 ==== last {LOG_TAIL} lines of its log (all of it: {}) ====\n{}\n\
                 ==== end of {} ====",
                self.node,
                kept.display(),
                self.log_tail(LOG_TAIL),
                self.node,
            );
        }
        let mut child = self.child.borrow_mut();
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn family_of(prefix: &str) -> AddressFamily {
    if prefix.contains(':') {
        AddressFamily::Ipv6
    } else {
        AddressFamily::Ipv4
    }
}

pub fn established(peer: &Peer) -> bool {
    peer.state == SessionState::Established as i32
}

/// The state's name, for messages.
pub fn state_name(peer: &Peer) -> &'static str {
    SessionState::try_from(peer.state).map_or("(unknown)", |s| s.as_str_name())
}

/// AS numbers of a route's AS_PATH, segments flattened.
pub fn as_path(route: &Route) -> Vec<u32> {
    route
        .as_path
        .iter()
        .flat_map(|s| s.asns.iter().copied())
        .collect()
}

/// Polls `probe` until `done` holds for what it returns or `timeout` passes,
/// and returns that value; on timeout, panics showing the last value seen.
pub fn wait_seen<T: Debug>(
    lab: &Lab,
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut(&Lab) -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let mut last = None;
    let outcome = lab.wait_for(timeout, what, |lab| {
        let value = probe(lab);
        let ok = done(&value);
        last = Some(value);
        ok
    });
    match (outcome, last) {
        (Ok(()), Some(value)) => value,
        (Err(e), Some(value)) => panic!("{e}\nlast seen: {value:#?}"),
        (Err(e), None) => panic!("{e}"),
        (Ok(()), None) => unreachable!("wait_for returned without asking"),
    }
}

/// Stops a router's daemon with SIGSTOP: its TCP connections stay open but
/// it says nothing more. Dropping the guard resumes it (SIGCONT), so the lab
/// can be torn down.
pub struct Frozen {
    pids: Vec<u32>,
}

impl Frozen {
    /// Freezes every process called `comm` (as in /proc/PID/comm) in
    /// `node`'s namespace: only that lab's daemon, never another lab's.
    pub fn freeze(lab: &Lab, node: &str, comm: &str) -> Frozen {
        let ns = lab.netns(node).unwrap();
        let pids: Vec<u32> = netns::pids(&ns)
            .unwrap()
            .into_iter()
            .filter(|pid| {
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
            })
            .collect();
        assert!(!pids.is_empty(), "no process {comm} in {ns}");
        signal("-STOP", &pids);
        Frozen { pids }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("-CONT", &self.pids);
    }
}

fn signal(sig: &str, pids: &[u32]) {
    let status = Command::new("kill")
        .arg(sig)
        .args(pids.iter().map(u32::to_string))
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("kill {sig} {pids:?} failed");
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs its closure when dropped while the test is failing: how a test shows
/// the router's side of a failure next to podroute-bgpd's.
pub struct OnFailure<F: Fn()>(pub F);

impl<F: Fn()> Drop for OnFailure<F> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            (self.0)();
        }
    }
}

/// The last `lines` lines of a file in `node`'s state folder (a router's
/// log), or why there are none.
pub fn state_file_tail(lab: &Lab, node: &str, file: &str, lines: usize) -> String {
    let path = lab.runtime(node).unwrap().state_dir.join(file);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}

/// `ping -i 0.01` from one pod to the other; killed on drop.
pub struct Pinger {
    child: Child,
    reader: Option<JoinHandle<BTreeSet<u32>>>,
}

impl Pinger {
    pub fn start(lab: &Lab, from: &str, to: &str) -> Pinger {
        let cmd = lab
            .command(from, &["ping", "-n", "-i", "0.01", to])
            .unwrap();
        Pinger::spawn(cmd)
    }

    /// As `start`, from network namespace `netns` (a pod's).
    pub fn start_in(netns: &str, to: &str) -> Pinger {
        Pinger::spawn(podroute_lab::netns::command_in(
            netns,
            &["ping", "-n", "-i", "0.01", to],
        ))
    }

    fn spawn(mut cmd: Command) -> Pinger {
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut seqs = BTreeSet::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(seq) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("icmp_seq="))
                    .and_then(|s| s.parse::<u32>().ok())
                    && line.contains("bytes from")
                {
                    seqs.insert(seq);
                }
            }
            seqs
        });
        Pinger {
            child,
            reader: Some(reader),
        }
    }

    /// Stops pinging; (lost, answered): a request counts as lost when a
    /// later one was answered and it was not (the requests still in flight
    /// when ping stops are not counted either way).
    pub fn finish(mut self) -> (u64, u64) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let seqs = self.reader.take().unwrap().join().unwrap();
        let first = seqs.first().copied().unwrap_or(0);
        let last = seqs.last().copied().unwrap_or(0);
        let expected = if seqs.is_empty() {
            0
        } else {
            u64::from(last - first + 1)
        };
        (expected - seqs.len() as u64, seqs.len() as u64)
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every route of ours in `node`'s main table (`ip -j route show proto
/// podroute`, with `family` such as "-4" or "-6"), as iproute2's JSON.
pub fn kernel_routes(lab: &Lab, node: &str, family: &str) -> Vec<serde_json::Value> {
    let out = lab
        .exec(
            node,
            &[
                "ip", "-j", family, "route", "show", "table", "main", "proto", "podroute",
            ],
        )
        .unwrap();
    match serde_json::from_str(out.trim()) {
        Ok(serde_json::Value::Array(routes)) => routes,
        _ => Vec::new(),
    }
}
