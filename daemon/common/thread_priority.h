// How the daemon's threads ask the scheduler for what they need: the threads a request waits on (the
// I/O thread, the EC signers, the audit writer) work in short bursts between waits and must get a core
// as soon as they wake; RSA signers hold a core for a millisecond or more and can wait.
#pragma once

namespace hsmsignd {

// Asks for a short time slice for the calling thread (SCHED_OTHER's custom slice, sched_setattr's
// sched_runtime, Linux 6.12 and later): the scheduler then lets it preempt a long-running thread when
// it wakes instead of waiting out that thread's slice. Older kernels refuse, and nothing changes.
void prefer_short_slices();

// Lowers the calling thread's priority (nice 10): under contention it gets a small share of the CPU,
// with nothing else to run it still gets every idle core. Raising a nice value needs no privilege.
void yield_to_latency_sensitive_threads();

}  // namespace hsmsignd
