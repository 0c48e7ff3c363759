//! What plugins are told and what they answer: the plugin kinds, the page context of a call, and
//! the outputs and statistics of mask and score calls.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::capture::SelectorRects;
use crate::diff::{Rect, RgbaImage};

/// What a plugin does, decided by the entry point it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Exports `sitediff_mask`: runs on each capture before the diff.
    Mask,
    /// Exports `sitediff_score`: runs after the diff and gives the page's score.
    Score,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Mask => "mask",
            PluginKind::Score => "score",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A width and a height in pixels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl From<crate::config::Viewport> for Size {
    fn from(v: crate::config::Viewport) -> Size {
        Size { width: v.width, height: v.height }
    }
}

/// What a plugin is told about the page, besides the pixels. Serialised as the JSON context of
/// ABI v1 (`plugins/ABI.md`); the host fills in the image sizes (and, for scores, the diff) itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PageContext {
    pub site: String,
    pub page_key: String,
    pub url: String,
    pub viewport: Size,
    /// The rectangles of elements matching the site's `mask_selectors`, measured at capture.
    pub selectors: Vec<SelectorRects>,
    /// Score calls: the rectangles the diff ignored (the `mask_selectors` boxes of both images and
    /// the mask plugins' rectangles), handed to score plugins as `diff.ignored`.
    pub ignored: Vec<Rect>,
}

/// The context of a mask call (the same for both kinds of plugin).
pub type MaskContext = PageContext;

/// How one call went, for logs, metrics and the CLI.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallStats {
    /// Fuel units consumed (about one per wasm instruction).
    pub fuel_used: u64,
    /// Wall-clock time of the whole call, instantiation and copies included.
    pub elapsed: Duration,
}

/// What a mask plugin returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaskOutput {
    /// Regions the diff must not count (inside the image, validated).
    pub ignore: Vec<Rect>,
    /// The image with the pixels the plugin edited, when it edited any.
    pub image: Option<RgbaImage>,
    /// Lines the plugin logged through `env.log` (bounded).
    pub logs: Vec<String>,
    pub stats: CallStats,
}

/// What a score plugin returned.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOutput {
    /// 0 = no meaningful change .. 1 = everything changed.
    pub score: f64,
    pub reason: Option<String>,
    pub logs: Vec<String>,
    pub stats: CallStats,
}
