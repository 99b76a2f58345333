//! `--filter` / `--filter-file` for `netmon capture`: several filters are OR-ed; when they
//! reduce to one protocol/port/address test, the kernel evaluates it before copying.
use std::path::Path;

use netmon_common::KernelFilter;
use netmon_packet::{Filter, Packet, PacketMeta, filter::KernelFilter as Simple};

use crate::error::{AppError, Exit};

#[derive(Debug, Default)]
pub struct Filters(Vec<Filter>);

impl Filters {
    /// Expressions from the command line and filters from a file (a JSON filter or array, or
    /// one expression per line; `#` starts a comment line).
    pub fn load(exprs: &[String], file: Option<&Path>) -> Result<Filters, AppError> {
        let bad = |what: &str, e: netmon_packet::FilterError| {
            AppError::new(Exit::Usage, format!("{what}: {e}"))
        };
        let mut out = Vec::new();
        for (i, e) in exprs.iter().enumerate() {
            out.push(Filter::parse(e).map_err(|err| bad(&format!("--filter #{}", i + 1), err))?);
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                AppError::new(
                    Exit::Usage,
                    format!("reading --filter-file {}: {e}", path.display()),
                )
            })?;
            let what = format!("--filter-file {}", path.display());
            if text.trim_start().starts_with(['{', '[']) {
                out.push(Filter::parse_json(&text).map_err(|e| bad(&what, e))?);
            } else {
                for (n, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    out.push(
                        Filter::parse_expr(line)
                            .map_err(|e| bad(&format!("{what} line {}", n + 1), e))?,
                    );
                }
            }
        }
        Ok(Filters(out))
    }

    pub fn matches(&self, pkt: &Packet, meta: &PacketMeta) -> bool {
        self.0.is_empty() || self.0.iter().any(|f| f.matches(pkt, meta))
    }

    /// The kernel pre-filter: only for a single filter whose whole meaning is a simple test.
    /// The kernel's port and address tests look at either end, a superset of a source- or
    /// destination-only test, so user space still applies the full filter.
    pub fn kernel(&self) -> KernelFilter {
        let [only] = self.0.as_slice() else {
            return KernelFilter::default();
        };
        only.kernel_part().map(to_kernel).unwrap_or_default()
    }
}

fn to_kernel(k: Simple) -> KernelFilter {
    let mut out = KernelFilter {
        enabled: 1,
        ip_proto: k.protocol.unwrap_or(0),
        family: k.ip_version.unwrap_or(0),
        ..KernelFilter::default()
    };
    if let Some(p) = k.port {
        out.port = p.port;
    }
    if let Some(a) = k.addr {
        match a.net {
            ipnet::IpNet::V4(n) => {
                out.family = 4;
                out.addr[..4].copy_from_slice(&n.network().octets());
                out.prefix_len = n.prefix_len();
            }
            ipnet::IpNet::V6(n) => {
                out.family = 6;
                out.addr = n.network().octets();
                out.prefix_len = n.prefix_len();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(exprs: &[&str]) -> KernelFilter {
        let v: Vec<String> = exprs.iter().map(|s| s.to_string()).collect();
        Filters::load(&v, None).unwrap().kernel()
    }

    #[test]
    fn simple_filters_go_to_the_kernel() {
        let k = kernel(&["tcp and tcp.dport == 5000 and ip.src in 10.0.0.0/8"]);
        assert_eq!((k.enabled, k.ip_proto, k.port, k.family), (1, 6, 5000, 4));
        assert_eq!((k.addr[0], k.prefix_len), (10, 8));
        let u = kernel(&["udp"]);
        assert_eq!((u.enabled, u.ip_proto, u.port), (1, 17, 0));
    }

    #[test]
    fn anything_else_stays_in_user_space() {
        assert_eq!(kernel(&["tcp", "udp"]).enabled, 0, "two filters OR-ed");
        assert_eq!(kernel(&["pid == 10"]).enabled, 0);
        assert_eq!(kernel(&[]).enabled, 0);
    }

    #[test]
    fn bad_filters_are_one_line_usage_errors() {
        let e = Filters::load(&["tcp.dport =="].map(String::from), None).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("--filter #1: column"), "{text}");
        assert!(!text.contains('\n'));
        let e = Filters::load(&[], Some(Path::new("/nonexistent/f.json"))).unwrap_err();
        assert!(e.to_string().starts_with("reading --filter-file"), "{e}");
    }
}
