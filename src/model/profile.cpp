#include "model/profile.h"

namespace sanastream::model {

namespace {
thread_local RegionTimer* g_timer = nullptr;
}

void set_region_timer(RegionTimer* timer) { g_timer = timer; }
RegionTimer* region_timer() { return g_timer; }

}  // namespace sanastream::model
