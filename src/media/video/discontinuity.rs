//! Timestamp discontinuities, made continuous as FFmpeg's own command line makes them.
//!
//! Some formats declare that their timestamps may jump (`AVFMT_TS_DISCONT`: MPEG-TS, among
//! others): two transport streams concatenated byte-wise (`cat a.ts b.ts`, what broadcast
//! captures and camera splits are) restart their clock in the middle of the file. For those
//! formats, a packet whose decoding timestamp lies more than [`JUMP_SECONDS`] away from where its
//! stream was heading, or goes back by more than [`BACKWARD_SECONDS`], starts a new stretch: an
//! offset that lands it where its stream was heading is added to it and to the stream's later
//! packets (ffmpeg's `ts_discontinuity_detect`, with its default `-dts_delta_threshold 10`).
//!
//! FFmpeg keeps one offset for the whole file, found by whichever stream jumps first: when the
//! first part's audio outlasts its pictures, the second part's audio jumps first and the
//! pictures pause for that long at the join (half a second on a short clip). Here each audio and
//! video stream keeps its own offset, so neither pauses; the two stay within the difference of
//! their lengths in the first part (an audio packet's length, usually). Sparse streams
//! (subtitles, data), whose gaps say nothing, take the video stream's offset.
//!
//! The decoder and the copier of the other streams read the file through two demuxers, each
//! with its own mender: a stream's offsets depend only on its own packets (and the video's), so
//! both find the same jumps.

use ffmpeg_next as ffmpeg;

use ffmpeg::{media, Rational, Rescale};

/// A jump forward larger than this (seconds) is a discontinuity.
pub const JUMP_SECONDS: f64 = 10.0;
/// A step back larger than this (seconds) is a discontinuity.
pub const BACKWARD_SECONDS: f64 = 0.1;

/// Microseconds: the unit offsets are kept in, as FFmpeg keeps them (`AV_TIME_BASE`).
const MICROSECONDS: Rational = Rational(1, 1_000_000);

/// How a stream's offset is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// From its own packets (audio, video: their timestamps run without gaps).
    Own,
    /// The offset of this other stream (subtitles and data follow the video).
    Follows(usize),
}

/// One stream's state, in microseconds after mending.
#[derive(Clone, Copy, Default)]
struct StreamState {
    /// Added to the stream's packets from its latest discontinuity on.
    offset: i64,
    /// The decoding timestamp its next packet should have, and that of its latest packet
    /// (presentation timestamps where there are none); `None` before its first packet.
    heading: Option<(i64, i64)>,
}

/// Shifts packets' timestamps past the discontinuities of a format that declares them.
pub struct TimestampMender {
    /// Whether the format declares discontinuities (otherwise packets pass untouched).
    enabled: bool,
    time_bases: Vec<Rational>,
    clocks: Vec<Clock>,
    states: Vec<StreamState>,
    /// Where each discontinuity was found: its stream, and seconds on that stream's mended clock.
    jumps: Vec<(usize, f64)>,
}

impl TimestampMender {
    /// A mender for the packets of `input`, whose video stream `video` the others follow.
    pub fn new(input: &ffmpeg::format::context::Input, video: usize) -> TimestampMender {
        // SAFETY: `input` is an opened demuxer, so its `iformat` is a valid static
        // AVInputFormat of libavformat; only its plain int `flags` is read.
        let flags = unsafe { (*input.format().as_ptr()).flags };
        let (time_bases, clocks) = input
            .streams()
            .map(|s| {
                let clock = match s.parameters().medium() {
                    media::Type::Audio | media::Type::Video => Clock::Own,
                    _ => Clock::Follows(video),
                };
                (s.time_base(), clock)
            })
            .unzip();
        Self::with_streams(flags & ffmpeg::ffi::AVFMT_TS_DISCONT != 0, time_bases, clocks)
    }

    /// A mender for streams of these time bases and clocks (`enabled`: the format declares
    /// discontinuities).
    pub fn with_streams(enabled: bool, time_bases: Vec<Rational>, clocks: Vec<Clock>) -> TimestampMender {
        let states = vec![StreamState::default(); time_bases.len()];
        TimestampMender { enabled, time_bases, clocks, states, jumps: Vec::new() }
    }

    /// Mends one packet (of any stream), in the order the demuxer gave it.
    pub fn mend(&mut self, packet: &mut ffmpeg::Packet) {
        let mended = self.mend_timestamps(packet.stream(), packet.dts(), packet.pts(), packet.duration());
        packet.set_dts(mended.0);
        packet.set_pts(mended.1);
    }

    /// [`TimestampMender::mend`] on a packet's stream index, timestamps and duration (in the
    /// stream's time base): the timestamps to give it.
    pub fn mend_timestamps(
        &mut self,
        stream: usize,
        dts: Option<i64>,
        pts: Option<i64>,
        duration: i64,
    ) -> (Option<i64>, Option<i64>) {
        let Some(&time_base) = self.time_bases.get(stream).filter(|_| self.enabled) else { return (dts, pts) };
        let Some(raw) = dts.or(pts) else { return (dts, pts) };
        let to_us = |ts: i64| rescale(ts, time_base, MICROSECONDS);
        let offset = match self.clocks[stream] {
            Clock::Own => {
                let state = &mut self.states[stream];
                let now = to_us(raw).saturating_add(state.offset);
                if let Some((next, latest)) = state.heading {
                    let delta = now.saturating_sub(next);
                    let jumped = delta.unsigned_abs() > seconds_us(JUMP_SECONDS).unsigned_abs()
                        || now.saturating_add(seconds_us(BACKWARD_SECONDS)) < latest;
                    if jumped {
                        state.offset = state.offset.saturating_sub(delta);
                        self.jumps.push((stream, next as f64 / 1e6));
                    }
                }
                let now = to_us(raw).saturating_add(state.offset);
                state.heading = Some((now.saturating_add(to_us(duration.max(0)).max(0)), now));
                state.offset
            }
            Clock::Follows(reference) => self.states.get(reference).map_or(0, |s| s.offset),
        };
        let shift = rescale(offset, MICROSECONDS, time_base);
        (dts.map(|t| t.saturating_add(shift)), pts.map(|t| t.saturating_add(shift)))
    }

    /// Number of discontinuities found so far in `stream`.
    pub fn discontinuities(&self, stream: usize) -> usize {
        self.jumps.iter().filter(|(s, _)| *s == stream).count()
    }

    /// Where the first discontinuity of `stream` was (seconds on its clock, after mending).
    pub fn first_jump_seconds(&self, stream: usize) -> Option<f64> {
        self.jumps.iter().find(|(s, _)| *s == stream).map(|(_, at)| *at)
    }
}

fn seconds_us(seconds: f64) -> i64 {
    (seconds * 1e6) as i64
}

/// `ts` from time base `from` to `to`, rounded to nearest (FFmpeg's `av_rescale_q`); left as
/// it is for a time base that is not a positive fraction.
fn rescale(ts: i64, from: Rational, to: Rational) -> i64 {
    let usable = |r: Rational| r.numerator() > 0 && r.denominator() > 0;
    if usable(from) && usable(to) { ts.rescale(from, to) } else { ts }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: Rational = Rational(1, 90_000);

    fn video_only() -> TimestampMender {
        TimestampMender::with_streams(true, vec![TS], vec![Clock::Own])
    }

    /// Packets of one 25 fps stream (3600 ticks each): `dts` in, mended `dts` out.
    fn mend_all(mender: &mut TimestampMender, dts: &[i64]) -> Vec<i64> {
        dts.iter().map(|&d| mender.mend_timestamps(0, Some(d), Some(d), 3600).0.unwrap()).collect()
    }

    #[test]
    fn a_restarted_clock_continues_where_the_stream_was_heading() {
        let mut mender = video_only();
        // 1.4 s to 1.6 s, then the second file's clock starts again at 1.4 s.
        let first: Vec<i64> = (0..6).map(|i| 126_000 + 3600 * i).collect();
        let mended = mend_all(&mut mender, &[first, vec![126_000, 129_600]].concat());
        let expected: Vec<i64> = (0..8).map(|i| 126_000 + 3600 * i).collect();
        assert_eq!(mended, expected);
        assert_eq!(mender.discontinuities(0), 1);
        assert!((mender.first_jump_seconds(0).unwrap() - 147_600.0 / 90_000.0).abs() < 1e-6);
    }

    #[test]
    fn a_small_step_back_is_not_a_discontinuity() {
        let mut mender = video_only();
        // Back by 0.08 s (a reordered or repeated packet): left as it is, as FFmpeg leaves it.
        assert_eq!(mend_all(&mut mender, &[126_000, 129_600, 133_200, 126_000]), vec![126_000, 129_600, 133_200, 126_000]);
        assert_eq!(mender.discontinuities(0), 0);
    }

    #[test]
    fn a_jump_forward_past_the_threshold_is_closed_and_a_small_gap_is_kept() {
        let mut mender = video_only();
        // A 2 s gap (a dropped stretch) is kept; a 1-hour jump is closed.
        let mended = mend_all(&mut mender, &[0, 3600, 183_600, 187_200, 187_200 + 324_000_000, 190_800 + 324_000_000]);
        assert_eq!(mended, vec![0, 3600, 183_600, 187_200, 190_800, 194_400]);
        assert_eq!(mender.discontinuities(0), 1);
    }

    #[test]
    fn audio_and_video_each_continue_and_subtitles_follow_the_video() {
        let audio = Rational(1, 48_000);
        let clocks = vec![Clock::Own, Clock::Own, Clock::Follows(0)];
        let mut mender = TimestampMender::with_streams(true, vec![TS, audio, TS], clocks);
        // The first file: 5 video frames from 1.4 s (to 1.6 s), 10 audio packets of 1024
        // samples from 1.4 s (to 1.613 s): its audio outlasts its pictures.
        for i in 0..10 {
            if i < 5 {
                mender.mend_timestamps(0, Some(126_000 + 3600 * i), None, 3600);
            }
            mender.mend_timestamps(1, Some(67_200 + 1024 * i), None, 1024);
        }
        // The second file's audio comes first: it continues the first's, 1.613 s.
        assert_eq!(mender.mend_timestamps(1, Some(67_200), None, 1024).0, Some(67_200 + 10_240));
        // A subtitle before the video's jump keeps its time.
        assert_eq!(mender.mend_timestamps(2, Some(126_000), None, 0).0, Some(126_000));
        // The video continues its own timeline at 1.6 s: no pause at the join.
        assert_eq!(mender.mend_timestamps(0, Some(126_000), None, 3600).0, Some(144_000));
        // And the subtitles now follow its offset.
        assert_eq!(mender.mend_timestamps(2, Some(126_000), None, 0).0, Some(144_000));
        assert_eq!((mender.discontinuities(0), mender.discontinuities(1), mender.discontinuities(2)), (1, 1, 0));
    }

    #[test]
    fn formats_without_discontinuities_pass_untouched() {
        let mut mender = TimestampMender::with_streams(false, vec![TS], vec![Clock::Own]);
        assert_eq!(mend_all(&mut mender, &[126_000, 129_600, 0]), vec![126_000, 129_600, 0]);
        assert_eq!(mender.discontinuities(0), 0);
    }
}
