//! The handful of values the TUI's analysis view highlights, derived from a snapshot.
//!
//! Hand-written on top of [`counters`](super::counters); procfs-core's `Snmp` has the typed
//! RTO and forwarding fields but fails on any kernel that lacks one of its ~90 fields.
use super::counters::{CounterTable, Value};
use super::{Availability, Unavailable};

/// `Tcp: RtoAlgorithm` (RFC 2012).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtoAlgorithm {
    Other,
    Constant,
    Rsre,
    /// Van Jacobson's. Linux reports `Other` (1) although it implements this.
    Vanj,
    Unknown(u64),
}

impl RtoAlgorithm {
    pub fn from_code(code: u64) -> Self {
        match code {
            1 => RtoAlgorithm::Other,
            2 => RtoAlgorithm::Constant,
            3 => RtoAlgorithm::Rsre,
            4 => RtoAlgorithm::Vanj,
            other => RtoAlgorithm::Unknown(other),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRto {
    pub algorithm: RtoAlgorithm,
    pub min_ms: u64,
    pub max_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpHealth {
    pub in_datagrams: u64,
    pub no_ports: u64,
    pub in_errors: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// `net.ipv4.ip_forward`; unavailable unless the snapshot had a sysctl root for this netns.
    pub ip_forward_sysctl: Availability<bool>,
    /// `Ip: Forwarding` from snmp (1 forwarding, 2 not), which the kernel derives from the same
    /// per-namespace setting and which is readable through `/proc/<pid>/net` without setns.
    pub ip_forwarding: Availability<bool>,
    pub icmp_in_msgs: Availability<u64>,
    /// ICMP destination unreachable received. The kernel prints only the `IcmpMsg` types it has
    /// counted, so with snmp present an absent `InType3` (or `IcmpMsg`) is 0, not unavailable.
    pub icmp_in_type3: Availability<u64>,
    pub tcp_rto: Availability<TcpRto>,
    pub udp: Availability<UdpHealth>,
}

impl Analysis {
    pub fn new(snmp: &Availability<CounterTable>, ip_forward_sysctl: &Availability<bool>) -> Self {
        let snmp = snmp.as_ref();
        let u = |t: &CounterTable, s: &str, n: &str| t.get_u64(s, n);
        Analysis {
            ip_forward_sysctl: ip_forward_sysctl.clone(),
            ip_forwarding: snmp
                .clone()
                .and_then_opt(|t| match t.get("Ip", "Forwarding")? {
                    Value::Counter(1) => Some(true),
                    Value::Counter(2) => Some(false),
                    _ => None,
                }),
            icmp_in_msgs: snmp.clone().and_then_opt(|t| u(t, "Icmp", "InMsgs")),
            icmp_in_type3: snmp.clone().and_then_opt(|t| {
                t.section("Icmp")?;
                Some(u(t, "IcmpMsg", "InType3").unwrap_or(0))
            }),
            tcp_rto: snmp.clone().and_then_opt(|t| {
                Some(TcpRto {
                    algorithm: RtoAlgorithm::from_code(u(t, "Tcp", "RtoAlgorithm")?),
                    min_ms: u(t, "Tcp", "RtoMin")?,
                    max_ms: u(t, "Tcp", "RtoMax")?,
                })
            }),
            udp: snmp.and_then_opt(|t| {
                Some(UdpHealth {
                    in_datagrams: u(t, "Udp", "InDatagrams")?,
                    no_ports: u(t, "Udp", "NoPorts")?,
                    in_errors: u(t, "Udp", "InErrors")?,
                })
            }),
        }
    }
}

/// `sys/net/ipv4/ip_forward`: "0" or "1" (any non-zero value enables forwarding).
pub fn parse_ip_forward(text: &str) -> Availability<bool> {
    match text.trim().parse::<u64>() {
        Ok(v) => Availability::Available(v != 0),
        Err(_) => Availability::Unavailable(Unavailable::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::super::counters::parse_header_values;
    use super::*;

    #[test]
    fn ip_forward_values() {
        let cases = [
            ("1\n", Availability::Available(true)),
            ("0\n", Availability::Available(false)),
            ("2", Availability::Available(true)),
            ("", Availability::Unavailable(Unavailable::Malformed)),
            ("yes", Availability::Unavailable(Unavailable::Malformed)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_ip_forward(text), want, "{text:?}");
        }
    }

    #[test]
    fn from_partial_snmp() {
        let snmp = Availability::Available(parse_header_values(
            "Icmp: InMsgs\nIcmp: 4\nTcp: RtoMin\nTcp: 200\nIp: Forwarding\nIp: 2\n",
        ));
        let a = Analysis::new(
            &snmp,
            &Availability::Unavailable(Unavailable::NotOnThisKernel),
        );
        assert_eq!(a.icmp_in_msgs, Availability::Available(4));
        assert_eq!(a.icmp_in_type3, Availability::Available(0));
        assert_eq!(a.ip_forwarding, Availability::Available(false));
        assert_eq!(
            a.tcp_rto,
            Availability::Unavailable(Unavailable::NotOnThisKernel)
        );
        assert_eq!(
            a.udp,
            Availability::Unavailable(Unavailable::NotOnThisKernel)
        );

        let none = Analysis::new(
            &Availability::Unavailable(Unavailable::PermissionDenied),
            &Availability::Available(true),
        );
        assert_eq!(
            none.icmp_in_type3,
            Availability::Unavailable(Unavailable::PermissionDenied)
        );
        assert_eq!(none.ip_forward_sysctl, Availability::Available(true));
    }
}
