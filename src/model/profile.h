// Region timing for profiles: with a RegionTimer installed on this thread, mark_region(name)
// attributes the time since the previous mark to `name` (the GPU implementation records CUDA
// events, so marks cost nothing inside kernels' timelines). Without one, marks are no-ops.
#pragma once

namespace sanastream::model {

class RegionTimer {
 public:
  virtual ~RegionTimer() = default;
  virtual void mark(const char* region) = 0;
};

void set_region_timer(RegionTimer* timer);  // nullptr to stop
RegionTimer* region_timer();

inline void mark_region(const char* region) {
  if (RegionTimer* t = region_timer()) t->mark(region);
}

}  // namespace sanastream::model
