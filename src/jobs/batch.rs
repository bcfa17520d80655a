//! Several inputs in one run: each is its own still or video job (with its own output, report
//! and resumable work directory), run one after the other with one [`StylizerCache`], so VGG16
//! is loaded once and the style targets are computed once per distinct working size. A file
//! that fails is reported and the others are still done; the outcome of every file is in the
//! [`BatchReport`]. Only an interruption (Ctrl-C) stops the batch early; the same batch run
//! again skips the files whose output exists and resumes the video that was interrupted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::jobs::cache::StylizerCache;
use crate::jobs::pipeline::{run_video_with, VideoJob, VideoReport};
use crate::jobs::progress::VideoProgress;
use crate::jobs::still::{run_still_with, StillJob, StillReport};
use crate::media::paths::{self, Named};
use crate::progress::NoProgress;

/// One input's job. (A batch holds a handful; their sizes do not matter.)
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum BatchItem {
    Still(StillJob),
    Video(VideoJob),
}

impl BatchItem {
    pub fn input(&self) -> &Path {
        match self {
            BatchItem::Still(job) => &job.content,
            BatchItem::Video(job) => &job.input,
        }
    }

    pub fn output(&self) -> &Path {
        match self {
            BatchItem::Still(job) => &job.output,
            BatchItem::Video(job) => &job.output,
        }
    }

    /// Whether the output exists and may not be replaced (no `-y`): an earlier run's.
    fn already_done(&self) -> bool {
        match self {
            BatchItem::Still(job) => job.output.exists() && !job.overwrite,
            BatchItem::Video(job) => job.output.exists() && !job.overwrite,
        }
    }

    fn reads(&self) -> Vec<Named> {
        match self {
            BatchItem::Still(job) => job.reads(),
            BatchItem::Video(job) => job.reads(),
        }
    }

    fn writes(&self) -> Vec<Named> {
        match self {
            BatchItem::Still(job) => job.writes(),
            BatchItem::Video(job) => job.writes(),
        }
    }
}

/// Where one input of a batch writes: its output beside it (as a single run would), or under
/// the `-o` directory; its report and frames under theirs.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchPlace {
    pub output: PathBuf,
    pub report: Option<PathBuf>,
    pub frames_dir: Option<PathBuf>,
}

impl BatchPlace {
    /// `beside_input` is the output a single run would write. A file's output is known by its
    /// name; an image sequence's by its directory (`shots/f_%04d.png` →
    /// `shots-stylized/f_%04d.png`), which an output directory keeps.
    pub fn new(
        input: &Path,
        beside_input: &Path,
        output_dir: Option<&Path>,
        report_dir: Option<&Path>,
        frames_dir: Option<&Path>,
    ) -> BatchPlace {
        let name = beside_input.file_name().map(PathBuf::from).unwrap_or_default();
        let sequence_dir = crate::media::sequence::is_sequence(input)
            .then(|| beside_input.parent().and_then(Path::file_name).map(PathBuf::from))
            .flatten();
        let (relative, label, stem) = match &sequence_dir {
            Some(directory) => (directory.join(&name), directory.clone(), directory.clone()),
            None => (name.clone(), name.clone(), beside_input.file_stem().map(PathBuf::from).unwrap_or_default()),
        };
        BatchPlace {
            output: output_dir.map_or(beside_input.to_path_buf(), |dir| dir.join(&relative)),
            report: report_dir.map(|dir| dir.join(format!("{}.json", label.display()))),
            frames_dir: frames_dir.map(|dir| dir.join(&stem)),
        }
    }
}

/// What a finished input produced.
#[derive(Debug)]
pub enum Outcome {
    Still(Box<StillReport>),
    Video(Box<VideoReport>),
    /// A file whose output was already there (and no `--overwrite`): done by an earlier run,
    /// so that running an interrupted batch again resumes it.
    AlreadyDone,
}

/// One input and how it went.
#[derive(Debug)]
pub struct FileResult {
    pub input: PathBuf,
    pub output: PathBuf,
    pub result: Result<Outcome>,
}

impl FileResult {
    /// The failure as one line that names the input (most errors already name a file; those
    /// that do not name this input get it in front).
    pub fn error_line(&self) -> Option<String> {
        let e = self.result.as_ref().err()?;
        let text = e.to_string();
        let input = self.input.display().to_string();
        Some(if text.contains(&input) || text.contains(&self.output.display().to_string()) {
            text
        } else {
            format!("{input}: {text}")
        })
    }
}

/// Every input's outcome, in the order given, and what the cache saved.
#[derive(Debug)]
pub struct BatchReport {
    pub files: Vec<FileResult>,
    /// True when an interruption stopped the batch: the files after the last one listed were
    /// not started.
    pub interrupted: bool,
    pub networks_loaded: usize,
    pub stylizers_built: usize,
}

impl BatchReport {
    pub fn failed(&self) -> impl Iterator<Item = &FileResult> {
        self.files.iter().filter(|f| f.result.is_err())
    }

    pub fn succeeded(&self) -> impl Iterator<Item = &FileResult> {
        self.files.iter().filter(|f| f.result.is_ok())
    }
}

/// How a batch reports progress: the video and iteration progress of the file at hand, and
/// when each file starts and ends.
pub trait BatchProgress: VideoProgress {
    /// Called before input `index` (from 0) of `count` starts.
    fn file(&mut self, index: usize, count: usize, item: &BatchItem);
    /// Called when it has ended, well or not.
    fn file_done(&mut self, index: usize, count: usize, result: &FileResult);
}

impl BatchProgress for NoProgress {
    fn file(&mut self, _: usize, _: usize, _: &BatchItem) {}
    fn file_done(&mut self, _: usize, _: usize, _: &FileResult) {}
}

/// Runs every job, each after the one before, after making `directories` (where the outputs and
/// reports go). Errors of the batch as a whole (no inputs, two inputs that would write the same
/// output, a directory that cannot be made) come before any work; a file's own error is recorded in its [`FileResult`] and the next file
/// starts. `stop` ends the batch after the current file (which then reports
/// [`Error::Interrupted`], its finished frames kept for a resume).
pub fn run_batch(
    items: &[BatchItem],
    directories: &[PathBuf],
    progress: &mut dyn BatchProgress,
    stop: &AtomicBool,
) -> Result<BatchReport> {
    if items.is_empty() {
        return Err(Error::Settings("no inputs".into()));
    }
    for (i, a) in items.iter().enumerate() {
        if let Some(b) = items[..i].iter().find(|b| b.output() == a.output()) {
            return Err(Error::output(
                a.output(),
                format!("both {} and {} would be written here; give them different names", b.input().display(), a.input().display()),
            ));
        }
    }
    // No file's output may be another's input (a batch `a.jpg a-stylized.png`).
    let reads: Vec<Named> = items.iter().flat_map(BatchItem::reads).collect();
    let writes: Vec<Named> = items.iter().flat_map(BatchItem::writes).collect();
    paths::check_writes_spare_reads(&reads, &writes)?;
    for dir in directories {
        std::fs::create_dir_all(dir).map_err(|e| Error::output(dir, format!("cannot create directory: {e}")))?;
    }
    let cache = StylizerCache::new();
    let mut files = Vec::with_capacity(items.len());
    let mut interrupted = false;
    for (index, item) in items.iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        progress.file(index, items.len(), item);
        let result = match item {
            _ if item.already_done() => Ok(Outcome::AlreadyDone),
            BatchItem::Still(job) => run_still_with(job, progress, &cache).map(|report| Outcome::Still(Box::new(report))),
            BatchItem::Video(job) => run_video_with(job, progress, stop, &cache).map(|r| Outcome::Video(Box::new(r))),
        };
        interrupted = matches!(result, Err(Error::Interrupted(_)));
        let file = FileResult { input: item.input().to_path_buf(), output: item.output().to_path_buf(), result };
        progress.file_done(index, items.len(), &file);
        files.push(file);
        if interrupted {
            break;
        }
    }
    Ok(BatchReport { files, interrupted, networks_loaded: cache.networks_loaded(), stylizers_built: cache.stylizers_built() })
}
