//! The buffer's ordering guarantee, which the forwarder's cursor relies on: once a reader
//! has seen key K, no record with a smaller key can appear. Without it, concurrent appends
//! can insert key K after K+1 was read, and the record stays buffered until a restart (the
//! end-to-end benchmark found one such record of 50 events).

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use collector::{buffer::Buffer, record::Record};

const WRITERS: usize = 8;
const PER_WRITER: usize = 3_000;

#[test]
fn a_reader_following_a_cursor_sees_every_record_of_concurrent_writers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let buffer = Buffer::open(dir.path(), &Default::default()).expect("open");
    let record = Record {
        collector_id: "order".into(),
        received_at_us: 0,
        events: Vec::new(),
    };
    let done = Arc::new(AtomicBool::new(false));

    // The reader does what the forwarder's dispatcher does: read from the cursor, move the
    // cursor past the last key read, and never look back.
    let reader = {
        let (buffer, done) = (buffer.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut cursor, mut seen) = (0u64, BTreeSet::new());
            loop {
                let finished = done.load(Ordering::SeqCst);
                let batch = buffer.read_from(cursor, 64).expect("read");
                if let Some(last) = batch.last() {
                    cursor = last.key + 1;
                }
                seen.extend(batch.iter().map(|s| s.key));
                if finished && batch.is_empty() {
                    return seen;
                }
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (buffer, record) = (buffer.clone(), record.clone());
            std::thread::spawn(move || {
                (0..PER_WRITER)
                    .map(|_| buffer.append_blocking(&record).expect("append"))
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let written: BTreeSet<u64> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();
    done.store(true, Ordering::SeqCst);
    let seen = reader.join().expect("reader");

    let missed: Vec<&u64> = written.difference(&seen).collect();
    assert!(
        missed.is_empty(),
        "the cursor skipped {} of {} records, e.g. {:?}",
        missed.len(),
        written.len(),
        &missed[..missed.len().min(5)]
    );
}
