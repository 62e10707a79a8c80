#include "pipeline/schedule.h"

#include <ATen/ATen.h>

#include "core/error.h"

namespace sanastream::pipeline {

bool is_distilled_step_count(int steps) { return steps == 4 || steps == 2; }

std::vector<float> streaming_timesteps(int steps, double shift) {
  SS_CHECK(steps >= 1 && steps <= 1000, "--steps: expected 1 to 1000, got {}", steps);
  if (steps == 4) return {1000.f, 961.f, 893.f, 743.f};
  if (steps == 2) return {1000.f, 743.f};
  // diffusers: sigma_max/min from the shifted 1000-step training table (float32), then
  // linspace in float64 between them, shifted again, stored as float32.
  const float n_train = 1000.f;
  const float s_min_unshifted = 1.f / n_train;
  const float sigma_min = static_cast<float>(shift) * s_min_unshifted / (1.f + static_cast<float>(shift - 1) * s_min_unshifted);
  const double t_max = 1.0 * n_train, t_min = static_cast<double>(sigma_min) * n_train;
  std::vector<float> out;
  for (int i = 0; i < steps; ++i) {
    const double t = steps == 1 ? t_max : t_max + (t_min - t_max) * i / (steps - 1);
    const double s = t / n_train;
    const float shifted = static_cast<float>(shift * s / (1.0 + (shift - 1.0) * s));
    out.push_back(shifted * n_train);
  }
  return out;
}

std::vector<float> dpm_time_grid(int steps, double shift) {
  SS_CHECK(steps >= 1, "--steps: expected at least 1, got {}", steps);
  at::Tensor betas = at::linspace(1.0, 0.001, steps + 1, at::kFloat);
  at::Tensor s = 1.0 - betas;
  at::Tensor t = (shift * s / (1 + (shift - 1) * s)).flip(0).contiguous();
  return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
}

}  // namespace sanastream::pipeline
