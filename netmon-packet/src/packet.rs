//! The decoded form of one packet: an ordered list of layers with named fields, plus problems.

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

use crate::dns::DnsMessage;
use crate::value::Value;

/// How the captured bytes start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// An Ethernet II or IEEE 802.3 frame (pcapng LINKTYPE_ETHERNET = 1).
    Ethernet,
    /// A bare IPv4 or IPv6 packet, version taken from the first nibble (LINKTYPE_RAW = 101),
    /// as seen on hooks without a link-layer header (tun devices, some TC hooks).
    RawIp,
}

impl LinkType {
    /// The pcapng/libpcap LINKTYPE_* number.
    pub fn pcap_linktype(self) -> u16 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::RawIp => 101,
        }
    }
}

/// One decoded protocol layer: a name (`"IPv4"`, `"TCP"`…) and its fields in wire order.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub name: &'static str,
    pub fields: Vec<(&'static str, Value)>,
}

impl Layer {
    pub(crate) fn new(name: &'static str) -> Self {
        Layer {
            name,
            fields: Vec::with_capacity(12),
        }
    }

    pub(crate) fn push(&mut self, field: &'static str, value: impl Into<Value>) {
        self.fields.push((field, value.into()));
    }

    /// The value of a field by its exact name.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, v)| v)
    }

    pub(crate) fn num(&self, field: &str) -> Option<u64> {
        self.get(field).and_then(Value::as_num)
    }
}

impl Serialize for Layer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Fields<'a>(&'a [(&'static str, Value)]);
        impl Serialize for Fields<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for (k, v) in self.0 {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        let mut st = s.serialize_struct("Layer", 2)?;
        st.serialize_field("layer", self.name)?;
        st.serialize_field("fields", &Fields(&self.fields))?;
        st.end()
    }
}

/// Something wrong with the input: the layer it concerns and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub layer: &'static str,
    pub reason: String,
    /// The bytes ended before this layer (or its payload) did, e.g. because of the snap length.
    pub truncated: bool,
}

/// A decoded packet. Decoding never fails: what could not be read is listed in `problems`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Packet {
    pub layers: Vec<Layer>,
    pub problems: Vec<Problem>,
    /// The DNS message, when one was decoded (its fields are also in the `DNS` layer).
    #[serde(skip)]
    pub dns: Option<DnsMessage>,
}

impl Packet {
    /// The first layer with this name.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// The layer the bytes ended in, when the capture was cut short.
    pub fn truncated_at(&self) -> Option<&'static str> {
        self.problems.iter().find(|p| p.truncated).map(|p| p.layer)
    }

    pub(crate) fn problem(&mut self, layer: &'static str, reason: impl Into<String>) {
        self.problems.push(Problem {
            layer,
            reason: reason.into(),
            truncated: false,
        });
    }

    pub(crate) fn truncated(&mut self, layer: &'static str, what: &str, need: usize, have: usize) {
        self.problems.push(Problem {
            layer,
            reason: format!("truncated at {layer} {what}: need {need} bytes, have {have}"),
            truncated: true,
        });
    }

    /// The innermost IP layer's addresses (source, destination).
    pub fn ip_addrs(&self) -> Option<(std::net::IpAddr, std::net::IpAddr)> {
        let ip = self
            .layers
            .iter()
            .rev()
            .find(|l| l.name == "IPv4" || l.name == "IPv6")?;
        Some((
            ip.get("Source_Address")?.as_ip()?,
            ip.get("Destination_Address")?.as_ip()?,
        ))
    }
}
