//! The stylizer: J(G) = α J_content + β J_style (+ γ_tv J_tv + γ_temp J_temporal) over VGG's
//! feature maps, minimised over the pixels by L-BFGS or Adam, on the host or on the device.
//! May import: `error`, `progress`, `net`.

pub mod loss;
pub mod margin;
pub mod optim;
pub mod optim_device;
pub mod stylizer;
