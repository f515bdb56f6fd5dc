//! Transports for tether.
