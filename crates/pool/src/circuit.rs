//! circuit (being written).
