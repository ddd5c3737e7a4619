//! Finding installed browsers.
