//! Tooling kept out of the product's binaries: measurements and fault audits that start the
//! product's components through their typed start functions.
//!
//! - [`bench`](mod@bench): every path of the product measured in one run beside the limits it stands on
//!   (`auction-tools bench`, results in `system/BENCHMARKS.md`).
//! - [`audit`]: the fault audit, bids through two replicas while sinks crash, a replica
//!   restarts and the broker fails; then the books must balance (`auction-tools audit`, in
//!   `system/RELIABILITY.md`).

pub mod audit;
pub mod bench;
