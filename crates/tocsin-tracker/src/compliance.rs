//! Compliance report (in progress).
