//! Any text as a JSON filter: an error or a filter, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmon_packet::Filter;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(f) = Filter::parse_json(text) {
            let _ = f.kernel_part();
        }
    }
});
