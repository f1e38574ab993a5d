//! Timing records shared by the executors: the wall time of one run split by phase, and the
//! per-launch profile `optc bench` prints (device times from wgpu timestamp queries or CUDA
//! events).

use crate::manifest::Manifest;

/// Wall time of one run, split by phase (microseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunTiming {
    /// Converting inputs and writing them into the arena (wgpu: `queue.write_buffer`; CUDA: into
    /// pinned staging memory).
    pub upload_us: f64,
    /// Encoding (or enqueueing), submitting and waiting for the device.
    pub submit_wait_us: f64,
    /// Reading the staged outputs and converting them.
    pub readback_us: f64,
    /// The whole run.
    pub total_us: f64,
}

/// Timing of one launch over the profiled runs.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchProfile {
    /// The launch label (graph node names and op types).
    pub label: String,
    /// The kernel name.
    pub kernel: String,
    /// Workgroups launched.
    pub grid: [u32; 3],
    /// Median device time in µs, from timestamp queries (wgpu) or events (CUDA);
    /// `None` without timestamp support.
    pub median_us: Option<f64>,
}

/// What an executor's `profile` measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Per launch, in execution order.
    pub launches: Vec<LaunchProfile>,
    /// Every profiled run's wall time (after one warm-up run).
    pub runs: Vec<RunTiming>,
    /// Median of `runs[..].total_us`, in ms.
    pub median_wall_ms: f64,
    /// Median over runs of the device time from the first launch's start to the last one's end,
    /// in µs; `None` without timestamp support.
    pub median_device_us: Option<f64>,
}

/// The measurements of an executor's `profile` loop, one run at a time, summarised into a
/// [`Profile`] (shared by the wgpu and CUDA executors).
pub(crate) struct Samples {
    per_launch: Vec<Vec<f64>>,
    device_total: Vec<f64>,
    runs: Vec<RunTiming>,
}

impl Samples {
    /// No runs yet, for `launches` launches per run.
    pub(crate) fn new(launches: usize) -> Samples {
        Samples {
            per_launch: vec![Vec::new(); launches],
            device_total: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// One run: its wall timing and, where the device timed it, each launch's device time and
    /// the span from the first launch's start to the last one's end (µs).
    pub(crate) fn push(&mut self, timing: RunTiming, device: Option<(Vec<f64>, f64)>) {
        self.runs.push(timing);
        if let Some((each, total)) = device {
            for (v, us) in self.per_launch.iter_mut().zip(each) {
                v.push(us);
            }
            if !self.per_launch.is_empty() {
                self.device_total.push(total);
            }
        }
    }

    /// Medians per launch (labelled from `manifest`) and over runs.
    pub(crate) fn finish(mut self, manifest: &Manifest) -> Profile {
        let launches = manifest
            .launches
            .iter()
            .zip(self.per_launch.iter_mut())
            .map(|(l, v)| LaunchProfile {
                label: l.label.clone(),
                kernel: manifest.kernels[l.kernel as usize].name.clone(),
                grid: l.grid,
                median_us: (!v.is_empty()).then(|| median(v)),
            })
            .collect();
        let mut totals: Vec<f64> = self.runs.iter().map(|t| t.total_us / 1000.0).collect();
        Profile {
            launches,
            median_wall_ms: median(&mut totals),
            median_device_us: (!self.device_total.is_empty())
                .then(|| median(&mut self.device_total)),
            runs: self.runs,
        }
    }
}

/// The median of `v` (sorted in place); 0 for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(super::median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(super::median(&mut []), 0.0);
    }
}
