//! Which job vertices an HPA can help.
//!
//! In Reactive Mode every vertex runs at the job's parallelism (all slots) unless its
//! `maxParallelism` is lower; such a vertex runs fewer subtasks than the job's widest vertex
//! and adding TaskManagers does not give it one more. A busy-time signal that includes it
//! drives the HPA to `maxReplicas` and keeps it there, so it is left out.

/// One job vertex as the query saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vertex {
    /// Running subtasks (series of the vertex).
    pub subtasks: f64,
    /// The vertex's measured value (e.g. its busiest subtask's busy time).
    pub value: f64,
}

/// The job's parallelism: its widest vertex's subtask count.
pub fn job_parallelism(vertices: &[Vertex]) -> Option<f64> {
    vertices
        .iter()
        .map(|v| v.subtasks)
        .filter(|s| s.is_finite())
        .reduce(f64::max)
}

/// Whether a vertex runs at the job's parallelism (and so grows with TaskManagers).
pub fn scales(v: &Vertex, parallelism: f64) -> bool {
    v.subtasks >= parallelism
}

/// The largest value among the vertices that scale, and how many vertices were left out
/// because they run at their own maximum parallelism.
pub fn max_over_scalable(vertices: &[Vertex]) -> Option<(f64, usize)> {
    let p = job_parallelism(vertices)?;
    let mut left_out = 0;
    let mut best: Option<f64> = None;
    for v in vertices {
        if scales(v, p) {
            best = Some(best.map_or(v.value, |b| b.max(v.value)));
        } else {
            left_out += 1;
        }
    }
    best.map(|b| (b, left_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(subtasks: f64, value: f64) -> Vertex {
        Vertex { subtasks, value }
    }

    #[test]
    fn a_capped_vertex_does_not_decide() {
        // Source capped at 2 subtasks (2 partitions) and saturated; the job runs at 6.
        let job = [v(2.0, 1000.0), v(6.0, 420.0), v(6.0, 610.0)];
        assert_eq!(job_parallelism(&job), Some(6.0));
        assert_eq!(max_over_scalable(&job), Some((610.0, 1)));
    }

    #[test]
    fn all_vertices_at_the_same_parallelism_all_count() {
        let job = [v(4.0, 300.0), v(4.0, 900.0)];
        assert_eq!(max_over_scalable(&job), Some((900.0, 0)));
    }

    #[test]
    fn no_vertices_no_value() {
        assert_eq!(max_over_scalable(&[]), None);
    }
}
