#include "common/thread_priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace hsmsignd {
namespace {

// struct sched_attr of <linux/sched/types.h>, which cannot be included beside glibc's <sched.h>.
struct SchedAttr {
  std::uint32_t size = sizeof(SchedAttr);
  std::uint32_t sched_policy = 0;  // SCHED_OTHER
  std::uint64_t sched_flags = 0;
  std::int32_t sched_nice = 0;
  std::uint32_t sched_priority = 0;
  std::uint64_t sched_runtime = 0;  // for SCHED_OTHER: the slice, in ns
  std::uint64_t sched_deadline = 0;
  std::uint64_t sched_period = 0;
  std::uint32_t sched_util_min = 0;
  std::uint32_t sched_util_max = 0;
};

// The shortest slice the kernel accepts. Measured with bench/ (ES256 beside a saturating RS256 load):
// the ES256 p50 stays as it is alone and p99 halves; the rates alone do not change.
constexpr std::uint64_t kSliceNs = 100'000;
constexpr int kLowPriorityNice = 10;

// Of the calling thread: sched_setattr's pid 0, like PRIO_PROCESS's 0 on Linux, is the caller.
bool set_attributes(int nice, std::uint64_t slice_ns) {
  SchedAttr attr;
  attr.sched_nice = nice;
  attr.sched_runtime = slice_ns;
  return ::syscall(SYS_sched_setattr, 0, &attr, 0) == 0;
}

}  // namespace

void prefer_short_slices() { (void)set_attributes(::getpriority(PRIO_PROCESS, 0), kSliceNs); }

void yield_to_latency_sensitive_threads() {
  // The default slice again, should this thread have inherited a short one.
  if (!set_attributes(kLowPriorityNice, 0)) (void)::setpriority(PRIO_PROCESS, 0, kLowPriorityNice);
}

}  // namespace hsmsignd
