//! rmlx-io: model files mapped to lazy arrays without copying.
