//! Pusher signatures (in progress).
