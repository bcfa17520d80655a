//! A segmented run's `plan.json` as every node reads it. Accepted plans must be usable as the
//! assembly uses them: every frame owned by exactly one segment, with a timestamp, and every
//! boundary between neighbouring segments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stylize_video::jobs::segment::Plan;

fuzz_target!(|data: &[u8]| {
    let Ok(plan) = Plan::from_json(data) else { return };
    assert_eq!(plan.pts.len() as u64, plan.frames);
    assert_eq!(plan.boundaries.len() + 1, plan.segments.len());
    for frame in 0..plan.frames.min(100_000) {
        let owners = plan.segments.iter().filter(|s| s.keep.contains(frame)).count();
        assert_eq!(owners, 1, "frame {frame}");
    }
    for segment in &plan.segments {
        assert!(segment.run.start <= segment.keep.start && segment.keep.end <= segment.run.end);
        assert!(segment.run.end <= plan.frames);
    }
});
