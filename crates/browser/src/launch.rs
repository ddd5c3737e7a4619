//! Launching and stopping browsers.
