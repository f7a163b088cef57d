//! Reading `torch.export` archives (`.pt2` files).
//!
//! Two layouts exist (what each torch release writes:
//! [`crate::ir::releases`]):
//!
//! - the PT2 archive format (torch 2.8 and later): a zip with a root folder
//!   holding `archive_format` (`pt2`), `byteorder`, `models/<model>.json`
//!   (the serialized program), `data/weights/<model>_weights_config.json`
//!   with raw blobs beside it (2.9 and later; 2.8 writes one `torch.save`
//!   dict, `data/weights/<model>.pt`), the same for `data/constants/`, and
//!   `data/sample_inputs/<model>.pt`;
//! - the torch 2.6 and 2.7 layout: `serialized_exported_program.json`,
//!   `serialized_state_dict.pt`, `serialized_constants.pt`,
//!   `serialized_example_inputs.pt` (nested `torch.save` zips) and `version`.
//!
//! Archives of older releases, or of a schema major version other than 8,
//! are refused with an error naming the version
//! ([`schema::parse_program`]).
//!
//! [`Archive::open`] reads either into an [`Archive`]: the program as a
//! [`schema::ExportedProgram`] plus the weights, constants and sample inputs
//! as [`TensorData`] sharing their blobs.

pub mod archive;
pub mod pickle;
pub mod schema;

pub use archive::{Archive, TensorData};
pub use pickle::{PickleValue, StorageRef, TensorRef};
pub use schema::ExportedProgram;
