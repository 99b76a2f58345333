//! `--web-config FILE`: TLS and basic auth for the HTTP endpoint, in the format of the
//! Prometheus exporter toolkit's `web-config.yml`, so a fleet reuses the files (and bcrypt
//! hashes, made with `htpasswd -nBC 10 ""` or any bcrypt tool) it has for node_exporter:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: /etc/netmon/cert.pem
//!   key_file: /etc/netmon/key.pem
//! basic_auth_users:
//!   prometheus: $2y$10$...
//! ```
use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde::Deserialize;
use tokio_rustls::rustls;

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("reading --web-config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--web-config {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    tls_server_config: Option<TlsFormat>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFormat {
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// What the endpoint enforces.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Option<Arc<BasicAuth>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("auth", &self.auth.is_some())
            .finish()
    }
}

impl WebConfig {
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// `path` names the file in errors; relative cert/key paths are relative to its directory.
    pub fn parse(text: &str, path: &Path) -> Result<WebConfig, WebConfigError> {
        let invalid = |reason: String| WebConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let f: FileFormat = serde_yaml_ng::from_str(text)
            .map_err(|e| invalid(e.to_string().lines().next().unwrap_or("").to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = match f.tls_server_config {
            Some(t) => Some(Arc::new(
                server_config(&base.join(&t.cert_file), &base.join(&t.key_file))
                    .map_err(invalid)?,
            )),
            None => None,
        };
        for (user, hash) in &f.basic_auth_users {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(invalid(format!(
                    "basic_auth_users: the password of {user:?} must be a bcrypt hash ($2y$...), \
                     e.g. from `htpasswd -nBC 10 {user}`"
                )));
            }
        }
        let auth = (!f.basic_auth_users.is_empty()).then(|| {
            Arc::new(BasicAuth {
                users: f.basic_auth_users,
                verified: Mutex::new(HashMap::new()),
            })
        });
        Ok(WebConfig { tls, auth })
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cert_file {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert_file {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "cert_file {}: no PEM certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "key_file {}: no usable PEM private key ({e})",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("cert_file and key_file do not form a usable pair: {e}"))
}

/// Users and their bcrypt hashes. bcrypt is slow on purpose (tens of ms), so a credential that
/// verified once is remembered (bounded) instead of costing every scrape that much CPU.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashMap<String, bool>>,
}

const MAX_REMEMBERED: usize = 256;

impl BasicAuth {
    /// Whether an `Authorization` header value carries a valid user and password.
    pub fn check(&self, header: Option<&str>) -> bool {
        let Some(value) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            return false;
        };
        if let Some(&ok) = self
            .verified
            .lock()
            .ok()
            .and_then(|m| m.get(value).copied())
            .as_ref()
        {
            return ok;
        }
        use base64::Engine;
        let Some(decoded) = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        let ok = match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => false,
        };
        if let Ok(mut m) = self.verified.lock() {
            if m.len() >= MAX_REMEMBERED {
                m.clear();
            }
            m.insert(value.to_string(), ok);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebConfig, String> {
        WebConfig::parse(text, Path::new("/etc/netmon/web.yml")).map_err(|e| e.to_string())
    }

    fn header(user: &str, password: &str) -> String {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[test]
    fn basic_auth_accepts_only_the_right_password() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let cfg = parse(&format!("basic_auth_users:\n  prom: {hash}\n")).unwrap();
        let auth = cfg.auth.unwrap();
        assert!(auth.check(Some(&header("prom", "s3cret"))));
        // Remembered, and still right.
        assert!(auth.check(Some(&header("prom", "s3cret"))));
        assert!(!auth.check(Some(&header("prom", "wrong"))));
        assert!(!auth.check(Some(&header("alice", "s3cret"))));
        assert!(!auth.check(Some("Basic !!!notbase64")));
        assert!(!auth.check(Some("Bearer abc")));
        assert!(!auth.check(None));
        assert!(cfg.tls.is_none());
    }

    #[test]
    fn bad_files_say_what_is_wrong_in_one_line() {
        let cases = [
            (
                "basic_auth_users:\n  prom: plaintext\n",
                "must be a bcrypt hash",
            ),
            (
                "tls_server_config:\n  cert_file: /nonexistent/c.pem\n  key_file: k.pem\n",
                "cert_file /nonexistent/c.pem",
            ),
            ("unknown_key: 1\n", "unknown field"),
            (
                "tls_server_config: [1, 2\n",
                "--web-config /etc/netmon/web.yml",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let e = WebConfig::load(Path::new("/nonexistent/web.yml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("reading --web-config /nonexistent/web.yml"),
            "{e}"
        );
    }

    #[test]
    fn an_empty_file_enforces_nothing() {
        let cfg = parse("{}\n").unwrap();
        assert!(cfg.tls.is_none() && cfg.auth.is_none());
    }
}
