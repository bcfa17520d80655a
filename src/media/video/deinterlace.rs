//! Deinterlacing on the way in (`--deinterlace`). An interlaced frame (1080i broadcast, DV)
//! holds two fields taken half a frame apart. Painted as one picture, every moving edge keeps
//! its combing, and the optimiser paints the combs. FFmpeg's bwdif filter (through
//! libavfilter) rebuilds the frames from their fields:
//! - `frame`: one frame out per frame in, with the same timestamp; frames not flagged
//!   interlaced pass unchanged, so mixed footage is safe;
//! - `field`: one frame out per field, at the field's time (50i becomes 50p: twice the frames,
//!   motion as smooth as the broadcast's), for a stream whose field order says it is
//!   interlaced; any other stream is treated as with `frame`.

use std::collections::VecDeque;

use ffmpeg_next as ffmpeg;
use ffmpeg::{filter, frame, Rational, Rescale};

/// What is done with interlaced frames (`--deinterlace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Deinterlace {
    /// Painted as they are, their two fields together (combing on motion).
    Off,
    /// Each frame rebuilt from its fields (bwdif), one frame per frame.
    #[default]
    Frame,
    /// One frame per field, at twice the frame rate (for a stream flagged interlaced).
    Field,
}

/// A bwdif filter graph for frames of one format and size, with what it has given back but
/// not yet been taken.
pub(crate) struct Deinterlacer {
    graph: filter::Graph,
    /// The format and size the graph was made for.
    shape: (ffmpeg::format::Pixel, u32, u32),
    /// The time base of the frames going in, which those coming out are given back in.
    time_base: Rational,
    /// Frames out of the graph this one took over from ([`Deinterlacer::succeeding`]), not yet taken.
    pending: VecDeque<frame::Video>,
    flushed: bool,
}

/// What [`Deinterlacer::pull`] got.
pub(crate) enum Pulled {
    /// A frame, now in the caller's frame.
    Frame,
    /// Nothing until another frame goes in.
    NeedsInput,
    /// Nothing more: the graph was flushed and has given everything.
    Ended,
}

impl Deinterlacer {
    /// A graph for frames like `first`, whose timestamps are in `time_base`: one frame out per
    /// frame flagged interlaced, or with `per_field` two per frame, whatever its flag.
    pub(crate) fn new(first: &frame::Video, time_base: Rational, per_field: bool) -> Result<Deinterlacer, ffmpeg::Error> {
        let shape = (first.format(), first.width(), first.height());
        let aspect = first.aspect_ratio();
        let aspect = if aspect.numerator() > 0 && aspect.denominator() > 0 { aspect } else { Rational::new(1, 1) };
        let args = format!(
            "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
            shape.1,
            shape.2,
            ffmpeg::ffi::AVPixelFormat::from(shape.0) as i32,
            time_base.numerator(),
            time_base.denominator().max(1),
            aspect.numerator(),
            aspect.denominator()
        );
        let mut graph = filter::Graph::new();
        let not_built = || ffmpeg::Error::FilterNotFound;
        graph.add(&filter::find("buffer").ok_or_else(not_built)?, "in", &args)?;
        graph.add(&filter::find("buffersink").ok_or_else(not_built)?, "out", "")?;
        // send_frame: one frame out per frame in, deint=interlaced: only frames flagged so;
        // send_field, deint=all: two per frame, so that the rate stays even.
        let bwdif = match per_field {
            false => "bwdif=mode=send_frame:parity=auto:deint=interlaced",
            true => "bwdif=mode=send_field:parity=auto:deint=all",
        };
        graph.output("in", 0)?.input("out", 0)?.parse(bwdif)?;
        graph.validate()?;
        Ok(Deinterlacer { graph, shape, time_base, pending: VecDeque::new(), flushed: false })
    }

    /// Whether `frame` has the format and size this graph takes.
    pub(crate) fn takes(&self, frame: &frame::Video) -> bool {
        self.shape == (frame.format(), frame.width(), frame.height())
    }

    /// Puts a decoded frame in (its data is taken: `frame` is left empty).
    pub(crate) fn push(&mut self, frame: &mut frame::Video) -> Result<(), ffmpeg::Error> {
        self.graph.get("in").expect("the graph has its input").source().add(frame)
    }

    /// Says the input ended: the frames the filter holds back (it looks one frame ahead) come out.
    pub(crate) fn flush(&mut self) -> Result<(), ffmpeg::Error> {
        if !self.flushed {
            self.flushed = true;
            self.graph.get("in").expect("the graph has its input").source().flush()?;
        }
        Ok(())
    }

    /// A graph for frames like `first` that takes over from `previous` (the input changed shape
    /// mid-stream): `previous` is flushed, and every frame it still gives comes out first.
    pub(crate) fn succeeding(
        mut previous: Deinterlacer,
        first: &frame::Video,
        time_base: Rational,
        per_field: bool,
    ) -> Result<Deinterlacer, ffmpeg::Error> {
        previous.flush()?;
        let mut next = Deinterlacer::new(first, time_base, per_field)?;
        let mut out = frame::Video::empty();
        while let Pulled::Frame = previous.pull(&mut out)? {
            next.pending.push_back(std::mem::replace(&mut out, frame::Video::empty()));
        }
        Ok(next)
    }

    /// The next deinterlaced frame, into `out`, its `pts` in the time base of the frames that
    /// went in (the filter's own is finer: it could also give one frame per field).
    pub(crate) fn pull(&mut self, out: &mut frame::Video) -> Result<Pulled, ffmpeg::Error> {
        if let Some(frame) = self.pending.pop_front() {
            *out = frame;
            return Ok(Pulled::Frame);
        }
        self.sink_frame(out)
    }

    fn sink_frame(&mut self, out: &mut frame::Video) -> Result<Pulled, ffmpeg::Error> {
        let mut sink = self.graph.get("out").expect("the graph has its output");
        let mut sink = sink.sink();
        match sink.frame(out) {
            Ok(()) => {
                let filter_time_base = sink.time_base();
                let pts = out.pts().map(|pts| pts.rescale(filter_time_base, self.time_base));
                out.set_pts(pts);
                Ok(Pulled::Frame)
            }
            Err(ffmpeg::Error::Eof) => Ok(Pulled::Ended),
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => Ok(Pulled::NeedsInput),
            Err(e) => Err(e),
        }
    }
}
