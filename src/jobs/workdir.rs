//! The work directory beside a video's output (`<output>.partial/`): every finished stylized
//! frame is kept there losslessly (PNG) with its record, together with the settings that made
//! it, so a run that was interrupted — Ctrl-C, `kill -9`, a power cut — resumes after the
//! last finished frame instead of recomputing what the user already paid for.
//!
//! A frame counts as finished once its record (`frame_NNNNNN.json`) exists; the record is
//! written after the image, and both through a temporary name and a rename.

use std::path::{Path, PathBuf};

use crate::media::image_io::FinishedFrame;

use crate::error::{Error, Result};
use crate::jobs::progress::FrameRecord;
use crate::media::image_io;


pub struct WorkDir {
    dir: PathBuf,
}

const SETTINGS_FILE: &str = "settings.json";

impl WorkDir {
    /// The work directory that belongs to `output`.
    pub fn path_for(output: &Path) -> PathBuf {
        let mut name = output.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".partial");
        output.with_file_name(name)
    }

    /// Opens (or creates) the work directory of `output` for a run whose stylized frames are
    /// determined by `settings`. An existing directory made with other settings is an error
    /// naming what differs, unless `fresh`, which discards it.
    pub fn open(output: &Path, settings: &serde_json::Value, fresh: bool) -> Result<WorkDir> {
        Self::open_dir(&Self::path_for(output), settings, fresh)
    }

    /// [`WorkDir::open`] for a directory named outright (a segment's, inside the output's).
    pub fn open_dir(dir: &Path, settings: &serde_json::Value, fresh: bool) -> Result<WorkDir> {
        let dir = dir.to_path_buf();
        let settings_path = dir.join(SETTINGS_FILE);
        // Compare what was read back with what we would read back: the same text parses to the
        // same numbers, while a float and its parsed text may differ in the last bit.
        let text = serde_json::to_string_pretty(settings).map_err(|e| Error::output(&settings_path, e))?;
        let settings: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::output(&settings_path, e))?;
        let settings = &settings;
        if dir.exists() && !fresh {
            let existing: Option<serde_json::Value> =
                std::fs::read_to_string(&settings_path).ok().and_then(|t| serde_json::from_str(&t).ok());
            match existing {
                Some(existing) if &existing == settings => return Ok(WorkDir { dir }),
                Some(existing) => {
                    let differing = differing_keys(&existing, settings);
                    let done = WorkDir { dir: dir.clone() }.finished_count();
                    return Err(Error::Settings(format!(
                        "{} holds {done} finished frames made with different settings ({}); rerun with --fresh to discard them",
                        dir.display(),
                        differing.join(", ")
                    )));
                }
                None if dir.read_dir().map(|mut d| d.next().is_some()).unwrap_or(true) => {
                    return Err(Error::Settings(format!(
                        "{} exists but its settings.json is missing or unreadable; rerun with --fresh to discard it",
                        dir.display()
                    )));
                }
                None => {}
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::output(&dir, format!("cannot remove: {e}")))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::output(&dir, format!("cannot create: {e}")))?;
        image_io::write_atomically(&settings_path, |tmp| std::fs::write(tmp, text).map_err(|e| format!("cannot write: {e}")))?;
        Ok(WorkDir { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn image_path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("frame_{:06}.png", index + 1))
    }

    fn record_path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("frame_{:06}.json", index + 1))
    }

    /// Number of consecutive finished frames from the first.
    pub fn finished_count(&self) -> u64 {
        (0..).take_while(|&i| self.record_path(i).is_file()).count() as u64
    }

    /// A finished frame and its record, if this index was finished by an earlier run.
    pub fn load(&self, index: u64) -> Result<Option<(FinishedFrame, FrameRecord)>> {
        let record_path = self.record_path(index);
        if !record_path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&record_path).map_err(|e| Error::input(&record_path, e))?;
        let mut record: FrameRecord =
            serde_json::from_str(&text).map_err(|e| Error::input(&record_path, format!("not a frame record: {e}")))?;
        record.resumed = true;
        let image = image_io::load_finished(&self.image_path(index))?;
        Ok(Some((image, record)))
    }

    /// Keeps a finished frame (16-bit PNG when it is deep): the image first, then its record
    /// (which marks it finished).
    pub fn save(&self, image: &FinishedFrame, record: &FrameRecord) -> Result<()> {
        image_io::save_finished(image, &self.image_path(record.index))?;
        let record_path = self.record_path(record.index);
        let text = serde_json::to_string_pretty(record).map_err(|e| Error::output(&record_path, e))?;
        image_io::write_atomically(&record_path, |tmp| std::fs::write(tmp, text).map_err(|e| format!("cannot write: {e}")))
    }

    /// Removes the directory after a successful run.
    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).map_err(|e| Error::output(&self.dir, format!("cannot remove: {e}")))
    }
}

/// Top-level keys whose values differ between two JSON objects.
fn differing_keys(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return vec!["everything".into()] };
    let mut keys: Vec<String> = a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).cloned().collect();
    keys.sort();
    keys.dedup();
    keys
}
