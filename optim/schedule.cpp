// Learning-rate schedules: constant, step decay, cosine, each with optional linear warm-up.
#include "tessera/optim/schedule.h"

#include <cmath>
#include <numbers>

#include "tessera/autograd/error.h"

namespace tessera::optim {

void LrSchedule::validate() const {
  auto nonneg = [](double v) { return std::isfinite(v) && v >= 0.0; };
  TESSERA_CHECK(nonneg(base_lr), ConfigError, "LrSchedule: base_lr must be finite and >= 0, got {}",
                base_lr);
  TESSERA_CHECK(warmup_steps >= 0, ConfigError, "LrSchedule: warmup_steps must be >= 0, got {}",
                warmup_steps);
  TESSERA_CHECK(nonneg(warmup_start_lr), ConfigError,
                "LrSchedule: warmup_start_lr must be finite and >= 0, got {}", warmup_start_lr);
  switch (kind) {
    case Kind::constant: break;
    case Kind::step:
      TESSERA_CHECK(step_size > 0, ConfigError, "LrSchedule (step): step_size must be > 0, got {}",
                    step_size);
      TESSERA_CHECK(std::isfinite(gamma) && gamma > 0.0, ConfigError,
                    "LrSchedule (step): gamma must be finite and > 0, got {}", gamma);
      break;
    case Kind::cosine:
      TESSERA_CHECK(total_steps > warmup_steps, ConfigError,
                    "LrSchedule (cosine): total_steps ({}) must exceed warmup_steps ({})",
                    total_steps, warmup_steps);
      TESSERA_CHECK(nonneg(min_lr) && min_lr <= base_lr, ConfigError,
                    "LrSchedule (cosine): min_lr must be in [0, base_lr = {}], got {}", base_lr,
                    min_lr);
      break;
  }
}

double LrSchedule::lr_at(std::int64_t step) const {
  validate();
  TESSERA_CHECK(step >= 0, Error, "LrSchedule::lr_at: step must be >= 0, got {}", step);
  if (step < warmup_steps) {
    const double frac = static_cast<double>(step) / static_cast<double>(warmup_steps);
    return warmup_start_lr + (base_lr - warmup_start_lr) * frac;
  }
  switch (kind) {
    case Kind::constant: return base_lr;
    case Kind::step: return base_lr * std::pow(gamma, static_cast<double>(step / step_size));
    case Kind::cosine: {
      if (step >= total_steps) return min_lr;
      const double progress = static_cast<double>(step - warmup_steps) /
                              static_cast<double>(total_steps - warmup_steps);
      return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
    }
  }
  return base_lr;
}

LrSchedule::Kind schedule_kind_from_string(std::string_view name) {
  if (name == "constant") return LrSchedule::Kind::constant;
  if (name == "step") return LrSchedule::Kind::step;
  if (name == "cosine") return LrSchedule::Kind::cosine;
  throw ConfigError(fmt::format("LrSchedule: unknown schedule '{}' (expected constant, step or cosine)", name));
}

std::string_view to_string(LrSchedule::Kind kind) {
  switch (kind) {
    case LrSchedule::Kind::constant: return "constant";
    case LrSchedule::Kind::step: return "step";
    case LrSchedule::Kind::cosine: return "cosine";
  }
  return "?";
}

}  // namespace tessera::optim
