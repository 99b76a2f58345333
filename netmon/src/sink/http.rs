//! The scrape endpoint: `/metrics` (Prometheus text), `/healthz`, `/api/v1/processes` (JSON),
//! served from the latest snapshot the app publishes. Reading never blocks the event pipeline:
//! handlers only clone an `Arc` out of a watch channel.
use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch};

use crate::aggregate::Snapshot;

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
pub async fn serve(listener: TcpListener, published: watch::Receiver<Arc<Published>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let published = published.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let p = published.borrow().clone();
                async move { Ok::<_, Infallible>(respond(&req, &p)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                log::debug!("http connection: {e}");
            }
        });
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
