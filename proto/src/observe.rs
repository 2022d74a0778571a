// The HTTP side every daemon serves on a localhost port: Prometheus text on
// /metrics, and /livez and /readyz for the DaemonSet's probes (200 with
// "ok", or 503 with the reason in one line). What each path means is the
// daemon's own (its `Observe`); this is only the serving.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::common::v1::DaemonHealth;

/// Default metrics ports, one per daemon so they can share a host.
pub const BGPD_METRICS_PORT: u16 = 9641;
pub const IPAMD_METRICS_PORT: u16 = 9642;
pub const POLICY_METRICS_PORT: u16 = 9643;

/// Connections served at once; one beyond is closed at once. A scraper and
/// the kubelet's probes need a few; the rest is room, so that a local
/// client holding connections cannot easily crowd the probes out.
const MAX_CONNECTIONS: usize = 256;
/// How long a client has to send its request's headers: a scrape's come at
/// once, and a silent client must give its slot back soon.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// The longest a connection may stay open, idle keep-alive included.
const CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The content type of the text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a daemon answers on its HTTP port.
pub trait Observe: Send + Sync + 'static {
    /// The Prometheus text (see `metrics::Exposition`).
    fn metrics(&self) -> impl Future<Output = String> + Send;
    /// Ok when the daemon's main loops answer; Err(reason) otherwise.
    fn live(&self) -> impl Future<Output = Result<(), String>> + Send;
    /// Ok when ready as the daemon documents it; Err(reason) otherwise.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// The part of a daemon's health that is the same everywhere: when it
/// started and where its metrics are served. Shared by the admin API's
/// GetStatus and by /metrics.
#[derive(Debug)]
pub struct Uptime {
    started: Instant,
    started_unix: f64,
    metrics_address: OnceLock<SocketAddr>,
}

impl Default for Uptime {
    fn default() -> Self {
        Uptime {
            started: Instant::now(),
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            metrics_address: OnceLock::new(),
        }
    }
}

impl Uptime {
    pub fn new() -> Self {
        Self::default()
    }

    /// Seconds since the Unix epoch at start (podroute_process_start_time_seconds).
    pub fn started_unix(&self) -> f64 {
        self.started_unix
    }

    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Records the bound metrics address (once).
    pub fn set_metrics_address(&self, address: SocketAddr) {
        let _ = self.metrics_address.set(address);
    }

    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_address.get().copied()
    }

    /// The DaemonHealth message from the daemon's own live and ready answers.
    pub fn health(&self, live: Result<(), String>, ready: Result<(), String>) -> DaemonHealth {
        let reason = match (&live, &ready) {
            (Err(why), _) => why.clone(),
            (Ok(()), Err(why)) => why.clone(),
            (Ok(()), Ok(())) => String::new(),
        };
        DaemonHealth {
            live: live.is_ok(),
            ready: live.is_ok() && ready.is_ok(),
            reason,
            uptime_seconds: self.uptime_seconds(),
            metrics_address: self
                .metrics_address()
                .map(|a| a.to_string())
                .unwrap_or_default(),
        }
    }
}

/// Why the HTTP port could not be served.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen for metrics and probes on {address}: {error} (another daemon on this port? set --metrics-listen, or \"off\")"
)]
pub struct ObserveError {
    pub address: SocketAddr,
    // Named `error`, not `source`: the message already says it, and as a
    // source anyhow's `{:#}` would print it twice.
    pub error: std::io::Error,
}

/// Binds the metrics port; the daemon fails to start if it cannot (its
/// probes would fail anyway, with a less clear reason).
pub async fn bind(address: SocketAddr) -> Result<TcpListener, ObserveError> {
    TcpListener::bind(address)
        .await
        .map_err(|error| ObserveError { address, error })
}

/// Serves /metrics, /livez and /readyz on `listener` until the task is
/// aborted. Each connection is its own task; a bad request gets 404/405.
pub async fn serve<O: Observe>(listener: TcpListener, observer: Arc<O>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little
                // rather than spin.
                tracing::warn!(error = %e, "metrics port: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics port: too many connections; one closed");
            continue;
        };
        let observer = observer.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let observer = observer.clone();
                async move { Ok::<_, Infallible>(answer(&*observer, request).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "metrics port: connection ended"),
                Err(_) => tracing::debug!("metrics port: connection timed out"),
            }
            drop(slot);
        });
    }
}

/// Binds `address` and serves it in a task; records the bound address in
/// `uptime` (port 0 picks a free one).
pub async fn spawn<O: Observe>(
    address: SocketAddr,
    observer: Arc<O>,
    uptime: &Uptime,
) -> Result<tokio::task::JoinHandle<()>, ObserveError> {
    let listener = bind(address).await?;
    let bound = listener
        .local_addr()
        .map_err(|error| ObserveError { address, error })?;
    uptime.set_metrics_address(bound);
    tracing::info!(address = %bound, "serving /metrics, /livez and /readyz");
    Ok(tokio::spawn(serve(listener, observer)))
}

async fn answer<O: Observe>(observer: &O, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match request.uri().path() {
        "/metrics" => {
            let text = observer.metrics().await;
            let mut response = Response::new(Full::new(Bytes::from(text)));
            if let Ok(value) = hyper::header::HeaderValue::from_str(METRICS_CONTENT_TYPE) {
                response
                    .headers_mut()
                    .insert(hyper::header::CONTENT_TYPE, value);
            }
            response
        }
        "/livez" => probe(observer.live().await),
        "/readyz" => probe(observer.ready().await),
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /livez or /readyz\n".into(),
        ),
    }
}

fn probe(result: Result<(), String>) -> Response<Full<Bytes>> {
    match result {
        Ok(()) => plain(StatusCode::OK, "ok\n".into()),
        Err(reason) => plain(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

fn plain(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A minimal HTTP GET for tests and podctl: (status code, body). Plain
/// HTTP/1.1 over TCP to a localhost port, no redirects, no TLS.
pub async fn http_get(address: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    // hyper answers a Content-Length body here (Full), never chunked.
    Ok((code, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed {
        ready: bool,
    }

    impl Observe for Fixed {
        async fn metrics(&self) -> String {
            "# TYPE podroute_test gauge\npodroute_test 1\n".into()
        }
        async fn live(&self) -> Result<(), String> {
            Ok(())
        }
        async fn ready(&self) -> Result<(), String> {
            if self.ready {
                Ok(())
            } else {
                Err("no session established yet".into())
            }
        }
    }

    #[tokio::test]
    async fn paths_answer_as_documented() {
        let uptime = Uptime::new();
        let localhost: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let server = spawn(localhost, Arc::new(Fixed { ready: false }), &uptime)
            .await
            .expect("binds");
        let address = uptime.metrics_address().expect("recorded");
        assert_ne!(address.port(), 0);
        let (code, body) = http_get(address, "/metrics").await.expect("answers");
        assert_eq!(code, 200);
        assert!(crate::metrics::parse(&body).is_ok(), "{body}");
        assert_eq!(
            http_get(address, "/livez").await.expect("answers"),
            (200, "ok\n".into())
        );
        assert_eq!(
            http_get(address, "/readyz").await.expect("answers"),
            (503, "no session established yet\n".into())
        );
        assert_eq!(http_get(address, "/nope").await.expect("answers").0, 404);
        server.abort();
    }

    #[tokio::test]
    async fn silent_clients_cannot_take_every_slot_for_good() {
        let uptime = Uptime::new();
        let localhost: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let server = spawn(localhost, Arc::new(Fixed { ready: true }), &uptime)
            .await
            .expect("binds");
        let address = uptime.metrics_address().expect("recorded");
        let mut silent = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            silent.push(
                tokio::net::TcpStream::connect(address)
                    .await
                    .expect("connects"),
            );
        }
        // Every slot is held: the next client is closed without an answer
        // (once the server has accepted the silent ones).
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while http_get(address, "/livez").await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "never refused");
            tokio::task::yield_now().await;
        }
        // One leaves: its slot serves the next client.
        silent.pop();
        loop {
            if let Ok(answer) = http_get(address, "/livez").await {
                assert_eq!(answer, (200, "ok\n".into()));
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "slot never freed");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        server.abort();
    }

    #[tokio::test]
    async fn a_client_that_sends_nothing_is_let_go() {
        use tokio::io::AsyncReadExt;
        let uptime = Uptime::new();
        let localhost: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let server = spawn(localhost, Arc::new(Fixed { ready: true }), &uptime)
            .await
            .expect("binds");
        let address = uptime.metrics_address().expect("recorded");
        let mut silent = tokio::net::TcpStream::connect(address)
            .await
            .expect("connects");
        // The server closes it (after HEADER_TIMEOUT); a generous bound
        // only so that a broken server fails the test instead of hanging.
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(std::time::Duration::from_secs(30), silent.read(&mut byte))
            .await
            .expect("closed by the server");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        server.abort();
    }

    #[tokio::test]
    async fn a_taken_port_is_a_clear_error() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let address = taken.local_addr().expect("address");
        let error = bind(address).await.expect_err("port in use");
        assert!(error.to_string().contains("--metrics-listen"), "{error}");
    }
}
