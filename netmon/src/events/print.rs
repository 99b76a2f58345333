//! The stdout sink: one line per event, human or JSON, flushed at once (an event stream read
//! through a pipe must not sit in a buffer until 8 KiB have gathered).
use std::io::{self, Write};

use super::model::HostEvent;

pub struct Printer<W: Write> {
    out: W,
    json: bool,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, json: bool) -> Self {
        Printer { out, json }
    }

    pub fn print(&mut self, ev: &HostEvent) -> io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.out, ev)?;
            self.out.write_all(b"\n")?;
        } else {
            writeln!(self.out, "{ev}")?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::{BlockDevice, What};

    #[test]
    fn one_line_each() {
        let ev = HostEvent::new(
            What::BlockAdded(BlockDevice {
                name: "sdb".into(),
                devpath: "/devices/x/block/sdb".into(),
                devtype: Some("disk".into()),
                size_bytes: Some(16 << 20),
                removable: Some(true),
            }),
            "vm",
            std::time::UNIX_EPOCH,
        );
        let mut human = Printer::new(Vec::new(), false);
        human.print(&ev).unwrap();
        assert_eq!(
            String::from_utf8(human.out).unwrap(),
            "1970-01-01T00:00:00.000Z vm block_added           sdb disk size=16777216 removable=true\n"
        );
        let mut json = Printer::new(Vec::new(), true);
        json.print(&ev).unwrap();
        json.print(&ev).unwrap();
        let text = String::from_utf8(json.out).unwrap();
        assert_eq!(text.lines().count(), 2);
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["kind"], "device");
        assert_eq!(v["event"], "block_added");
        assert_eq!(v["size_bytes"], 16 << 20);
    }
}
