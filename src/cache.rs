//! Loaded networks and built stylizers kept for the jobs that follow: a batch of inputs loads
//! VGG16 once and computes the style targets once per distinct working size (they depend on
//! the content's size, through `--style-scale`), instead of once per file. A single job uses a
//! fresh cache, which is the same as no cache.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Result;
use crate::job::StyleSpec;
use crate::stylize::{Settings, Stylizer};
use crate::precision::Precision;
use crate::vgg::{self, Compute, Pooling, Vgg16};

/// The weights file (`None`: the bundled one), pooling, device and precision (`None`: the
/// device's default) of a network.
pub type NetworkSpec<'a> = (Option<&'a Path>, Pooling, Compute, Option<Precision>);

/// What a loaded network depends on.
#[derive(Debug, Clone, PartialEq)]
struct NetworkKey {
    weights: PathBuf,
    pooling: Pooling,
    compute: Compute,
    /// As asked for (`None`: the device's default).
    precision: Option<Precision>,
}

/// What a stylizer's style targets depend on: the network, the settings (layers, weights…),
/// the style images with their blend and scale, and the working size.
#[derive(Debug, Clone, PartialEq)]
struct StylizerKey {
    network: NetworkKey,
    settings: String,
    style: String,
    size: (u32, u32),
}

/// Networks and stylizers built so far, reused when asked for again with the same inputs.
#[derive(Default)]
pub struct StylizerCache {
    networks: RefCell<Vec<(NetworkKey, Arc<Vgg16>)>>,
    stylizers: RefCell<Vec<(StylizerKey, Arc<Stylizer>)>>,
    networks_loaded: Cell<usize>,
    stylizers_built: Cell<usize>,
}

impl StylizerCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The network from `weights` (found as [`vgg::weights_path`] says), loaded on first use.
    pub fn network(&self, (weights, pooling, compute, precision): NetworkSpec) -> Result<Arc<Vgg16>> {
        let key = NetworkKey { weights: vgg::weights_path(weights), pooling, compute, precision };
        if let Some((_, network)) = self.networks.borrow().iter().find(|(k, _)| *k == key) {
            return Ok(network.clone());
        }
        let network = Arc::new(Vgg16::load_with(&key.weights, pooling, compute, precision)?);
        self.networks_loaded.set(self.networks_loaded.get() + 1);
        self.networks.borrow_mut().push((key, network.clone()));
        Ok(network)
    }

    /// The stylizer for `style` on content of `width × height`, its style targets computed on
    /// first use.
    pub fn stylizer(
        &self,
        spec: NetworkSpec,
        settings: &Settings,
        style: &StyleSpec,
        (width, height): (u32, u32),
    ) -> Result<Arc<Stylizer>> {
        let key = StylizerKey {
            network: NetworkKey { weights: vgg::weights_path(spec.0), pooling: spec.1, compute: spec.2, precision: spec.3 },
            settings: json(settings),
            style: json(style),
            size: (width, height),
        };
        if let Some((_, stylizer)) = self.stylizers.borrow().iter().find(|(k, _)| *k == key) {
            return Ok(stylizer.clone());
        }
        let network = self.network(spec)?;
        let styles = style.load(width, height, network.device())?;
        let stylizer = Arc::new(Stylizer::new(network, settings.clone(), &styles)?);
        self.stylizers_built.set(self.stylizers_built.get() + 1);
        self.stylizers.borrow_mut().push((key, stylizer.clone()));
        Ok(stylizer)
    }

    /// How many networks were loaded, and how many stylizers (style target sets) computed.
    pub fn networks_loaded(&self) -> usize {
        self.networks_loaded.get()
    }

    pub fn stylizers_built(&self) -> usize {
        self.stylizers_built.get()
    }
}

/// Settings and style specs are compared through their JSON form (both are plain data).
fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
