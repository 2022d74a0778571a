// podroute-create-defaults (deploy/create-defaults.sh) against a fake API
// server: creates what is missing, changes nothing that exists, waits for
// the CRDs, stops on any other answer; and shellcheck on it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::builds::build;
use crate::docs::deploy;

/// One request the fake API server was sent.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Serves `answer(request, how many before it for this path)` -> (status,
/// body) over plain HTTP/1.1 on 127.0.0.1 until dropped; records every
/// request.
struct FakeApi {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeApi {
    fn start(answer: impl Fn(&Request, usize) -> (u16, String) + Send + 'static) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::<Request>::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (
                    parts.next().unwrap_or("").to_owned(),
                    parts.next().unwrap_or("").to_owned(),
                );
                let mut headers = BTreeMap::new();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = header.split_once(':') {
                        headers.insert(k.trim().to_lowercase(), v.trim().to_owned());
                    }
                }
                let length: usize = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let request = Request {
                    method,
                    path,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let before = seen
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|r| r.path == request.path)
                    .count();
                let (status, body) = answer(&request, before);
                seen.lock().unwrap().push(request);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeApi { url, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// Runs deploy/create-defaults.sh on the base's defaults against `api`;
/// (success, stdout, stderr, the folder of documents).
fn create_defaults(api: &FakeApi, wait: u32) -> (bool, String, String, BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("sa");
    let defaults = dir.path().join("defaults");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::create_dir_all(&defaults).unwrap();
    std::fs::write(sa.join("token"), "sample-token").unwrap();
    std::fs::write(sa.join("ca.crt"), "not used over http").unwrap();
    let data = build("deploy/podroute.yaml")
        .config_map("podroute-defaults")
        .unwrap()
        .data
        .clone()
        .unwrap();
    for (key, text) in &data {
        std::fs::write(defaults.join(key), text).unwrap();
    }
    let out = Command::new("sh")
        .arg(deploy().join("create-defaults.sh"))
        .arg(&defaults)
        .env("PODROUTE_API", &api.url)
        .env("PODROUTE_SA_DIR", &sa)
        .env("PODROUTE_CRD_WAIT", wait.to_string())
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .output()
        .expect("sh and curl (scripts/setup.sh installs curl)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        data,
    )
}

#[test]
fn create_defaults_creates_what_is_missing_and_changes_nothing() {
    // The CRDs serve only from the second try (404 before, as right after
    // `kubectl apply`); the BGPConfiguration exists already.
    let api = FakeApi::start(|request, before| match request.path.as_str() {
        "/apis/podroute.io/v1/ippools" if before == 0 => (404, "{}".into()),
        "/apis/podroute.io/v1/ippools" => (201, "{}".into()),
        "/apis/podroute.io/v1/bgpconfigurations" => (409, r#"{"reason":"AlreadyExists"}"#.into()),
        _ => (500, "unexpected".into()),
    });
    let (ok, stdout, stderr, data) = create_defaults(&api, 30);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("ippools.default.yaml: created"), "{stdout}");
    assert!(
        stdout.contains("bgpconfigurations.default.yaml: exists, left as it is"),
        "{stdout}"
    );
    let requests = api.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/apis/podroute.io/v1/bgpconfigurations",
            "/apis/podroute.io/v1/ippools",
            "/apis/podroute.io/v1/ippools",
        ]
    );
    for request in &requests {
        // Create only: never a PUT or PATCH of what exists.
        assert_eq!(request.method, "POST");
        assert_eq!(request.headers["authorization"], "Bearer sample-token");
        assert_eq!(request.headers["content-type"], "application/yaml");
        let key = format!("{}.default.yaml", request.path.rsplit('/').next().unwrap());
        assert_eq!(request.body, data[&key]);
    }

    // Anything else stops it with the API server's words.
    let api = FakeApi::start(|_, _| (403, r#"{"message":"ippools is forbidden"}"#.into()));
    let (ok, _, stderr, _) = create_defaults(&api, 30);
    assert!(!ok);
    assert!(
        stderr.contains("HTTP 403") && stderr.contains("ippools is forbidden"),
        "{stderr}"
    );

    // CRDs that never serve: it gives up after the wait, saying why.
    let api = FakeApi::start(|_, _| (404, "{}".into()));
    let (ok, _, stderr, _) = create_defaults(&api, 2);
    assert!(!ok);
    assert!(stderr.contains("are the CRDs installed?"), "{stderr}");
}

#[test]
fn create_defaults_passes_shellcheck() {
    // Optional (CI may have no shellcheck), but never silently.
    let out = match Command::new("shellcheck")
        .args(["-s", "sh"])
        .arg(deploy().join("create-defaults.sh"))
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIPPED: deploy/create-defaults.sh was not linted: shellcheck: {e}");
            return;
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
