//! The order in which a session tries an alias's deployments.

use std::time::Duration;

use super::Balancing;

/// What the plan needs to know of one deployment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) tier: u32,
    pub(crate) weight: u32,
    /// Its live sessions in this process.
    pub(crate) live: usize,
    /// How long it still cools down; `None` when it may be tried.
    pub(crate) cooldown: Option<Duration>,
}

/// The indexes of `candidates` in the order to try them: the available ones
/// tier by tier, each tier in a random order where a deployment comes first
/// in proportion to its weight (with [`Balancing::LeastSessions`], the ones
/// with fewer live sessions first, that order breaking ties); then, as a
/// last resort, the one cooling down that will be ready first (so that an
/// alias whose deployments all failed recently still probes one rather than
/// refusing).
///
/// `random` returns numbers in `[0, 1)`.
pub(crate) fn order(
    candidates: &[Candidate],
    balancing: Balancing,
    random: &mut dyn FnMut() -> f64,
) -> Vec<usize> {
    let mut available: Vec<usize> = (0..candidates.len())
        .filter(|&i| candidates[i].cooldown.is_none())
        .collect();
    available.sort_by_key(|&i| candidates[i].tier);
    let mut ordered = Vec::with_capacity(candidates.len());
    for tier in available.chunk_by(|&a, &b| candidates[a].tier == candidates[b].tier) {
        let first_of_tier = ordered.len();
        let mut left = tier.to_vec();
        while !left.is_empty() {
            let total: u64 = left.iter().map(|&i| u64::from(candidates[i].weight)).sum();
            let pick = if total == 0 {
                0
            } else {
                let mut point = (random() * total as f64) as u64;
                left.iter()
                    .position(|&i| {
                        let weight = u64::from(candidates[i].weight);
                        if point < weight {
                            true
                        } else {
                            point -= weight;
                            false
                        }
                    })
                    .unwrap_or(left.len() - 1)
            };
            ordered.push(left.remove(pick));
        }
        if balancing == Balancing::LeastSessions {
            ordered[first_of_tier..].sort_by_key(|&i| candidates[i].live);
        }
    }
    let soonest = (0..candidates.len())
        .filter_map(|i| candidates[i].cooldown.map(|cooldown| (cooldown, i)))
        .min();
    ordered.extend(soonest.map(|(_, i)| i));
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(tier: u32, weight: u32) -> Candidate {
        Candidate {
            tier,
            weight,
            live: 0,
            cooldown: None,
        }
    }

    fn cooling(tier: u32, seconds: u64) -> Candidate {
        Candidate {
            tier,
            weight: 1,
            live: 0,
            cooldown: Some(Duration::from_secs(seconds)),
        }
    }

    fn fixed(numbers: &[f64]) -> impl FnMut() -> f64 + '_ {
        let mut next = numbers.iter().copied().cycle();
        move || next.next().unwrap()
    }

    #[test]
    fn tiers_come_in_order() {
        let candidates = [up(2, 1), up(0, 1), up(1, 1)];
        assert_eq!(
            order(&candidates, Balancing::Weighted, &mut fixed(&[0.0])),
            [1, 2, 0]
        );
    }

    #[test]
    fn weights_pick_the_first_of_a_tier() {
        // Weights 3 and 1: [0, 0.75) picks the first, [0.75, 1) the second.
        let candidates = [up(0, 3), up(0, 1), up(1, 1)];
        assert_eq!(
            order(&candidates, Balancing::Weighted, &mut fixed(&[0.0])),
            [0, 1, 2]
        );
        assert_eq!(
            order(&candidates, Balancing::Weighted, &mut fixed(&[0.74])),
            [0, 1, 2]
        );
        assert_eq!(
            order(&candidates, Balancing::Weighted, &mut fixed(&[0.75])),
            [1, 0, 2]
        );
        assert_eq!(
            order(&candidates, Balancing::Weighted, &mut fixed(&[0.99])),
            [1, 0, 2]
        );
        // A zero weight comes last in its tier.
        let candidates = [up(0, 0), up(0, 1)];
        assert_eq!(
            order(&candidates, Balancing::Weighted, &mut fixed(&[0.0, 0.5])),
            [1, 0]
        );
    }

    #[test]
    fn weights_share_the_first_place_in_proportion() {
        let candidates = [up(0, 3), up(0, 1)];
        let mut state = 0.0;
        let mut even = || {
            state = (state + 0.618_033_988_75) % 1.0;
            state
        };
        let firsts = (0..4000)
            .filter(|_| order(&candidates, Balancing::Weighted, &mut even)[0] == 0)
            .count();
        assert!((2900..3100).contains(&firsts), "{firsts}");
    }

    #[test]
    fn cooling_deployments_are_skipped_but_the_soonest_is_a_last_resort() {
        let candidates = [cooling(0, 30), up(1, 1), cooling(0, 5), up(0, 1)];
        assert_eq!(
            order(&candidates, Balancing::Weighted, &mut fixed(&[0.0])),
            [3, 1, 2]
        );
        let all_cooling = [cooling(0, 30), cooling(1, 2), cooling(0, 5)];
        assert_eq!(
            order(&all_cooling, Balancing::Weighted, &mut fixed(&[0.0])),
            [1]
        );
        assert!(order(&[], Balancing::Weighted, &mut fixed(&[0.0])).is_empty());
    }

    #[test]
    fn least_sessions_puts_the_least_busy_of_a_tier_first() {
        let busy = |tier, weight, live| Candidate {
            live,
            ..up(tier, weight)
        };
        let candidates = [busy(0, 9, 3), busy(0, 1, 1), busy(0, 1, 2), busy(1, 1, 0)];
        // Weights would put the first first; live sessions decide, and the
        // next tier stays last however idle.
        let least =
            |numbers: &[f64]| order(&candidates, Balancing::LeastSessions, &mut fixed(numbers));
        assert_eq!(least(&[0.0]), [1, 2, 0, 3]);
        assert_eq!(least(&[0.99]), [1, 2, 0, 3]);
        assert_eq!(
            order(&candidates, Balancing::Weighted, &mut fixed(&[0.0]))[0],
            0
        );
        // Ties keep the weighted order.
        let tied = [busy(0, 3, 1), busy(0, 1, 1)];
        assert_eq!(
            order(&tied, Balancing::LeastSessions, &mut fixed(&[0.0])),
            [0, 1]
        );
        assert_eq!(
            order(&tied, Balancing::LeastSessions, &mut fixed(&[0.9])),
            [1, 0]
        );
    }
}
