//! Loaded networks and built stylizers kept for the jobs that follow: a batch of inputs loads
//! VGG16 once and computes the style targets once per distinct working size (they depend on
//! the content's size, through `--style-scale`), instead of once per file. A single job uses a
//! fresh cache, which is the same as no cache.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crate::error::Result;
use crate::jobs::spec::{NetworkSpec, StyleSpec};
use crate::net::vgg::Vgg16;
use crate::stylize::stylizer::{Settings, Stylizer};

/// What a stylizer's style targets depend on: the network, the settings (layers, weights…),
/// the style images with their blend and scale, and the working size.
#[derive(Debug, Clone, PartialEq)]
struct StylizerKey {
    /// With the weights file resolved.
    network: NetworkSpec,
    settings: String,
    style: String,
    size: (u32, u32),
}

/// Networks and stylizers built so far, reused when asked for again with the same inputs.
#[derive(Default)]
pub struct StylizerCache {
    networks: RefCell<Vec<(NetworkSpec, Arc<Vgg16>)>>,
    stylizers: RefCell<Vec<(StylizerKey, Arc<Stylizer>)>>,
    networks_loaded: Cell<usize>,
    stylizers_built: Cell<usize>,
}

impl StylizerCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The network `spec` names, loaded on first use.
    pub fn network(&self, spec: &NetworkSpec) -> Result<Arc<Vgg16>> {
        let key = resolved(spec);
        if let Some((_, network)) = self.networks.borrow().iter().find(|(k, _)| *k == key) {
            return Ok(network.clone());
        }
        let network = Arc::new(Vgg16::load_with(&spec.weights_path(), spec.pooling, spec.compute, spec.precision)?);
        self.networks_loaded.set(self.networks_loaded.get() + 1);
        self.networks.borrow_mut().push((key, network.clone()));
        Ok(network)
    }

    /// The stylizer for `style` on content of `width × height`, its style targets computed on
    /// first use.
    pub fn stylizer(
        &self,
        spec: &NetworkSpec,
        settings: &Settings,
        style: &StyleSpec,
        (width, height): (u32, u32),
    ) -> Result<Arc<Stylizer>> {
        let key = StylizerKey {
            network: resolved(spec),
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

/// The spec with its weights file resolved, so that the bundled file asked for by name and by
/// default is one network.
fn resolved(spec: &NetworkSpec) -> NetworkSpec {
    NetworkSpec { weights: Some(spec.weights_path()), ..spec.clone() }
}

/// Settings and style specs are compared through their JSON form (both are plain data).
fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
