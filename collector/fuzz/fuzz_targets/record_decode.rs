//! Fuzz target: the buffer record codec, `collector::record::Record::decode` (and `header`),
//! on arbitrary bytes. A record that decodes must re-encode to a record that decodes to the
//! same value (a damaged buffer is reported, never a panic or an unbounded allocation).
#![no_main]

use collector::record::{header, Record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let h = header(data);
    if let Ok(r) = Record::decode(data) {
        let h = h.expect("a record that decodes has a header");
        assert_eq!(h.events as usize, r.events.len());
        let again = r.encode().expect("re-encode");
        assert_eq!(Record::decode(&again).expect("decode again"), r);
    }
});
