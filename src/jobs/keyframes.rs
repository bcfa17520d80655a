//! Settings that change over a clip: keyframes for the weights of the cost (α, β, γ_tv) and for
//! the blend of the style images, interpolated linearly between keys and held before the first
//! and after the last. `--style-weight 0s=5e-4,4s=2e-3` raises β over four seconds;
//! `--style-weights 0s=1:0,4s=0:1` turns one style into another. Each frame is painted with its
//! own values ([`FrameValues`], in the report), warm-started from the previous painting and held
//! to it by J_temporal, so the change is as smooth as the motion.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::jobs::pyramid::Painter;
use crate::stylize::stylizer::Settings;

/// Where a key sits: at a time (seconds on the frames' clock, as the progress line's `t=` and
/// the report's `pts_seconds` give it) or at a frame number (1 for the first frame painted).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAt {
    Seconds(f64),
    Frame(u64),
}

impl KeyAt {
    /// The key's position on the clip for a frame with this number and time: seconds or frames,
    /// whichever the key counts in.
    fn position(self) -> f64 {
        match self {
            KeyAt::Seconds(s) => s,
            KeyAt::Frame(n) => n as f64,
        }
    }

    fn frame_position(self, frame_number: u64, seconds: f64) -> f64 {
        match self {
            KeyAt::Seconds(_) => seconds,
            KeyAt::Frame(_) => frame_number as f64,
        }
    }
}

impl FromStr for KeyAt {
    type Err = String;
    /// `4s` or `1.5s` (seconds), `0:04` or `1:02:03.5` ([HH:]MM:SS), `96` (a frame number, from 1).
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if let Some(seconds) = text.strip_suffix('s') {
            return match seconds.parse::<f64>() {
                Ok(s) if s >= 0.0 && s.is_finite() => Ok(KeyAt::Seconds(s)),
                _ => Err(format!("'{text}' is not a time (seconds ≥ 0, such as 4s or 1.5s)")),
            };
        }
        if text.contains(':') {
            let mut seconds = 0.0;
            for part in text.split(':') {
                let value: f64 = part.parse().map_err(|_| format!("'{text}' is not a time ([HH:]MM:SS)"))?;
                seconds = seconds * 60.0 + value;
            }
            return Ok(KeyAt::Seconds(seconds));
        }
        match text.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(KeyAt::Frame(n)),
            _ => Err(format!("'{text}' is not a key: a time (4s, 0:04) or a frame number from 1")),
        }
    }
}

impl fmt::Display for KeyAt {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            KeyAt::Seconds(s) => write!(f, "{s}s"),
            KeyAt::Frame(n) => write!(f, "frame {n}"),
        }
    }
}

/// Values at keys, in order, all counted the same way (seconds or frames).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Keyframes<T> {
    pub keys: Vec<(KeyAt, T)>,
}

impl<T: Clone + Interpolate> Keyframes<T> {
    /// The keys, checked: at least one, all in seconds or all in frames, in increasing order.
    /// `option` names the option in errors.
    pub fn new(option: &str, keys: Vec<(KeyAt, T)>) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::Settings(format!("{option}: no keys")));
        }
        let seconds = matches!(keys[0].0, KeyAt::Seconds(_));
        for pair in keys.windows(2) {
            let (a, b) = (pair[0].0, pair[1].0);
            if matches!(b, KeyAt::Seconds(_)) != seconds {
                return Err(Error::Settings(format!("{option}: keys mix times and frame numbers ({a} and {b}); use one or the other")));
            }
            if b.position() <= a.position() {
                return Err(Error::Settings(format!("{option}: keys must increase ({a} comes before {b})")));
            }
        }
        Ok(Self { keys })
    }

    /// Whether the keys are frame numbers (all of them are of one kind: [`Self::new`]).
    pub fn counts_frames(&self) -> bool {
        matches!(self.keys[0].0, KeyAt::Frame(_))
    }

    /// The value at frame `frame_number` (from 1) shown at `seconds`: linear between the keys
    /// around it, the first key's before it and the last's after.
    pub fn at(&self, frame_number: u64, seconds: f64) -> T {
        let position = self.keys[0].0.frame_position(frame_number, seconds);
        let after = self.keys.iter().position(|(at, _)| at.position() > position);
        match after {
            Some(0) => self.keys[0].1.clone(),
            None => self.keys.last().expect("checked: not empty").1.clone(),
            Some(i) => {
                let ((a, va), (b, vb)) = (&self.keys[i - 1], &self.keys[i]);
                let t = (position - a.position()) / (b.position() - a.position());
                va.interpolate(vb, t)
            }
        }
    }
}

/// Linear interpolation between two values of a key.
pub trait Interpolate {
    fn interpolate(&self, other: &Self, t: f64) -> Self;
}

impl Interpolate for f64 {
    fn interpolate(&self, other: &f64, t: f64) -> f64 {
        self + (other - self) * t
    }
}

impl Interpolate for Vec<f64> {
    fn interpolate(&self, other: &Vec<f64>, t: f64) -> Vec<f64> {
        self.iter().zip(other).map(|(a, b)| a.interpolate(b, t)).collect()
    }
}

/// Parses `KEY=VALUE` with VALUE read by `value` (a number; a style blend `1:0`).
pub fn parse_key<T>(text: &str, value: impl Fn(&str) -> std::result::Result<T, String>) -> std::result::Result<(KeyAt, T), String> {
    let (at, v) = text.split_once('=').ok_or_else(|| format!("'{text}' is not KEY=VALUE (such as 4s=2e-3)"))?;
    Ok((at.parse()?, value(v.trim())?))
}

/// A style blend `w1:w2:…` (one weight per style image, each ≥ 0, not all 0).
pub fn parse_blend(text: &str) -> std::result::Result<Vec<f64>, String> {
    let weights: Vec<f64> = text
        .split(':')
        .map(|w| w.trim().parse::<f64>().ok().filter(|w| *w >= 0.0 && w.is_finite()).ok_or_else(|| format!("'{w}' is not a weight ≥ 0")))
        .collect::<std::result::Result<_, _>>()?;
    if weights.iter().all(|&w| w == 0.0) {
        return Err(format!("'{text}' blends nothing (every weight is 0)"));
    }
    Ok(weights)
}

/// The settings that change over the clip, each keyframed or not.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Keyframed {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_weight: Option<Keyframes<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style_weight: Option<Keyframes<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tv_weight: Option<Keyframes<f64>>,
    /// Weights of the style images, one per style at each key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style_blend: Option<Keyframes<Vec<f64>>>,
}

impl Keyframed {
    /// Whether anything changes over the clip.
    pub fn any(&self) -> bool {
        self.content_weight.is_some() || self.style_weight.is_some() || self.tv_weight.is_some() || self.style_blend.is_some()
    }

    /// Whether the keys are frame numbers (a segment's frames are numbered from its own start, so
    /// segments take times only).
    pub fn counts_frames(&self) -> bool {
        [&self.content_weight, &self.style_weight, &self.tv_weight].into_iter().flatten().any(Keyframes::counts_frames)
            || self.style_blend.as_ref().is_some_and(Keyframes::counts_frames)
    }

    /// Checks the keys against the job: every weight ≥ 0, a blend of as many weights as there
    /// are `styles`.
    pub fn validate(&self, styles: usize) -> Result<()> {
        let weights = [("--content-weight", &self.content_weight), ("--style-weight", &self.style_weight), ("--tv-weight", &self.tv_weight)];
        for (option, keys) in weights {
            for (at, w) in keys.iter().flat_map(|k| &k.keys) {
                if !(*w >= 0.0 && w.is_finite()) {
                    return Err(Error::Settings(format!("{option}: the value at {at} must be a finite number ≥ 0, got {w}")));
                }
            }
        }
        for (at, blend) in self.style_blend.iter().flat_map(|k| &k.keys) {
            if blend.len() != styles {
                return Err(Error::Settings(format!(
                    "--style-weights: the blend at {at} has {} weights for {styles} style images",
                    blend.len()
                )));
            }
        }
        Ok(())
    }

    /// The values of frame `frame_number` (from 1) shown at `seconds` (none keyframed: none).
    pub fn at(&self, frame_number: u64, seconds: f64) -> Option<FrameValues> {
        self.any().then(|| FrameValues {
            content_weight: self.content_weight.as_ref().map(|k| k.at(frame_number, seconds)),
            style_weight: self.style_weight.as_ref().map(|k| k.at(frame_number, seconds)),
            tv_weight: self.tv_weight.as_ref().map(|k| k.at(frame_number, seconds)),
            style_blend: self.style_blend.as_ref().map(|k| k.at(frame_number, seconds)),
        })
    }
}

/// One frame's keyframed values (the others are the job's).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrameValues {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style_weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tv_weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style_blend: Option<Vec<f64>>,
}

impl FrameValues {
    /// `painter` with these values in place of its own.
    pub fn painter(&self, painter: &Painter) -> Result<Painter> {
        let settings = |s: &Settings| Settings {
            content_weight: self.content_weight.unwrap_or(s.content_weight),
            style_weight: self.style_weight.unwrap_or(s.style_weight),
            tv_weight: self.tv_weight.unwrap_or(s.tv_weight),
            ..s.clone()
        };
        painter.with_settings(settings, self.style_blend.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_as_times_or_frame_numbers() {
        assert_eq!("4s".parse::<KeyAt>(), Ok(KeyAt::Seconds(4.0)));
        assert_eq!("1:02.5".parse::<KeyAt>(), Ok(KeyAt::Seconds(62.5)));
        assert_eq!("96".parse::<KeyAt>(), Ok(KeyAt::Frame(96)));
        assert!("0".parse::<KeyAt>().is_err() && "-1s".parse::<KeyAt>().is_err() && "x".parse::<KeyAt>().is_err());
        assert_eq!(parse_key("2s=1:0.5", parse_blend), Ok((KeyAt::Seconds(2.0), vec![1.0, 0.5])));
        assert!(parse_blend("0:0").is_err() && parse_blend("1:-1").is_err());
    }

    #[test]
    fn values_are_linear_between_keys_and_held_outside() {
        let keys = Keyframes::new("--style-weight", vec![(KeyAt::Seconds(1.0), 1.0), (KeyAt::Seconds(3.0), 5.0)]).unwrap();
        let at = |s: f64| keys.at(99, s);
        assert_eq!((at(0.0), at(1.0), at(2.0), at(2.5), at(3.0), at(10.0)), (1.0, 1.0, 3.0, 4.0, 5.0, 5.0));
        let frames = Keyframes::new("--style-weights", vec![(KeyAt::Frame(1), vec![1.0, 0.0]), (KeyAt::Frame(5), vec![0.0, 1.0])]).unwrap();
        assert_eq!(frames.at(2, 123.0), vec![0.75, 0.25]);
        assert!(Keyframes::new("--x", vec![(KeyAt::Seconds(2.0), 1.0), (KeyAt::Seconds(1.0), 1.0)]).is_err());
        assert!(Keyframes::new("--x", vec![(KeyAt::Seconds(0.0), 1.0), (KeyAt::Frame(3), 1.0)]).is_err());
    }
}
