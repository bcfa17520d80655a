//! Runs the job the command line built, with a progress display on stderr unless `--quiet`,
//! a summary line when it is done, and Ctrl-C turned into a clean stop (a second one quits at
//! once); returns the process's exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use stylize_video::Error;
use stylize_video::jobs::batch::{run_batch, BatchItem, BatchProgress, FileResult, Outcome};
use stylize_video::jobs::cache::StylizerCache;
use stylize_video::jobs::pipeline::{run_video, VideoJob, VideoReport};
use stylize_video::jobs::preview::{run_preview, PreviewFrames, PreviewJob};
use stylize_video::jobs::progress::{FrameRecord, PreviewProgress, VideoProgress};
use stylize_video::jobs::segment::{assemble, run_segment, Assembled, SegmentSpec};
use stylize_video::jobs::still::{run_still, StillJob, StillReport};
use stylize_video::jobs::workdir::WorkDir;
use stylize_video::media::video::{DecodeNotes, VideoInfo};
use stylize_video::progress::{NoProgress, Progress};

use super::build::Job;
use super::display::{CellBar, FrameBar, IterationBar};

/// Runs `job`: 0 when it succeeded, 130 when Ctrl-C stopped it, 1 on an error (reported on
/// stderr in one line).
pub fn run(job: Job, quiet: bool) -> ExitCode {
    let result = match job {
        Job::Still(job) => run_still_job(&job, quiet),
        Job::Video(job) => run_video_job(&job, quiet),
        Job::Preview(job) => run_preview_job(&job, quiet),
        Job::Segment { job, segment, overlap } => run_segment_job(&job, segment, overlap, quiet),
        Job::Assemble(job) => run_assemble_job(&job, quiet),
        Job::Batch { items, directories } => return run_batch_job(&items, &directories, quiet),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ Error::Interrupted(_)) => {
            eprintln!("stylize-video: {e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("stylize-video: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_still_job(job: &StillJob, quiet: bool) -> Result<(), Error> {
    let mut bar = (!quiet).then(|| IterationBar::new(job.iterations));
    let progress: &mut dyn Progress = match bar.as_mut() {
        Some(bar) => bar,
        None => &mut NoProgress,
    };
    let result = run_still(job, progress);
    if let Some(bar) = &bar {
        bar.finish();
    }
    let report = result?;
    if !quiet {
        print_still_summary(&report);
    }
    Ok(())
}

fn print_still_summary(report: &StillReport) {
    eprintln!(
        "wrote {} ({}×{}, {} iterations, {} evaluation{} of J, {}, {:.1} s, J {:.4e} = α·{:.4e} + β·{:.4e} + γ·{:.4e})",
        report.output.display(),
        report.width,
        report.height,
        report.iterations,
        report.evaluations,
        if report.evaluations == 1 { "" } else { "s" },
        report.options.precision,
        report.seconds,
        report.terms.total,
        report.terms.content,
        report.terms.style,
        report.terms.tv
    );
    if report.input_alpha && !report.output_alpha {
        eprintln!("note: the input's alpha channel is not written: JPEG has none (a .png output keeps it); the output is opaque");
    }
}

/// Set by the first Ctrl-C.
static STOP: AtomicBool = AtomicBool::new(false);

/// First Ctrl-C: finish the current write and stop cleanly; a second one: leave at once.
fn stop_on_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstylize-video: stopping after the current step (Ctrl-C again to quit at once)");
    });
}

fn run_video_job(job: &VideoJob, quiet: bool) -> Result<(), Error> {
    stop_on_ctrl_c();
    let mut bar = (!quiet).then(FrameBar::new);
    let progress: &mut dyn VideoProgress = match bar.as_mut() {
        Some(bar) => bar,
        None => &mut NoProgress,
    };
    let result = run_video(job, progress, &STOP);
    if let Some(bar) = &bar {
        bar.finish();
    }
    let report = result?;
    if !quiet {
        print_video_summary(&report);
    }
    Ok(())
}

fn print_video_summary(report: &VideoReport) {
    let t = &report.totals;
    let speed = match (t.first_frame_seconds, t.warm_frame_seconds) {
        (Some(first), Some(warm)) => format!("; first frame {first:.1} s, then {warm:.1} s per frame"),
        (None, Some(warm)) => format!("; {warm:.1} s per frame"),
        (Some(first), None) => format!("; {first:.1} s"),
        (None, None) => String::new(),
    };
    // Each pass after the first paints every frame again.
    let later: Vec<f64> = t.passes.iter().skip(1).filter(|p| p.computed_frames > 0).map(|p| p.seconds / p.computed_frames as f64).collect();
    let speed = match later.len() {
        0 => speed,
        n => format!("{speed}; {n} more passes, {:.1} s per frame each", later.iter().sum::<f64>() / n as f64),
    };
    let mut resumed = if t.resumed_frames > 0 { format!(", {} resumed", t.resumed_frames) } else { String::new() };
    if t.repaired_frames > 0 {
        resumed += &format!(", {} recomputed from a damaged work directory", t.repaired_frames);
    }
    if t.kept_beyond > 0 {
        eprintln!(
            "note: kept {}: it holds {} finished frames after this run's last (run without --max-frames to use them)",
            WorkDir::path_for(&report.output.path).display(),
            t.kept_beyond
        );
    }
    eprintln!(
        "wrote {} ({} frames{resumed}, {}×{}, {}, {:.1} s{speed})",
        report.output.path.display(),
        t.frames,
        report.output.width,
        report.output.height,
        report.options.precision,
        t.seconds
    );
    for note in &report.output.notes {
        eprintln!("note: {note}");
    }
    for note in decode_notes(&t.decoded, &report.input) {
        eprintln!("note: {note}");
    }
    if t.decoder_warnings > 0 {
        let kinds: Vec<String> = t.decoder_warning_kinds.iter().take(3).map(|k| format!("{}× \"{}\"", k.count, k.message)).collect();
        let more = if t.decoder_warning_kinds.len() > 3 { ", … (see --report)" } else { "" };
        eprintln!("note: the input is damaged: the decoder reported {} problems ({}{more})", t.decoder_warnings, kinds.join(", "));
    }
}

fn run_segment_job(job: &VideoJob, segment: SegmentSpec, overlap: u64, quiet: bool) -> Result<(), Error> {
    stop_on_ctrl_c();
    let mut bar = (!quiet).then(|| FrameBar::new().with_prefix(format!("segment {}/{}  ", segment.index, segment.count)));
    let progress: &mut dyn VideoProgress = match bar.as_mut() {
        Some(bar) => bar,
        None => &mut NoProgress,
    };
    let result = run_segment(job, segment, overlap, progress, &STOP, &StylizerCache::default());
    if let Some(bar) = &bar {
        bar.finish();
    }
    let report = result?;
    if !quiet {
        let (run, keep) = (report.plan.run, report.plan.keep);
        eprintln!(
            "segment {}/{}: frames {}–{} of {} stylized ({} kept: {}–{}{}) in {:.1} s; {}",
            segment.index,
            segment.count,
            run.start + 1,
            run.end,
            report.clip_frames,
            keep.len(),
            keep.start + 1,
            keep.end,
            if report.resumed_frames > 0 { format!(", {} resumed", report.resumed_frames) } else { String::new() },
            report.seconds,
            if report.all_segments_done { "all segments are done: run --assemble" } else { "other segments are still to do" }
        );
    }
    Ok(())
}

fn run_assemble_job(job: &VideoJob, quiet: bool) -> Result<(), Error> {
    match assemble(job)? {
        Assembled::AlreadyComplete if !quiet => eprintln!("{} is already complete", job.output.display()),
        Assembled::Written(report) if !quiet => eprintln!(
            "wrote {} ({} frames from {} segments, {} cross-faded, {}×{}, {:.1} s)",
            report.output.path.display(),
            report.frames.len(),
            report.segments,
            report.blended_frames,
            report.output.width,
            report.output.height,
            report.seconds
        ),
        _ => {}
    }
    Ok(())
}

fn run_preview_job(job: &PreviewJob, quiet: bool) -> Result<(), Error> {
    let mut bar = (!quiet).then(CellBar::new);
    let progress: &mut dyn PreviewProgress = match bar.as_mut() {
        Some(bar) => bar,
        None => &mut NoProgress,
    };
    let result = run_preview(job, progress);
    if let Some(bar) = &bar {
        bar.finish();
    }
    let report = result?;
    if !quiet {
        let l = &report.layout;
        eprintln!(
            "wrote {} ({} rows × {} columns of {}×{} cells, {} iterations each, {:.1} s)",
            report.output.display(),
            l.rows,
            l.columns,
            l.cell_width,
            l.cell_height,
            report.iterations,
            report.seconds
        );
        if let PreviewFrames::Spread(asked) = job.frames {
            if l.columns < asked {
                eprintln!("note: --preview-frames {asked}: the columns' times fall on {} different frames, each shown once", l.columns);
            }
        }
    }
    Ok(())
}

/// Runs a batch: one progress display with "file i/n" in it, a line per finished or failed
/// file, and a closing summary; exits non-zero when any file failed (130 after Ctrl-C).
fn run_batch_job(items: &[BatchItem], directories: &[PathBuf], quiet: bool) -> ExitCode {
    stop_on_ctrl_c();
    let mut display = BatchDisplay { quiet, bar: None };
    let report = match run_batch(items, directories, &mut display, &STOP) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("stylize-video: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let failed: Vec<&FileResult> = report.failed().collect();
    let done = report.succeeded().count();
    let not_started = items.len() - report.files.len();
    if report.interrupted {
        eprintln!("stylize-video: batch interrupted: {done} of {} files done, {not_started} not started", items.len());
        return ExitCode::from(130);
    }
    if failed.is_empty() {
        if !quiet {
            let skipped = report.files.iter().filter(|f| matches!(f.result, Ok(Outcome::AlreadyDone))).count();
            let before = if skipped > 0 { format!(" ({skipped} by an earlier run)") } else { String::new() };
            eprintln!("stylize-video: all {} files done{before}", items.len());
        }
        return ExitCode::SUCCESS;
    }
    let names: Vec<String> = failed.iter().map(|f| f.input.display().to_string()).collect();
    eprintln!("stylize-video: {} of {} files failed: {}", failed.len(), items.len(), names.join(", "));
    ExitCode::FAILURE
}

/// A batch's progress: the file at hand's frame (or iteration) display, prefixed "file i/n
/// name · ", replaced when the next file starts; a line when each file ends.
struct BatchDisplay {
    quiet: bool,
    bar: Option<FileBar>,
}

enum FileBar {
    Video(Box<FrameBar>),
    Still(IterationBar),
}

impl BatchDisplay {
    fn finish_bar(&mut self) {
        match self.bar.take() {
            Some(FileBar::Video(bar)) => bar.finish(),
            Some(FileBar::Still(bar)) => bar.finish(),
            None => {}
        }
    }
}

impl Progress for BatchDisplay {
    fn iteration(&mut self, done: usize, total: usize, cost: f64) {
        match &mut self.bar {
            Some(FileBar::Video(bar)) => bar.iteration(done, total, cost),
            Some(FileBar::Still(bar)) => bar.iteration(done, total, cost),
            None => {}
        }
    }

    fn should_stop(&self) -> bool {
        STOP.load(Ordering::SeqCst)
    }
}

impl VideoProgress for BatchDisplay {
    fn begin(&mut self, total: Option<u64>) {
        if let Some(FileBar::Video(bar)) = &mut self.bar {
            bar.begin(total);
        }
    }

    fn frame(&mut self, record: &FrameRecord) {
        if let Some(FileBar::Video(bar)) = &mut self.bar {
            bar.frame(record);
        }
    }
}

impl BatchProgress for BatchDisplay {
    fn file(&mut self, index: usize, count: usize, item: &BatchItem) {
        self.finish_bar();
        if self.quiet {
            return;
        }
        let name = item.input().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let prefix = format!("file {}/{count} {name} · ", index + 1);
        self.bar = Some(match item {
            BatchItem::Video(_) => FileBar::Video(Box::new(FrameBar::new().with_prefix(prefix))),
            BatchItem::Still(job) => FileBar::Still(IterationBar::new(job.iterations).with_prefix(prefix)),
        });
    }

    fn file_done(&mut self, index: usize, count: usize, result: &FileResult) {
        self.finish_bar();
        match &result.result {
            Ok(outcome) if !self.quiet => {
                eprint!("file {}/{count}: ", index + 1);
                match outcome {
                    Outcome::Still(report) => print_still_summary(report),
                    Outcome::Video(report) => print_video_summary(report),
                    Outcome::AlreadyDone => {
                        eprintln!("{} already exists: skipped (-y to stylize it again)", result.output.display())
                    }
                }
            }
            Ok(_) => {}
            Err(e @ Error::Interrupted(_)) => eprintln!("stylize-video: {}: {e}", result.input.display()),
            Err(_) => eprintln!("stylize-video: error: {}", result.error_line().unwrap_or_default()),
        }
    }
}

/// One line each for what the input held that the output does not keep as it was.
fn decode_notes(notes: &DecodeNotes, input: &VideoInfo) -> Vec<String> {
    let mut lines = Vec::new();
    if notes.beyond_display_frames > 0 {
        lines.push(format!(
            "{} scene-linear frames hold values outside 0..1 (highlights above 1): painted clipped after the sRGB transfer function, and added back in an .exr output (others keep them clipped)",
            notes.beyond_display_frames
        ));
    }
    if notes.interlaced_frames > 0 {
        lines.push(format!(
            "{} frames are interlaced: painted as progressive pictures, their fields together (--deinterlace off; drop it to deinterlace them)",
            notes.interlaced_frames
        ));
    }
    if notes.deinterlaced_frames > 0 && notes.frame_per_field {
        lines.push(format!(
            "{} interlaced frames made {} frames, one per field at twice the frame rate (bwdif; --deinterlace frame keeps one per frame)",
            notes.deinterlaced_frames,
            2 * notes.deinterlaced_frames
        ));
    } else if notes.deinterlaced_frames > 0 {
        lines.push(format!(
            "{} frames are interlaced: each was rebuilt from its two fields before painting (bwdif; --deinterlace off paints them as they are)",
            notes.deinterlaced_frames
        ));
    }
    if let (n @ 1.., Some((w, h))) = (notes.reshaped_frames, notes.first_other_size) {
        lines.push(format!(
            "{n} frames are of another shape than the first ({w}×{h} instead of {}×{}): scaled to the same size, their aspect ratio not kept",
            input.coded_width, input.coded_height
        ));
    }
    if notes.timestamp_discontinuities > 0 {
        lines.push(format!(
            "the input's timestamps jump {} time(s) (first at {:.3} s: concatenated MPEG-TS?); the output's timeline continues across them, as FFmpeg's does",
            notes.timestamp_discontinuities,
            notes.first_discontinuity_seconds.unwrap_or(0.0)
        ));
    }
    lines
}
