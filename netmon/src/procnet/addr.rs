//! Hex address decoding shared by the socket and route tables (hand-written: procfs-core keeps
//! its decoder private).
//!
//! Two encodings exist. The socket tables and `route` print each 32-bit word of the address as
//! the host integer it is in memory (`%08X`), so bytes come out in host order per word. The
//! `ipv6_route` file prints the 16 bytes in network order (`%pi6`).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `0100007F` (host-order word) → 127.0.0.1.
pub fn ipv4_from_word_hex(hex: &str) -> Option<Ipv4Addr> {
    if hex.len() != 8 {
        return None;
    }
    let word = u32::from_str_radix(hex, 16).ok()?;
    Some(Ipv4Addr::from(word.to_ne_bytes()))
}

/// Four host-order words → an IPv6 address, unmapped to IPv4 when it is `::ffff:a.b.c.d`, because
/// a dual-stack socket talking IPv4 should read as the IPv4 peer it is.
pub fn ip_from_word_hex(hex: &str) -> Option<IpAddr> {
    match hex.len() {
        8 => ipv4_from_word_hex(hex).map(IpAddr::V4),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            Some(unmap(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// `fd990000000000000000000000000001` (network order) → fd99::1.
pub fn ipv6_from_be_hex(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(hex, 16).ok().map(Ipv6Addr::from)
}

/// `0100007F:0050` → 127.0.0.1:80.
pub fn socket_addr_from_hex(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    if port.len() != 4 {
        return None;
    }
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::new(ip_from_word_hex(ip)?, port))
}

pub fn unmap(ip: Ipv6Addr) -> IpAddr {
    match ip.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(ip),
    }
}

/// Netmask → prefix length; `None` for a non-contiguous mask, which `route` can hold.
pub fn prefix_len(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses() {
        let cases: &[(&str, Option<&str>)] = &[
            ("0100007F:0050", Some("127.0.0.1:80")),
            ("00000000:0000", Some("0.0.0.0:0")),
            ("FFFFFFFF:FFFF", Some("255.255.255.255:65535")),
            ("0200630A:9C41", Some("10.99.0.2:40001")),
            ("00000000000000000000000001000000:9C44", Some("[::1]:40004")),
            ("00000000000000000000000000000000:0016", Some("[::]:22")),
            // ::ffff:127.0.0.1 reads as IPv4
            (
                "0000000000000000FFFF00000100007F:9C42",
                Some("127.0.0.1:40002"),
            ),
            // ::127.0.0.1 (IPv4-compatible, deprecated) stays IPv6
            (
                "0000000000000000000000000100007F:0001",
                Some("[::7f00:1]:1"),
            ),
            ("000099FD000000000000000002000000:0001", Some("[fd99::2]:1")),
            ("0100007F", None),
            ("0100007F:50", None),
            ("0100007:0050", None),
            ("0100007G:0050", None),
            ("0100007F:GGGG", None),
            ("000000000000000000000000010000:0001", None),
            ("", None),
            // 32 bytes but not 32 chars: slicing must not panic
            ("000000000000000000000000000000é:0001", None),
        ];
        for (input, want) in cases {
            let got = socket_addr_from_hex(input).map(|a| a.to_string());
            assert_eq!(got.as_deref(), *want, "{input}");
        }
    }

    #[test]
    fn route_addresses() {
        let cases: &[(&str, Option<&str>)] = &[
            ("fd990000000000000000000000000001", Some("fd99::1")),
            ("00000000000000000000000000000001", Some("::1")),
            ("ff000000000000000000000000000000", Some("ff00::")),
            ("fe80000000000000000000000000000", None),
            ("zz990000000000000000000000000001", None),
        ];
        for (input, want) in cases {
            let got = ipv6_from_be_hex(input).map(|a| a.to_string());
            assert_eq!(got.as_deref(), *want, "{input}");
        }
    }

    #[test]
    fn prefix_lengths() {
        let cases = [
            ([0, 0, 0, 0], Some(0)),
            ([255, 255, 255, 0], Some(24)),
            ([255, 255, 255, 255], Some(32)),
            ([255, 128, 0, 0], Some(9)),
            ([255, 0, 255, 0], None),
        ];
        for (mask, want) in cases {
            assert_eq!(prefix_len(Ipv4Addr::from(mask)), want, "{mask:?}");
        }
    }
}
