//! The agent phase's network: nothing but its own loopback.
