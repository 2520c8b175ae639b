// A fixed set of worker threads for the CPU reference backend. parallel_for splits [0, n) into
// contiguous ranges, runs them on the workers and the calling thread, and returns when all are
// done. One parallel_for at a time per pool (the caller owns the pool; not re-entrant).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gdn {

class ThreadPool {
 public:
  // threads = 0 picks the hardware concurrency (GDN_THREADS overrides it).
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // fn(begin, end) over disjoint ranges covering [0, n); ranges hold at least min_chunk items.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk = 1);

 private:
  void worker_loop(int index);
  // Claims ranges of the current job until none is left.
  void run_ranges(const std::function<void(int64_t, int64_t)>& fn, int64_t n, int64_t chunk);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 1;
  int64_t next_ = 0;        // next range start, guarded by mu_
  int pending_ = 0;         // workers still busy with the current job
  uint64_t generation_ = 0; // bumps for every job
  bool stop_ = false;
};

}  // namespace gdn
