//! A work directory's finished frame as a resume reads it back: the record's JSON and the
//! image's bytes, each arbitrary (what a power cut, a full disk or a stray edit can leave).
//! It is a frame or a damage to recompute, never a panic. The input is split at its first
//! NUL: the record before it, the image after.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stylize_video::jobs::workdir::read_finished;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (record, image) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    if let Ok((frame, record)) = read_finished(record, image) {
        assert!(record.resumed);
        assert!(frame.rgb8.width() > 0 && frame.rgb8.height() > 0);
    }
});
