//! Scale plans: which worker ids to start and which to drain. Workers are numbered
//! 0..N-1 on `base_port + id`; scaling down removes the highest ids first (SPEC §2).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePlan {
    /// New ids, ascending: started, health-checked, then added to HAProxy.
    pub start: Vec<u32>,
    /// Ids to drain, highest first: removed from HAProxy traffic, then SIGTERMed.
    pub stop: Vec<u32>,
}

/// From the ids that exist now to `target` workers.
pub fn plan_scale(current: &[u32], target: u32) -> ScalePlan {
    let mut ids: Vec<u32> = current.to_vec();
    ids.sort_unstable();
    let keep: Vec<u32> = ids.iter().copied().take(target as usize).collect();
    let stop: Vec<u32> = ids
        .iter()
        .rev()
        .copied()
        .filter(|id| !keep.contains(id))
        .collect();
    let mut start = Vec::new();
    let mut next = 0u32;
    while keep.len() + start.len() < target as usize {
        if !keep.contains(&next) {
            start.push(next);
        }
        next += 1;
    }
    ScalePlan { start, stop }
}

/// The port of worker `id`; `None` past 65535.
pub fn worker_port(base_port: u16, id: u32) -> Option<u16> {
    u16::try_from(base_port as u32 + id).ok()
}

/// The core worker `id` is pinned to: round-robin over the cores.
pub fn worker_core(id: u32, cores: usize) -> u32 {
    id % cores.max(1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_up_adds_the_next_ids() {
        assert_eq!(
            plan_scale(&[0, 1, 2], 5),
            ScalePlan {
                start: vec![3, 4],
                stop: vec![]
            }
        );
        assert_eq!(plan_scale(&[], 2).start, vec![0, 1]);
    }

    #[test]
    fn scaling_down_drains_the_highest_ids_first() {
        assert_eq!(
            plan_scale(&[0, 1, 2, 3, 4], 2),
            ScalePlan {
                start: vec![],
                stop: vec![4, 3, 2]
            }
        );
    }

    #[test]
    fn same_size_is_a_no_op_and_gaps_are_filled() {
        assert_eq!(
            plan_scale(&[0, 1], 2),
            ScalePlan {
                start: vec![],
                stop: vec![]
            }
        );
        assert_eq!(plan_scale(&[0, 2], 3).start, vec![1]);
    }

    #[test]
    fn ports_and_cores() {
        assert_eq!(worker_port(30001, 4), Some(30005));
        assert_eq!(worker_port(65535, 1), None);
        assert_eq!(worker_core(3, 2), 1);
        assert_eq!(worker_core(3, 0), 0);
    }
}
