//! The arithmetic behind the signals, with no I/O: typed inputs in, values or reasons out.
//!
//! Everything here is a plain function or a small value type, unit-tested from hand-worked
//! numbers. The signal kinds (`crate::signals::kinds`) turn query results into these inputs;
//! the offline simulator and the HPA model reuse the same functions.

pub mod capacity;
pub mod hold;
pub mod lag;
pub mod quality;
pub mod vertices;
