//! Memory the decoder must give back, measured by the process's resident size around a decode
//! (a test binary of its own, so no other test's allocations move the figure).
//!
//! Found by fuzzing (scripts/fuzz, target `decode`, LeakSanitizer): the decoder read every
//! packet into one reused `Packet`, and av_read_frame does not release what a packet holds, so
//! each packet of another stream (the audio, skipped) was leaked, for the whole clip.

mod common;

use common::clips::{make_clip, ClipAudio, ClipSpec};
use stylize_video::media::video::{DecodeOptions, VideoDecoder};

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn decoding_a_clip_with_audio_does_not_keep_the_audio_packets() {
    let dir = common::scratch_dir("leaks-audio-packets");
    let input = dir.join("in.mkv");
    // 60 s of uncompressed audio (5.8 MB of packets) beside 12 tiny frames, one per 5 s.
    make_clip(&input, &ClipSpec { frames: 12, rate: (1, 5), audio: Some((ClipAudio::Pcm, 60.0)), ..ClipSpec::new(16, 16) });
    let audio_bytes = std::fs::metadata(&input).unwrap().len();
    assert!(audio_bytes > 5_000_000, "{audio_bytes}");
    let decode = || {
        let mut decoder = VideoDecoder::open(&input, &DecodeOptions::default()).unwrap();
        let mut frames = 0;
        while decoder.next_frame().unwrap().is_some() {
            frames += 1;
        }
        assert_eq!(frames, 12);
    };
    decode(); // the libraries' one-time set-up
    let before = resident_bytes();
    for _ in 0..5 {
        decode();
    }
    // Leaking, the 5 decodes kept 33 MB (5 × the audio); fixed, 24 KB.
    let grown = resident_bytes().saturating_sub(before);
    eprintln!("5 decodes kept {grown} bytes");
    assert!(grown < audio_bytes, "5 decodes kept {grown} bytes (the audio is {audio_bytes})");
}
