//! The cognitive loop's membranes: analyses that run beside the model, on the user's text.
pub mod analysis;
