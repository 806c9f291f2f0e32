// Internal: the dynamic batcher behind PipelineOptions::batching.
#pragma once

#include <medinfer/engine.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

namespace medinfer::detail {

class Batcher {
 public:
  /// `item_shape` is one input's [1, C, H, W]. Throws kInvalidArgument for options out of range.
  Batcher(const Engine& engine, std::vector<std::int64_t> item_shape, const BatchingOptions& options);
  ~Batcher();  // finishes every queued request, then stops
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  /// Runs one [1, C, H, W] input as part of a batch; returns its [1, K] output. Blocks until done.
  /// Throws kOverloaded when the queue is full, or what Engine::run threw for the batch. When
  /// `batch_size` is given it receives how many requests the run held (this one included).
  Tensor run(const Tensor& input, int* batch_size = nullptr);

 private:
  struct Request {
    const Tensor* input;
    std::promise<Tensor> result;
    int batch_size = 0;  // set by the worker before the result
    std::chrono::steady_clock::time_point arrived;
  };
  void loop();

  const Engine& engine_;
  std::vector<std::int64_t> item_shape_;
  std::size_t item_size_ = 0;
  BatchingOptions options_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Request*> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace medinfer::detail
