//! `--alertmanager URL`: each event as an Alertmanager alert (`POST URL/api/v2/alerts`), over
//! a plain HTTP/1.1 connection per batch (no client library: one small request).
//!
//! A failing Alertmanager never stops the viewer: alerts wait in a bounded queue (dropped and
//! counted past it), each POST has a timeout, failures are counted and the first one warned.
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Result, anyhow, bail};
use serde::Serialize;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};

use crate::fleet::FleetEvent;
use crate::history::when::format_rfc3339;

/// An Alertmanager's address: `http://HOST:PORT[/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmUrl {
    /// HOST:PORT as connected to (and sent as Host).
    pub authority: String,
    /// The path before `/api/v2/alerts`, without a trailing slash ("" or "/am").
    pub prefix: String,
}

pub fn parse_url(s: &str) -> Result<AmUrl, String> {
    let rest = s.trim().strip_prefix("http://").ok_or_else(|| {
        "must start with http:// (https is not supported: put a local proxy in front)".to_string()
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err("must be http://HOST[:PORT][/PATH]".into());
    }
    let authority = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok(AmUrl {
        authority,
        prefix: path.trim_end_matches('/').to_string(),
    })
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Alert {
    pub labels: std::collections::BTreeMap<String, String>,
    pub annotations: std::collections::BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

/// An event as alerts: `alertname=netmon_<kind>` (dashes as underscores) with `host`, `site`,
/// `kind` and `comm` (when known) as labels and the summary as annotation. `agent-up` also
/// resolves the host's `netmon_agent_down` (the same labels, ended now).
pub fn alerts_of(ev: &FleetEvent) -> Vec<Alert> {
    let labels = |kind: &str| {
        let mut l = std::collections::BTreeMap::new();
        l.insert(
            "alertname".to_string(),
            format!("netmon_{}", kind.replace(['-', '.', ' '], "_")),
        );
        l.insert("host".to_string(), ev.host.clone());
        l.insert("site".to_string(), ev.site.clone());
        l.insert("kind".to_string(), kind.to_string());
        if let Some(c) = ev.comm.as_deref().filter(|c| !c.is_empty()) {
            l.insert("comm".to_string(), c.to_string());
        }
        l
    };
    let at = format_rfc3339(ev.at_ms);
    let mut out = vec![Alert {
        labels: labels(&ev.kind),
        annotations: [("summary".to_string(), ev.summary.clone())].into(),
        starts_at: at.clone(),
        ends_at: None,
    }];
    if ev.kind == "agent-up" {
        out.push(Alert {
            labels: labels("agent-down"),
            annotations: [("summary".to_string(), ev.summary.clone())].into(),
            starts_at: at.clone(),
            ends_at: Some(at),
        });
    }
    out
}

/// POSTs `body` to `URL/api/v2/alerts`; Ok on a 2xx answer.
pub async fn post(url: &AmUrl, body: &[u8], timeout: Duration) -> Result<()> {
    let go = async {
        let mut s = TcpStream::connect(&url.authority).await?;
        let head = format!(
            "POST {}/api/v2/alerts HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\nUser-Agent: netmon/{}\r\n\r\n",
            url.prefix,
            url.authority,
            body.len(),
            env!("CARGO_PKG_VERSION")
        );
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        s.flush().await?;
        // The status line is all that matters; read a little (bounded) and close.
        let mut buf = vec![0u8; 4096];
        let mut n = 0;
        while n < buf.len() {
            let r = s.read(&mut buf[n..]).await?;
            if r == 0 || buf[..n + r].contains(&b'\n') {
                n += r;
                break;
            }
            n += r;
        }
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let answer = tokio::time::timeout(timeout, go)
        .await
        .map_err(|_| anyhow!("no answer within {}s", timeout.as_secs()))??;
    let status = answer.lines().next().unwrap_or("");
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if !code.starts_with('2') {
        bail!("answered {:?}", status.trim());
    }
    Ok(())
}

/// Alerts waiting to be sent.
const QUEUE: usize = 1024;
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct AlertStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

/// Sends alerts one request at a time in the background.
pub struct Sender {
    tx: Option<mpsc::Sender<Vec<Alert>>>,
    task: tokio::task::JoinHandle<()>,
    pub stats: Arc<AlertStats>,
}

impl Sender {
    /// Must run inside the viewer's runtime.
    pub fn start(url: AmUrl) -> Sender {
        let (tx, mut rx) = mpsc::channel::<Vec<Alert>>(QUEUE);
        let stats = Arc::new(AlertStats::default());
        let st = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            let mut warned = false;
            while let Some(alerts) = rx.recv().await {
                let body = serde_json::to_vec(&alerts).unwrap_or_default();
                match post(&url, &body, TIMEOUT).await {
                    Ok(()) => {
                        st.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        st.failed.fetch_add(1, Ordering::Relaxed);
                        if !warned {
                            warned = true;
                            eprintln!(
                                "netmon: alertmanager http://{}{}: {e}; going on (failures are \
                                 counted, this is the only warning)",
                                url.authority, url.prefix
                            );
                        }
                    }
                }
            }
        });
        Sender {
            tx: Some(tx),
            task,
            stats,
        }
    }

    pub fn send(&self, ev: &FleetEvent) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(alerts_of(ev)).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends what is queued (each POST bounded by its timeout, all by `grace`), then stops.
    pub async fn finish(mut self, grace: Duration) -> Arc<AlertStats> {
        self.tx = None;
        let _ = tokio::time::timeout(grace, &mut self.task).await;
        self.task.abort();
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:9093").unwrap(),
            AmUrl {
                authority: "127.0.0.1:9093".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            parse_url("http://am.example.org/alertmanager/").unwrap(),
            AmUrl {
                authority: "am.example.org:80".into(),
                prefix: "/alertmanager".into()
            }
        );
        assert_eq!(
            parse_url("http://[::1]:9093").unwrap().authority,
            "[::1]:9093"
        );
        assert_eq!(parse_url("http://[::1]").unwrap().authority, "[::1]:80");
        assert!(parse_url("https://am:9093").is_err());
        assert!(parse_url("am:9093").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn event_labels() {
        let ev = FleetEvent {
            site: "lab".into(),
            host: "pc01".into(),
            boot: String::new(),
            seq: 0,
            kind: "agent-up".into(),
            at_ms: 0,
            summary: "back".into(),
            pid: None,
            comm: None,
            detail: serde_json::Value::Null,
        };
        let a = alerts_of(&ev);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].labels["alertname"], "netmon_agent_up");
        assert_eq!(a[0].labels["host"], "pc01");
        assert_eq!(a[0].labels["kind"], "agent-up");
        assert!(!a[0].labels.contains_key("comm"));
        assert_eq!(a[0].annotations["summary"], "back");
        assert_eq!(a[1].labels["alertname"], "netmon_agent_down");
        assert_eq!(a[1].ends_at.as_deref(), Some("1970-01-01T00:00:00.000Z"));
        let v = serde_json::to_value(&a[0]).unwrap();
        assert_eq!(v["startsAt"], "1970-01-01T00:00:00.000Z");
        assert!(v.get("endsAt").is_none());
        let ev = FleetEvent {
            kind: "listen".into(),
            comm: Some("nc".into()),
            ..ev
        };
        let a = alerts_of(&ev);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].labels["comm"], "nc");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn post_reads_the_status() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = parse_url(&format!("http://{}", l.local_addr().unwrap())).unwrap();
        let server = tokio::spawn(async move {
            let mut got = Vec::new();
            for status in ["200 OK", "400 Bad Request"] {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = vec![0u8; 65536];
                let mut n = 0;
                // Head and a body of 2 bytes.
                while !String::from_utf8_lossy(&buf[..n]).ends_with("[]") {
                    n += s.read(&mut buf[n..]).await.unwrap();
                }
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                s.write_all(format!("HTTP/1.1 {status}\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
            }
            got
        });
        post(&url, b"[]", TIMEOUT).await.unwrap();
        let e = post(&url, b"[]", TIMEOUT).await.unwrap_err();
        assert!(e.to_string().contains("400"), "{e}");
        let got = server.await.unwrap();
        assert!(got[0].starts_with("POST /api/v2/alerts HTTP/1.1\r\n"));
        assert!(got[0].contains("Content-Length: 2\r\n"));
    }
}
