//! The Vask client (in progress).
