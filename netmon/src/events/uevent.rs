//! Parser for the kernel's uevent datagrams (NETLINK_KOBJECT_UEVENT, group 1).
//!
//! Layout (lib/kobject_uevent.c): `ACTION@DEVPATH\0` then `KEY=VALUE\0` pairs, the last NUL
//! optional. udev re-broadcasts on group 2 with a binary `libudev\0` header; netmon listens to
//! the kernel's group only, and rejects such a message if one arrives anyway. A pure function
//! over bytes, so captured datagrams make the unit tests and anything malformed is an error to
//! count, never a panic.
use std::collections::BTreeMap;

/// One parsed uevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// `add`, `remove`, `change`, `bind`, `unbind`, `move`, `online`, `offline`.
    pub action: String,
    /// Path under /sys, starting with `/`.
    pub devpath: String,
    pub vars: BTreeMap<String, String>,
}

impl Uevent {
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    pub fn subsystem(&self) -> Option<&str> {
        self.var("SUBSYSTEM")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UeventError {
    #[error("empty uevent datagram")]
    Empty,
    #[error("udev's re-broadcast, not a kernel uevent")]
    Udev,
    #[error("uevent header {0:?} is not ACTION@DEVPATH")]
    Header(String),
    #[error("uevent field {0:?} is not KEY=VALUE")]
    Field(String),
    #[error("uevent is not UTF-8")]
    NotUtf8,
    #[error("uevent header says {header:?} but {key}={value:?}")]
    Mismatch {
        header: String,
        key: &'static str,
        value: String,
    },
}

/// The kernel caps a uevent at UEVENT_BUFFER_SIZE (2048) bytes; anything far larger is not one.
const MAX_LEN: usize = 8192;

pub fn parse(buf: &[u8]) -> Result<Uevent, UeventError> {
    if buf.is_empty() {
        return Err(UeventError::Empty);
    }
    if buf.starts_with(b"libudev\0") {
        return Err(UeventError::Udev);
    }
    if buf.len() > MAX_LEN {
        return Err(UeventError::Field(format!("{} bytes", buf.len())));
    }
    let text = std::str::from_utf8(buf).map_err(|_| UeventError::NotUtf8)?;
    let mut parts = text.split('\0');
    let header = parts.next().unwrap_or_default();
    let (action, devpath) = header
        .split_once('@')
        .filter(|(a, p)| {
            !a.is_empty() && a.bytes().all(|b| b.is_ascii_lowercase()) && p.starts_with('/')
        })
        .ok_or_else(|| UeventError::Header(header.chars().take(80).collect()))?;
    let mut vars = BTreeMap::new();
    for field in parts.filter(|f| !f.is_empty()) {
        let (k, v) = field
            .split_once('=')
            .filter(|(k, _)| {
                !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            })
            .ok_or_else(|| UeventError::Field(field.chars().take(80).collect()))?;
        vars.insert(k.to_string(), v.to_string());
    }
    // The header repeats ACTION and DEVPATH; disagreement means a corrupt or forged message.
    for (key, want) in [("ACTION", action), ("DEVPATH", devpath)] {
        if let Some(v) = vars.get(key).filter(|v| *v != want) {
            return Err(UeventError::Mismatch {
                header: header.to_string(),
                key,
                value: v.clone(),
            });
        }
    }
    Ok(Uevent {
        action: action.to_string(),
        devpath: devpath.to_string(),
        vars,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/uevent")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn captured_block_add() {
        let u = parse(&fixture("block_add_loop20.bin")).unwrap();
        assert_eq!(u.action, "add");
        assert_eq!(u.devpath, "/devices/virtual/block/loop20");
        assert_eq!(u.subsystem(), Some("block"));
        assert_eq!(u.var("DEVNAME"), Some("loop20"));
        assert_eq!(u.var("DEVTYPE"), Some("disk"));
        assert_eq!(u.var("MAJOR"), Some("7"));
        assert_eq!(u.var("SEQNUM"), Some("894"));
    }

    #[test]
    fn captured_set_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/uevent");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "bin") {
                let u = parse(&std::fs::read(&p).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                assert!(u.var("SEQNUM").is_some(), "{}", p.display());
                n += 1;
            }
        }
        assert!(n >= 5);
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        let cases: &[&[u8]] = &[
            b"",
            b"\0",
            b"add",
            b"@/devices/x\0",
            b"add@devices/x\0",
            b"ADD@/devices/x\0",
            b"add@/devices/x\0novalue\0",
            b"add@/devices/x\0=v\0",
            b"add@/devices/x\0lower=v\0",
            b"add@/devices/x\0ACTION=remove\0",
            b"add@/devices/x\0DEVPATH=/devices/y\0",
            b"add@/devices/\xff\0",
            b"libudev\0\xfe\xed\xca\xfe",
        ];
        for c in cases {
            assert!(parse(c).is_err(), "{c:?} parsed");
        }
        assert_eq!(parse(b"libudev\0xx"), Err(UeventError::Udev));
        // Every prefix of a real message either parses or errors.
        let real = fixture("block_add_loop20.bin");
        for i in 0..real.len() {
            let _ = parse(&real[..i]);
        }
        assert!(parse(&vec![b'a'; MAX_LEN + 1]).is_err());
    }

    #[test]
    fn trailing_nul_is_optional() {
        let u = parse(b"remove@/devices/virtual/net/ifb9\0ACTION=remove\0SUBSYSTEM=net").unwrap();
        assert_eq!(u.subsystem(), Some("net"));
        assert_eq!(u.var("ACTION"), Some("remove"));
    }
}
