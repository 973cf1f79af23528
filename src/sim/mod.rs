//! Simulation of a Flink job under an HPA.
