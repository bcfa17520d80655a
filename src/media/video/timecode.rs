//! SMPTE timecode: the source's start timecode (a mov/mp4 `tmcd` track, or a `timecode` tag on
//! the video stream or the container, as FFmpeg's demuxers expose them) and the timecode of the
//! output's first frame, moved on by the frames `--start` skipped, so the stylized clip conforms
//! on the editor's timeline. The arithmetic (drop-frame counting included) is libavutil's.

use std::ffi::{CStr, CString};

use ffmpeg_next as ffmpeg;

/// The start timecode the file states, looked up on the video stream, then the container, then
/// any other stream (a tmcd track's own tag).
pub fn of_input(input: &ffmpeg::format::context::Input, video_stream: usize) -> Option<String> {
    let tag = |metadata: ffmpeg::DictionaryRef| metadata.get("timecode").map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    input
        .stream(video_stream)
        .and_then(|s| tag(s.metadata()))
        .or_else(|| tag(input.metadata()))
        .or_else(|| input.streams().find_map(|s| tag(s.metadata())))
}

/// `start` moved on by `frames` frames at `rate` (frames per second as a fraction), written as
/// FFmpeg writes timecodes (`HH:MM:SS:FF`, `;` before the frames for drop-frame). `None` when
/// `start` is not a timecode at that rate.
pub fn offset(start: &str, rate: (i32, i32), frames: i64) -> Option<String> {
    let text = CString::new(start).ok()?;
    let frames = i32::try_from(frames).ok()?;
    // SAFETY: AVTimecode is a plain C struct (integers and an AVRational) for which all-zero
    // bytes are valid, and av_timecode_init_from_string fills it in (used only if that succeeds); `text` is NUL-terminated
    // and outlives the calls, and the log context may be null. av_timecode_make_string writes
    // at most AV_TIMECODE_STR_SIZE bytes, NUL included, into `buffer`, which is that long, and
    // returns it, so CStr::from_ptr reads a NUL-terminated string inside `buffer`.
    unsafe {
        let mut timecode: ffmpeg::ffi::AVTimecode = std::mem::zeroed();
        let rate = ffmpeg::ffi::AVRational { num: rate.0, den: rate.1 };
        if ffmpeg::ffi::av_timecode_init_from_string(&mut timecode, rate, text.as_ptr(), std::ptr::null_mut()) < 0 {
            return None;
        }
        let mut buffer = [0 as libc::c_char; ffmpeg::ffi::AV_TIMECODE_STR_SIZE as usize];
        ffmpeg::ffi::av_timecode_make_string(&timecode, buffer.as_mut_ptr(), frames);
        Some(CStr::from_ptr(buffer.as_ptr()).to_string_lossy().into_owned())
    }
}
