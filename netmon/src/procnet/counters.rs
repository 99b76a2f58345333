//! Named counters: `net/snmp` and `net/netstat` (pairs of `Prefix: names…` / `Prefix: values…`
//! lines) and `net/snmp6` (`name value` lines).
//!
//! Hand-written: procfs-core's `Snmp` and `Snmp6` are fixed structs that fail when any field
//! they expect is missing (several appeared only in recent kernels) and drop the ones they do
//! not know (`OutTransmits`, `IcmpMsg`, every `Icmp6InType*`); it has no `netstat` parser. The
//! TUI wants every counter, in the kernel's order, whatever the kernel version.
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    Counter(u64),
    /// Only `Tcp: MaxConn` in practice, which is -1 for "no fixed limit".
    Signed(i64),
}

impl Value {
    pub fn as_u64(self) -> Option<u64> {
        match self {
            Value::Counter(v) => Some(v),
            Value::Signed(_) => None,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        s.parse()
            .map(Value::Counter)
            .or_else(|_| s.parse::<i64>().map(Value::Signed))
            .ok()
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Counter(v) => write!(f, "{v}"),
            Value::Signed(v) => write!(f, "{v}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// `Tcp`, `TcpExt`, `IcmpMsg`, …; for snmp6 the prefix through the `6` (`Ip6`, `Udp6`).
    pub name: String,
    /// In file order.
    pub counters: Vec<(String, Value)>,
}

impl Section {
    pub fn get(&self, name: &str) -> Option<Value> {
        self.counters
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CounterTable {
    pub sections: Vec<Section>,
    /// Lines dropped: an orphan header or values line, a count mismatch, a value that is no number.
    pub skipped_lines: usize,
}

impl CounterTable {
    /// `None` when the kernel does not have the section, e.g. `MPTcpExt` without MPTCP, or
    /// `IcmpMsg` before any ICMP message was counted.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    pub fn get(&self, section: &str, name: &str) -> Option<Value> {
        self.section(section)?.get(name)
    }

    pub fn get_u64(&self, section: &str, name: &str) -> Option<u64> {
        self.get(section, name)?.as_u64()
    }

    fn push(&mut self, name: &str, counter: (String, Value)) {
        match self.sections.iter_mut().find(|s| s.name == name) {
            Some(s) => s.counters.push(counter),
            None => self.sections.push(Section {
                name: name.to_owned(),
                counters: vec![counter],
            }),
        }
    }
}

/// The `Prefix: names` / `Prefix: values` format of `snmp` and `netstat`.
///
/// A section whose value count differs from its name count is dropped whole: there is no telling
/// which column went missing, and a shifted column would show wrong numbers under right names.
pub fn parse_header_values(text: &str) -> CounterTable {
    let mut table = CounterTable::default();
    let mut header: Option<(&str, Vec<&str>)> = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((prefix, rest)) = line.split_once(':') else {
            table.skipped_lines += 1 + usize::from(header.take().is_some());
            continue;
        };
        let prefix = prefix.trim();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        match header.take() {
            Some((name, names)) if name == prefix => {
                let values: Option<Vec<Value>> = fields.iter().map(|v| Value::parse(v)).collect();
                match values {
                    Some(values) if values.len() == names.len() => {
                        for (n, v) in names.into_iter().zip(values) {
                            table.push(name, (n.to_owned(), v));
                        }
                    }
                    _ => table.skipped_lines += 2,
                }
            }
            orphan => {
                table.skipped_lines += usize::from(orphan.is_some());
                header = Some((prefix, fields));
            }
        }
    }
    table.skipped_lines += usize::from(header.is_some());
    table
}

/// The `name value` format of `snmp6` (and `dev_snmp6/<iface>`).
pub fn parse_name_value(text: &str) -> CounterTable {
    let mut table = CounterTable::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.split_whitespace();
        let parsed = match (f.next(), f.next().and_then(Value::parse), f.next()) {
            (Some(name), Some(value), None) => Some((name, value)),
            _ => None,
        };
        match parsed {
            Some((name, value)) => table.push(snmp6_section(name), (name.to_owned(), value)),
            None => table.skipped_lines += 1,
        }
    }
    table
}

/// `Icmp6InMsgs` → `Icmp6`; a name without a `6` is its own section.
fn snmp6_section(name: &str) -> &str {
    name.find('6').map_or(name, |i| &name[..=i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(t: &CounterTable) -> Vec<String> {
        t.sections
            .iter()
            .flat_map(|s| {
                s.counters
                    .iter()
                    .map(move |(n, v)| format!("{}.{n}={v}", s.name))
            })
            .collect()
    }

    #[test]
    fn header_values() {
        let cases: &[(&str, &[&str], usize)] = &[
            ("Tcp: A B\nTcp: 1 -1\n", &["Tcp.A=1", "Tcp.B=-1"], 0),
            (
                "Udp: A\nUdp: 18446744073709551615\n",
                &["Udp.A=18446744073709551615"],
                0,
            ),
            // count mismatch, both ways: the section goes, the next survives
            ("Ip: A B\nIp: 1\nUdp: X\nUdp: 2\n", &["Udp.X=2"], 2),
            ("Ip: A\nIp: 1 2\n", &[], 2),
            // header with no values line (truncated file)
            ("Ip: A\nIp: 1\nTcp: A B\n", &["Ip.A=1"], 1),
            // values with no header, and a header followed by another section's header
            ("Ip: A\nTcp: A\nTcp: 5\n", &["Tcp.A=5"], 1),
            ("garbage\nIp: A\nIp: 1\n", &["Ip.A=1"], 1),
            ("Ip: A\nIp: x\n", &[], 2),
            ("Ip: A\nIp: 18446744073709551616\n", &[], 2),
            ("", &[], 0),
            ("\n\n", &[], 0),
            // a section that repeats (IcmpMsg in two halves) merges
            ("M: A\nM: 1\nM: B\nM: 2\n", &["M.A=1", "M.B=2"], 0),
        ];
        for (text, want, skipped) in cases {
            let t = parse_header_values(text);
            assert_eq!(flat(&t), *want, "{text:?}");
            assert_eq!(t.skipped_lines, *skipped, "{text:?}");
        }
    }

    #[test]
    fn name_values() {
        let t = parse_name_value(
            "Ip6InReceives  \t1\nIcmp6InType133 4\nUdpLite6InErrors 0\nIp6OutRequests 18446744073709551615\nbare\nIp6X 1 2\nFoo 3\n",
        );
        assert_eq!(
            flat(&t),
            [
                "Ip6.Ip6InReceives=1",
                "Ip6.Ip6OutRequests=18446744073709551615",
                "Icmp6.Icmp6InType133=4",
                "UdpLite6.UdpLite6InErrors=0",
                "Foo.Foo=3",
            ]
        );
        assert_eq!(t.skipped_lines, 2);
        assert_eq!(t.get_u64("Ip6", "Ip6OutRequests"), Some(u64::MAX));
    }
}
