//! Any text as a filter expression: an error with a column inside the text, or a filter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmon_packet::Filter;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match Filter::parse_expr(text) {
            Ok(f) => {
                let _ = f.kernel_part();
            }
            Err(e) => {
                let col = e.column.expect("expression errors carry a column");
                assert!(col >= 1 && col <= text.chars().count() + 1, "column {col} outside {text:?}");
            }
        }
    }
});
