//! The channel hub (in progress).
