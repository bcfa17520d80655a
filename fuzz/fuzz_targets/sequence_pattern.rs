//! The parsers of what a user types: image-sequence patterns (`shots/f_%04d.png`), frame
//! rates and `--segment` specifications. Whatever the text, they answer or refuse, and what a
//! pattern accepts it reads back: the name it makes for a number matches it.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use stylize_video::jobs::segment::SegmentSpec;
use stylize_video::media::sequence::{parse_rate, Pattern};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(pattern) = Pattern::parse(Path::new(text)) {
        for number in [0, 1, 42, 99_999, u64::MAX] {
            let path = pattern.path(number);
            let name = path.file_name().and_then(|n| n.to_str()).expect("a pattern's frame has a file name");
            assert!(pattern.matches(name), "{text}: frame {number} is {name}, which the pattern does not match");
        }
        let _ = pattern.extension();
        let _ = pattern.frames_directory();
    }
    if let Ok((num, den)) = parse_rate(text) {
        assert!(num > 0 && den > 0, "{text}: {num}/{den}");
    }
    if let Ok(spec) = SegmentSpec::parse_with(text, |_| None) {
        assert!(spec.index < spec.count, "{text}: {spec:?}");
    }
});
