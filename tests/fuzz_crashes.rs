//! Every input a fuzz target (fuzz/, scripts/fuzz) crashed on, run the way the tool runs it:
//! each must now give a result or an error, never a crash. The inputs are in tests/fuzz-crashes/.

mod common;

use std::sync::atomic::AtomicBool;

use stylize_video::jobs::pipeline::{run_video, VideoJob};
use stylize_video::media::video::{DecodeOptions, FrameSize, VideoDecoder};
use stylize_video::progress::NoProgress;

/// An MPEG-2 stream whose sequence display extension holds colour tags FFmpeg has no names for
/// (its decoder copies the bitstream's bytes unchecked). Read as Rust enums they were undefined
/// behaviour: the encoder's `match` on them jumped to garbage (SIGSEGV in the CLI, SIGILL in
/// the fuzz target). Unknown tags now read as unspecified.
#[test]
fn mpeg2_colour_tags_outside_ffmpegs_values_read_as_unspecified() {
    let input = common::repo_path("tests/fuzz-crashes/decode-mpeg2-colour-tags.mpg");
    let options = DecodeOptions { size: FrameSize::LongestSide(32), max_frames: Some(8), ..Default::default() };
    let mut decoder = VideoDecoder::open(&input, &options).unwrap();
    assert_eq!(decoder.info().codec, "mpeg2video");
    let colour = serde_json::to_value(decoder.info().colour).unwrap();
    assert_eq!(colour["primaries"], "unknown");
    assert_eq!(colour["matrix"], "unknown");
    let mut frames = 0;
    while decoder.next_frame().unwrap().is_some() {
        frames += 1;
    }
    assert_eq!(frames, 1);

    // The whole run: decode, stylize, encode with the tags carried over.
    let dir = common::scratch_dir("fuzz-crash-mpeg2-colour");
    let job = VideoJob {
        size: 32,
        first_iterations: 1,
        iterations: 1,
        max_iterations: None,
        ..VideoJob::with_defaults(input, common::repo_path("samples/starry_night.jpg"), dir.join("out.mp4"))
    };
    let report = run_video(&VideoJob { overwrite: true, ..job }, &mut NoProgress, &AtomicBool::new(false)).unwrap();
    assert_eq!(report.totals.frames, 1);
}
