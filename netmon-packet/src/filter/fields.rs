//! The catalogue of layers and fields filters can name, with their value kinds, and the short
//! names of the expression syntax (`tcp.dport`) mapped onto the decoder's field names.

use crate::value::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Num,
    Bool,
    Text,
    Ip,
    Mac,
}

use Kind::*;

/// Every layer the decoder produces and every field it may carry. A test checks that decoding
/// the fixtures yields nothing outside this table.
pub(crate) static LAYERS: &[(&str, &[(&str, Kind)])] = &[
    (
        "Ethernet",
        &[
            ("Destination_MAC", Mac),
            ("Source_MAC", Mac),
            ("Format", Text),
            ("EtherType", Num),
            ("Length", Num),
        ],
    ),
    (
        "VLAN",
        &[
            ("Priority", Num),
            ("DEI", Bool),
            ("VLAN_ID", Num),
            ("EtherType", Num),
        ],
    ),
    ("LLC", &[("DSAP", Num), ("SSAP", Num), ("Control", Num)]),
    ("SNAP", &[("OUI", Num), ("Protocol_ID", Num)]),
    (
        "ARP",
        &[
            ("Hardware_Type", Num),
            ("Protocol_Type", Num),
            ("Operation", Num),
            ("Sender_MAC", Mac),
            ("Sender_IP", Ip),
            ("Target_MAC", Mac),
            ("Target_IP", Ip),
        ],
    ),
    (
        "IPv4",
        &[
            ("Version", Num),
            ("IHL", Num),
            ("DSCP", Num),
            ("ECN", Num),
            ("Total_Length", Num),
            ("Identification", Num),
            ("Dont_Fragment", Bool),
            ("More_Fragments", Bool),
            ("Fragment_Offset", Num),
            ("TTL", Num),
            ("Protocol", Num),
            ("Header_Checksum", Num),
            ("Source_Address", Ip),
            ("Destination_Address", Ip),
            ("Options", Text),
            ("Checksum_Valid", Bool),
        ],
    ),
    (
        "IPv6",
        &[
            ("Version", Num),
            ("Traffic_Class", Num),
            ("Flow_Label", Num),
            ("Payload_Length", Num),
            ("Next_Header", Num),
            ("Hop_Limit", Num),
            ("Source_Address", Ip),
            ("Destination_Address", Ip),
        ],
    ),
    (
        "IPv6_HopByHop",
        &[("Next_Header", Num), ("Length", Num), ("Options", Text)],
    ),
    (
        "IPv6_DestOpts",
        &[("Next_Header", Num), ("Length", Num), ("Options", Text)],
    ),
    (
        "IPv6_Routing",
        &[
            ("Next_Header", Num),
            ("Length", Num),
            ("Routing_Type", Num),
            ("Segments_Left", Num),
        ],
    ),
    (
        "IPv6_Fragment",
        &[
            ("Next_Header", Num),
            ("Fragment_Offset", Num),
            ("More_Fragments", Bool),
            ("Identification", Num),
        ],
    ),
    (
        "TCP",
        &[
            ("Source_Port", Num),
            ("Destination_Port", Num),
            ("Sequence_Number", Num),
            ("Acknowledgment_Number", Num),
            ("Data_Offset", Num),
            ("Flags", Text),
            ("SYN", Bool),
            ("ACK", Bool),
            ("FIN", Bool),
            ("RST", Bool),
            ("PSH", Bool),
            ("URG", Bool),
            ("ECE", Bool),
            ("CWR", Bool),
            ("Window_Size", Num),
            ("Checksum", Num),
            ("Urgent_Pointer", Num),
            ("MSS", Num),
            ("Window_Scale", Num),
            ("SACK_Permitted", Bool),
            ("SACK_Blocks", Num),
            ("Timestamp_Value", Num),
            ("Timestamp_Echo", Num),
            ("Payload_Length", Num),
            ("Checksum_Valid", Bool),
        ],
    ),
    (
        "UDP",
        &[
            ("Source_Port", Num),
            ("Destination_Port", Num),
            ("Length", Num),
            ("Checksum", Num),
            ("Payload_Length", Num),
            ("Checksum_Valid", Bool),
        ],
    ),
    (
        "ICMP",
        &[
            ("Type", Num),
            ("Code", Num),
            ("Checksum", Num),
            ("Identifier", Num),
            ("Sequence", Num),
            ("Gateway", Ip),
            ("Next_Hop_MTU", Num),
            ("Checksum_Valid", Bool),
        ],
    ),
    (
        "ICMPv6",
        &[
            ("Type", Num),
            ("Code", Num),
            ("Checksum", Num),
            ("Identifier", Num),
            ("Sequence", Num),
            ("MTU", Num),
            ("Cur_Hop_Limit", Num),
            ("Managed", Bool),
            ("Other_Config", Bool),
            ("Router_Lifetime", Num),
            ("Router", Bool),
            ("Solicited", Bool),
            ("Override", Bool),
            ("Reachable_Time", Num),
            ("Retrans_Timer", Num),
            ("Target_Address", Ip),
            ("Redirect_Destination", Ip),
            ("Source_Link_Address", Mac),
            ("Target_Link_Address", Mac),
            ("Prefix", Ip),
            ("Prefix_Length", Num),
            ("Valid_Lifetime", Num),
            ("Preferred_Lifetime", Num),
            ("Option_MTU", Num),
            ("Checksum_Valid", Bool),
        ],
    ),
    (
        "IGMP",
        &[
            ("Type", Num),
            ("Version", Num),
            ("Max_Response", Num),
            ("Checksum", Num),
            ("Group_Address", Ip),
            ("Number_Of_Sources", Num),
            ("Number_Of_Records", Num),
            ("Checksum_Valid", Bool),
        ],
    ),
    (
        "DNS",
        &[
            ("Transaction_ID", Num),
            ("Response", Bool),
            ("Opcode", Num),
            ("Rcode", Num),
            ("Transport", Text),
            ("Question_Count", Num),
            ("Answer_Count", Num),
            ("Query_Name", Text),
            ("Query_Type", Num),
            ("Answers", Text),
        ],
    ),
    (
        "LLDP",
        &[
            ("Chassis_ID_Subtype", Num),
            ("Chassis_ID", Text),
            ("Port_ID_Subtype", Num),
            ("Port_ID", Text),
            ("TTL", Num),
            ("Port_Description", Text),
            ("System_Name", Text),
            ("System_Description", Text),
            ("Capabilities", Num),
            ("Enabled_Capabilities", Num),
            ("Management_Address", Text),
        ],
    ),
    (
        "CDP",
        &[
            ("Version", Num),
            ("TTL", Num),
            ("Checksum", Num),
            ("Device_ID", Text),
            ("Addresses", Text),
            ("Port_ID", Text),
            ("Capabilities", Num),
            ("Software_Version", Text),
            ("Platform", Text),
            ("Native_VLAN", Num),
            ("Duplex", Text),
        ],
    ),
];

/// The capture metadata, addressed as the seed's `AF_Packet` layer in JSON filters and by bare
/// names (`pid`, `iface`…) in expressions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetaField {
    Ifname,
    Ifindex,
    Direction,
    Pid,
    Comm,
    Length,
    Cookie,
}

pub(crate) static META_JSON: &[(&str, MetaField)] = &[
    ("Interface_Name", MetaField::Ifname),
    ("Interface_Index", MetaField::Ifindex),
    ("Direction", MetaField::Direction),
    ("PID", MetaField::Pid),
    ("Comm", MetaField::Comm),
    ("Length", MetaField::Length),
    ("Cookie", MetaField::Cookie),
];

pub(crate) static META_EXPR: &[(&str, MetaField)] = &[
    ("iface", MetaField::Ifname),
    ("ifname", MetaField::Ifname),
    ("ifindex", MetaField::Ifindex),
    ("dir", MetaField::Direction),
    ("direction", MetaField::Direction),
    ("pid", MetaField::Pid),
    ("comm", MetaField::Comm),
    ("len", MetaField::Length),
    ("cookie", MetaField::Cookie),
];

impl MetaField {
    pub(crate) fn kind(self) -> Kind {
        match self {
            MetaField::Ifname | MetaField::Comm | MetaField::Direction => Text,
            _ => Num,
        }
    }

    pub(crate) fn get(self, m: &crate::meta::PacketMeta) -> Option<Value> {
        Some(match self {
            MetaField::Ifname => Value::Text(m.ifname.clone()),
            MetaField::Ifindex => Value::Num(m.ifindex.into()),
            MetaField::Direction => Value::Text(m.direction.as_str().into()),
            MetaField::Pid => Value::Num(m.pid?.into()),
            MetaField::Comm => Value::Text(m.comm.clone()?),
            MetaField::Length => Value::Num(m.orig_len.into()),
            MetaField::Cookie => Value::Num(m.cookie?),
        })
    }
}

/// Protocol names of the expression syntax and the layers each stands for.
pub(crate) static PROTOS: &[(&str, &[&str])] = &[
    ("eth", &["Ethernet"]),
    ("ether", &["Ethernet"]),
    ("vlan", &["VLAN"]),
    ("llc", &["LLC"]),
    ("snap", &["SNAP"]),
    ("arp", &["ARP"]),
    ("ip", &["IPv4", "IPv6"]),
    ("ip4", &["IPv4"]),
    ("ipv4", &["IPv4"]),
    ("ip6", &["IPv6"]),
    ("ipv6", &["IPv6"]),
    ("icmp", &["ICMP"]),
    ("icmp6", &["ICMPv6"]),
    ("icmpv6", &["ICMPv6"]),
    ("igmp", &["IGMP"]),
    ("tcp", &["TCP"]),
    ("udp", &["UDP"]),
    ("dns", &["DNS"]),
    ("lldp", &["LLDP"]),
    ("cdp", &["CDP"]),
];

/// Short field names: (layer, short name, the layer's fields it matches — any of them).
pub(crate) static SHORT: &[(&str, &str, &[&str])] = &[
    ("Ethernet", "src", &["Source_MAC"]),
    ("Ethernet", "dst", &["Destination_MAC"]),
    ("Ethernet", "addr", &["Source_MAC", "Destination_MAC"]),
    ("Ethernet", "type", &["EtherType"]),
    ("VLAN", "id", &["VLAN_ID"]),
    ("VLAN", "pcp", &["Priority"]),
    ("ARP", "op", &["Operation"]),
    ("ARP", "src", &["Sender_IP"]),
    ("ARP", "dst", &["Target_IP"]),
    ("ARP", "sha", &["Sender_MAC"]),
    ("ARP", "tha", &["Target_MAC"]),
    ("IPv4", "src", &["Source_Address"]),
    ("IPv4", "dst", &["Destination_Address"]),
    ("IPv4", "addr", &["Source_Address", "Destination_Address"]),
    ("IPv4", "host", &["Source_Address", "Destination_Address"]),
    ("IPv4", "ttl", &["TTL"]),
    ("IPv4", "proto", &["Protocol"]),
    ("IPv4", "id", &["Identification"]),
    ("IPv4", "len", &["Total_Length"]),
    ("IPv6", "src", &["Source_Address"]),
    ("IPv6", "dst", &["Destination_Address"]),
    ("IPv6", "addr", &["Source_Address", "Destination_Address"]),
    ("IPv6", "host", &["Source_Address", "Destination_Address"]),
    ("IPv6", "ttl", &["Hop_Limit"]),
    ("IPv6", "hlim", &["Hop_Limit"]),
    ("IPv6", "proto", &["Next_Header"]),
    ("IPv6", "flow", &["Flow_Label"]),
    ("TCP", "sport", &["Source_Port"]),
    ("TCP", "dport", &["Destination_Port"]),
    ("TCP", "port", &["Source_Port", "Destination_Port"]),
    ("TCP", "seq", &["Sequence_Number"]),
    ("TCP", "ack", &["Acknowledgment_Number"]),
    ("TCP", "flags", &["Flags"]),
    ("TCP", "win", &["Window_Size"]),
    ("TCP", "len", &["Payload_Length"]),
    ("TCP", "mss", &["MSS"]),
    ("UDP", "sport", &["Source_Port"]),
    ("UDP", "dport", &["Destination_Port"]),
    ("UDP", "port", &["Source_Port", "Destination_Port"]),
    ("UDP", "len", &["Payload_Length"]),
    ("ICMP", "type", &["Type"]),
    ("ICMP", "code", &["Code"]),
    ("ICMP", "id", &["Identifier"]),
    ("ICMP", "seq", &["Sequence"]),
    ("ICMPv6", "type", &["Type"]),
    ("ICMPv6", "code", &["Code"]),
    ("ICMPv6", "target", &["Target_Address"]),
    ("IGMP", "type", &["Type"]),
    ("IGMP", "group", &["Group_Address"]),
    ("DNS", "id", &["Transaction_ID"]),
    ("DNS", "qname", &["Query_Name"]),
    ("DNS", "qtype", &["Query_Type"]),
    ("DNS", "rcode", &["Rcode"]),
    ("DNS", "response", &["Response"]),
    ("LLDP", "name", &["System_Name"]),
    ("LLDP", "chassis", &["Chassis_ID"]),
    ("LLDP", "port", &["Port_ID"]),
    ("CDP", "device", &["Device_ID"]),
    ("CDP", "port", &["Port_ID"]),
    ("CDP", "platform", &["Platform"]),
];

pub(crate) fn layer_fields(layer: &str) -> Option<(&'static str, &'static [(&'static str, Kind)])> {
    LAYERS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(layer))
        .map(|(n, f)| (*n, *f))
}

pub(crate) fn field_kind(layer: &str, field: &str) -> Option<(&'static str, Kind)> {
    let (_, fields) = layer_fields(layer)?;
    fields
        .iter()
        .find(|(f, _)| f.eq_ignore_ascii_case(field))
        .map(|(f, k)| (*f, *k))
}
