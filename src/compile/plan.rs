//! Memory planning: assigns every activation buffer an offset in one arena so that buffers whose
//! lifetimes overlap never share bytes, while buffers that are never live at the same time do.
//!
//! The algorithm is greedy-by-size (as in TFLite's arena planner): buffers are placed in order of
//! decreasing size, each at the lowest 256-aligned offset that does not collide with an
//! already-placed buffer whose lifetime intersects its own. The liveness lower bound (the largest
//! total size of simultaneously live buffers) is reported next to the arena size.

/// Alignment of every arena offset (the storage-buffer binding alignment devices accept).
pub const ALIGN: u64 = 256;

/// One buffer to place: its size and the inclusive range of steps during which it is live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Bytes.
    pub bytes: u64,
    /// First step it is written (or, for inputs, 0).
    pub first: usize,
    /// Last step it is read (or, for outputs, the last step).
    pub last: usize,
}

/// The placement of a set of buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Offset of each buffer, in input order.
    pub offsets: Vec<u64>,
    /// Arena size: the end of the highest placed buffer.
    pub arena_bytes: u64,
    /// The largest total (aligned) size of buffers live at one step.
    pub live_peak_bytes: u64,
    /// The sum of all (aligned) buffer sizes.
    pub total_bytes: u64,
}

/// Rounds `n` up to a multiple of [`ALIGN`] (at least one unit, so every buffer is bindable).
pub fn align(n: u64) -> u64 {
    n.max(1).div_ceil(ALIGN) * ALIGN
}

/// Plans `buffers`.
pub fn plan(buffers: &[Interval]) -> Plan {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    // Largest first; ties by earlier start, then index, so the plan is deterministic.
    order.sort_by(|&a, &b| {
        align(buffers[b].bytes)
            .cmp(&align(buffers[a].bytes))
            .then(buffers[a].first.cmp(&buffers[b].first))
            .then(a.cmp(&b))
    });
    let mut offsets = vec![0u64; buffers.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena = 0u64;
    for &i in &order {
        let bi = buffers[i];
        let size = align(bi.bytes);
        // Ranges taken by placed buffers that are live at the same time, sorted by offset.
        let mut taken: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&j| buffers[j].first <= bi.last && bi.first <= buffers[j].last)
            .map(|&j| (offsets[j], offsets[j] + align(buffers[j].bytes)))
            .collect();
        taken.sort_unstable();
        let mut off = 0u64;
        for (s, e) in taken {
            if off + size <= s {
                break;
            }
            off = off.max(e);
        }
        offsets[i] = off;
        arena = arena.max(off + size);
        placed.push(i);
    }
    let steps = buffers.iter().map(|b| b.last + 1).max().unwrap_or(0);
    // Size deltas at each step: +size where a buffer becomes live, -size after its last use.
    let mut delta = vec![0i128; steps + 1];
    for b in buffers {
        delta[b.first] += align(b.bytes) as i128;
        delta[b.last + 1] -= align(b.bytes) as i128;
    }
    let (mut cur, mut peak) = (0i128, 0i128);
    for d in delta {
        cur += d;
        peak = peak.max(cur);
    }
    let peak = peak as u64;
    Plan {
        offsets,
        arena_bytes: arena,
        live_peak_bytes: peak,
        total_bytes: buffers.iter().map(|b| align(b.bytes)).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(bytes: u64, first: usize, last: usize) -> Interval {
        Interval { bytes, first, last }
    }

    fn check_disjoint(bufs: &[Interval], p: &Plan) {
        for a in 0..bufs.len() {
            for b in a + 1..bufs.len() {
                let overlap_t = bufs[a].first <= bufs[b].last && bufs[b].first <= bufs[a].last;
                let (sa, ea) = (p.offsets[a], p.offsets[a] + align(bufs[a].bytes));
                let (sb, eb) = (p.offsets[b], p.offsets[b] + align(bufs[b].bytes));
                let overlap_m = sa < eb && sb < ea;
                assert!(
                    !(overlap_t && overlap_m),
                    "buffers {a} and {b} collide: {p:?}"
                );
            }
        }
    }

    #[test]
    fn chain_reuses_memory() {
        // a -> b -> c -> d: each buffer lives two steps; two slots suffice.
        let bufs = [
            iv(1000, 0, 1),
            iv(1000, 1, 2),
            iv(1000, 2, 3),
            iv(1000, 3, 4),
        ];
        let p = plan(&bufs);
        check_disjoint(&bufs, &p);
        assert_eq!(p.arena_bytes, 2 * 1024);
        assert_eq!(p.live_peak_bytes, 2 * 1024);
        assert_eq!(p.total_bytes, 4 * 1024);
    }

    #[test]
    fn offsets_are_aligned_and_zero_sized_buffers_take_a_slot() {
        let bufs = [iv(0, 0, 0), iv(3, 0, 0), iv(300, 0, 1)];
        let p = plan(&bufs);
        check_disjoint(&bufs, &p);
        assert!(p.offsets.iter().all(|o| o % ALIGN == 0));
        assert_eq!(p.arena_bytes, 256 + 256 + 512);
    }

    #[test]
    fn random_lifetimes_never_collide_and_stay_near_the_bound() {
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..50 {
            let n = 1 + next() % 40;
            let bufs: Vec<Interval> = (0..n)
                .map(|_| {
                    let first = next() % 30;
                    iv((1 + next() % 5000) as u64, first, first + next() % 6)
                })
                .collect();
            let p = plan(&bufs);
            check_disjoint(&bufs, &p);
            assert!(p.arena_bytes >= p.live_peak_bytes);
            assert!(p.arena_bytes <= p.total_bytes);
        }
    }
}
