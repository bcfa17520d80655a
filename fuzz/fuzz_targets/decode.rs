//! The decoder on arbitrary bytes: a container FFmpeg probes, its video stream decoded, scaled
//! and converted to RGB, as a run would (at a tiny size, a few frames). Any outcome but a panic
//! or a crash is fine: an error must come back as an error.
#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stylize_video::media::video::{DecodeOptions, FrameSize, VideoDecoder};

/// One scratch file per fuzzing process (in memory where /dev/shm exists).
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        dir.join(format!("stylize-video-fuzz-decode-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::File::create(path).and_then(|mut f| f.write_all(data)).expect("the scratch file is writable");
    let options = DecodeOptions { size: FrameSize::LongestSide(32), max_frames: Some(8), ..Default::default() };
    if let Ok(mut decoder) = VideoDecoder::open(path, &options) {
        let (width, height) = decoder.info().output_size(FrameSize::LongestSide(32));
        assert!(width > 0 && height > 0 && width <= 32 && height <= 32, "{width}×{height}");
        let mut delivered = 0;
        while let Ok(Some(frame)) = decoder.next_frame() {
            assert_eq!(frame.index, delivered, "frames are numbered in order");
            delivered += 1;
            assert!(delivered <= 8, "more frames than --max-frames");
        }
    }
});
