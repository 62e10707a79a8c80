// Timestep schedules of the samplers (SPEC §3).
#pragma once

#include <vector>

namespace sanastream::pipeline {

// Streaming Euler schedule for `steps` denoising steps: the distilled [1000, 961, 893, 743] for 4,
// [1000, 743] for 2, else diffusers' FlowMatchEulerDiscreteScheduler(shift) default schedule
// (which the distilled model never saw). Returns timesteps; sigmas are t/1000 followed by 0.
std::vector<float> streaming_timesteps(int steps, double shift = 8.0);
bool is_distilled_step_count(int steps);

// DPM-Solver++ time grid (float32, as the official code forms it): s = 1 − linspace(1, 0.001, N+1),
// t = shift·s/(1 + (shift−1)·s), flipped, so t₀ ≈ 0.999875 … t_N = 0.
std::vector<float> dpm_time_grid(int steps, double shift = 8.0);

}  // namespace sanastream::pipeline
