//! `net/softnet_stat`: one line of hex columns per online CPU.
//!
//! Hand-written: procfs-core has no parser for it. The counters are 32-bit in the kernel
//! (`%08x` of `unsigned int`) and wrap, so deltas use wrapping arithmetic (see `delta`).
use super::Table;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftnetCpu {
    /// The CPU id: column 13 since kernel 5.10, the line index before (when CPUs were numbered
    /// densely only if all were online).
    pub cpu: u32,
    pub processed: u32,
    pub dropped: u32,
    pub time_squeeze: u32,
    /// Columns 10 and 11; absent on very old kernels.
    pub received_rps: Option<u32>,
    pub flow_limit_count: Option<u32>,
}

pub fn parse(text: &str) -> Table<SoftnetCpu> {
    let mut index = 0u32;
    Table::from_lines(text.lines(), |line| {
        let row = parse_line(line, index);
        index += 1;
        row
    })
}

fn parse_line(line: &str, index: u32) -> Option<SoftnetCpu> {
    let cols: Vec<u32> = line
        .split_whitespace()
        .map(|c| u32::from_str_radix(c, 16).ok())
        .collect::<Option<_>>()?;
    if cols.len() < 3 {
        return None;
    }
    Some(SoftnetCpu {
        cpu: cols.get(12).copied().unwrap_or(index),
        processed: cols[0],
        dropped: cols[1],
        time_squeeze: cols[2],
        received_rps: cols.get(9).copied(),
        flow_limit_count: cols.get(10).copied(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let t = parse(concat!(
            "00002276 00000001 0000000a 00000000 00000000 00000000 00000000 00000000 00000000 00000005 00000006 00000000 00000000 00000000 00000000\n",
            "ffffffff 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000003 00000000 00000000\n",
            "00000001 00000002 00000003\n",
            "00000001 00000002\n",
            "00000001 0000000x 00000003\n",
            "100000000 00000002 00000003\n",
        ));
        assert_eq!(t.skipped_lines, 3);
        assert_eq!(
            t.rows,
            vec![
                SoftnetCpu {
                    cpu: 0,
                    processed: 0x2276,
                    dropped: 1,
                    time_squeeze: 10,
                    received_rps: Some(5),
                    flow_limit_count: Some(6)
                },
                SoftnetCpu {
                    cpu: 3,
                    processed: u32::MAX,
                    dropped: 0,
                    time_squeeze: 0,
                    received_rps: Some(0),
                    flow_limit_count: Some(0)
                },
                SoftnetCpu {
                    cpu: 2,
                    processed: 1,
                    dropped: 2,
                    time_squeeze: 3,
                    received_rps: None,
                    flow_limit_count: None
                },
            ]
        );
    }
}
