//! Field values shared by decoded layers, filters and the JSON form.

use std::fmt;
use std::net::IpAddr;

use serde::{Serialize, Serializer};

/// A hardware (MAC) address; displayed and serialised as `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::str::FromStr for Mac {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let p = parts.next().ok_or(())?;
            if p.len() != 2 {
                return Err(());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| ())?;
        }
        if parts.next().is_some() {
            return Err(());
        }
        Ok(Mac(out))
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The value of one named field of a decoded layer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Num(u64),
    Bool(bool),
    Text(String),
    Ip(IpAddr),
    Mac(Mac),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Num(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Text(t) => f.write_str(t),
            Value::Ip(ip) => write!(f, "{ip}"),
            Value::Mac(m) => write!(f, "{m}"),
        }
    }
}

impl Value {
    pub fn as_num(&self) -> Option<u64> {
        match self {
            Value::Num(n) => Some(*n),
            Value::Bool(b) => Some(u64::from(*b)),
            _ => None,
        }
    }
    pub fn as_ip(&self) -> Option<IpAddr> {
        match self {
            Value::Ip(ip) => Some(*ip),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }
}

impl From<u8> for Value {
    fn from(v: u8) -> Self {
        Value::Num(v.into())
    }
}
impl From<u16> for Value {
    fn from(v: u16) -> Self {
        Value::Num(v.into())
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Num(v.into())
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Num(v)
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Num(v as u64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<IpAddr> for Value {
    fn from(v: IpAddr) -> Self {
        Value::Ip(v)
    }
}
impl From<std::net::Ipv4Addr> for Value {
    fn from(v: std::net::Ipv4Addr) -> Self {
        Value::Ip(v.into())
    }
}
impl From<std::net::Ipv6Addr> for Value {
    fn from(v: std::net::Ipv6Addr) -> Self {
        Value::Ip(v.into())
    }
}
impl From<Mac> for Value {
    fn from(v: Mac) -> Self {
        Value::Mac(v)
    }
}
