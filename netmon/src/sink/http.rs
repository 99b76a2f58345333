//! The scrape endpoint: `/metrics` (Prometheus text), `/healthz`, `/api/v1/processes` (JSON),
//! served from the latest snapshot the app publishes. Reading never blocks the event pipeline:
//! handlers only clone an `Arc` out of a watch channel.
use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch};

use super::web_config::{BasicAuth, WebConfig};
use crate::aggregate::Snapshot;

/// A client that opens a connection and never finishes the TLS handshake is dropped after this.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the endpoint serves until the next interval: the snapshot and its metrics text,
/// rendered once per interval however many scrapers there are.
#[derive(Debug)]
pub struct Published {
    pub snapshot: Snapshot,
    pub metrics: Result<String, String>,
}

/// The port README documents; loopback only unless the user says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9742";

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "address {addr} is already in use (--listen): stop the other listener or pick another port"
    )]
    InUse { addr: SocketAddr },
    #[error("cannot listen on {addr} (--listen)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds now, so a taken port is reported before anything else starts.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            HttpError::InUse { addr }
        } else {
            HttpError::Bind { addr, source }
        }
    })
}

/// Serves until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    published: watch::Receiver<Arc<Published>>,
    web: WebConfig,
) {
    let tls = web.tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let published = published.clone();
        let auth = web.auth.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let p = published.borrow().clone();
                let auth = auth.clone();
                async move { Ok::<_, Infallible>(handle(req, p, auth).await) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            let r = match tls {
                None => http.serve_connection(TokioIo::new(stream), svc).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => http.serve_connection(TokioIo::new(s), svc).await,
                        Ok(Err(e)) => {
                            log::debug!("TLS handshake with {peer}: {e}");
                            return;
                        }
                        Err(_) => {
                            log::debug!("TLS handshake with {peer} timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = r {
                log::debug!("http connection: {e}");
            }
        });
    }
}

/// Checks basic auth (bcrypt on the blocking pool, so a slow hash never stalls the event
/// pipeline), then answers.
async fn handle(
    req: Request<Incoming>,
    p: Arc<Published>,
    auth: Option<Arc<BasicAuth>>,
) -> Response<Full<Bytes>> {
    if let Some(auth) = auth {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let ok = tokio::task::spawn_blocking(move || auth.check(header.as_deref()))
            .await
            .unwrap_or(false);
        if !ok {
            let mut resp = Response::new(Full::new(Bytes::from_static(b"unauthorized\n")));
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"netmon\""),
            );
            return resp;
        }
    }
    respond(&req, &p)
}

/// Blanks every process's command line. A command line can hold secrets (tokens, passwords
/// given as arguments), and the endpoint shows them to anyone who reaches its port, even where
/// /proc is mounted with hidepid and local users cannot see each other's processes.
pub fn hide_cmdlines(s: &mut Snapshot) {
    for p in &mut s.processes {
        p.cmdline.clear();
    }
}

fn respond(req: &Request<Incoming>, p: &Published) -> Response<Full<Bytes>> {
    let snap = &p.snapshot;
    let (status, ctype, body) = match req.uri().path() {
        "/metrics" => match &p.metrics {
            Ok(text) => (StatusCode::OK, "text/plain; version=0.0.4", text.clone()),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("rendering metrics: {e}\n"),
            ),
        },
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/api/v1/processes" => (
            StatusCode::OK,
            "application/json",
            serde_json::to_string(&snap.processes).unwrap_or_else(|_| "[]".into()),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /healthz or /api/v1/processes\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}
