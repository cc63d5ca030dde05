//! rmlx-lm: the library API an app embeds.
