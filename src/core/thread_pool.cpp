#include "core/thread_pool.h"

#include <algorithm>
#include <cstdlib>

namespace gdn {

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) {
    const char* env = std::getenv("GDN_THREADS");
    threads = env ? std::atoi(env) : int(std::thread::hardware_concurrency());
  }
  threads = std::max(1, threads);
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk) {
  if (n <= 0) return;
  const int64_t parts = std::min<int64_t>(int64_t(size()) * 4, (n + min_chunk - 1) / min_chunk);
  if (parts <= 1 || workers_.empty()) {
    fn(0, n);
    return;
  }
  const int64_t chunk = (n + parts - 1) / parts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_n_ = n;
    job_chunk_ = chunk;
    next_ = 0;
    pending_ = int(workers_.size());
    ++generation_;
  }
  start_cv_.notify_all();
  run_ranges(fn, n, chunk);  // the caller works too
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return pending_ == 0; });
  job_ = nullptr;
}

void ThreadPool::run_ranges(const std::function<void(int64_t, int64_t)>& fn, int64_t n, int64_t chunk) {
  for (;;) {
    int64_t b;
    {
      std::lock_guard<std::mutex> lock(mu_);
      b = next_;
      next_ += chunk;
    }
    if (b >= n) return;
    fn(b, std::min(n, b + chunk));
  }
}

void ThreadPool::worker_loop(int) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t, int64_t)>* job;
    int64_t n, chunk;
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      n = job_n_;
      chunk = job_chunk_;
    }
    run_ranges(*job, n, chunk);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_cv_.notify_all();
    }
  }
}

}  // namespace gdn
