#include "inference/batcher.hpp"

#include <medinfer/error.hpp>

#include <chrono>
#include <cstring>
#include <string>

namespace medinfer::detail {

Batcher::Batcher(const Engine& engine, std::vector<std::int64_t> item_shape, const BatchingOptions& options)
    : engine_(engine), item_shape_(std::move(item_shape)), options_(options) {
  auto range = [](const char* field, int v, int lo, int hi) {
    if (v < lo || v > hi) {
      throw Error(ErrorCode::kInvalidArgument, std::string("BatchingOptions::") + field + " = " + std::to_string(v) +
                                                   ": must be in " + std::to_string(lo) + ".." + std::to_string(hi));
    }
  };
  range("max_batch_size", options.max_batch_size, 2, 256);
  range("max_delay_us", options.max_delay_us, 0, 1000000);
  range("max_queue", options.max_queue, 1, 100000);
  item_size_ = 1;
  for (std::size_t i = 1; i < item_shape_.size(); ++i) item_size_ *= static_cast<std::size_t>(item_shape_[i]);
  worker_ = std::thread([this] { loop(); });
}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  worker_.join();
}

Tensor Batcher::run(const Tensor& input, int* batch_size) {
  if (input.shape.size() != item_shape_.size() || input.shape[0] != 1 || input.data.size() != item_size_) {
    throw Error(ErrorCode::kInvalidArgument, "batcher: one [1, C, H, W] input of the package's shape expected");
  }
  Request request{&input, {}, 0, std::chrono::steady_clock::now()};
  std::future<Tensor> done = request.result.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.size() >= static_cast<std::size_t>(options_.max_queue)) {
      throw Error(ErrorCode::kOverloaded, "dynamic batcher: " + std::to_string(queue_.size()) +
                                              " requests are already waiting (BatchingOptions::max_queue)");
    }
    queue_.push_back(&request);
  }
  wake_.notify_all();
  Tensor out = done.get();  // rethrows the batch's error, if any
  // The worker wrote batch_size before set_value: the future's synchronisation makes it visible.
  if (batch_size != nullptr) *batch_size = request.batch_size;
  return out;
}

void Batcher::loop() {
  const std::size_t max_batch = static_cast<std::size_t>(options_.max_batch_size);
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    // Wait for a full batch, but never past max_delay after the oldest waiting request arrived: a
    // request that queued while the previous batch ran has waited already, and does not wait again.
    const auto deadline = queue_.front()->arrived + std::chrono::microseconds(options_.max_delay_us);
    wake_.wait_until(lock, deadline, [&] { return stopping_ || queue_.size() >= max_batch; });
    std::vector<Request*> batch;
    while (!queue_.empty() && batch.size() < max_batch) {
      batch.push_back(queue_.front());
      queue_.pop_front();
    }
    lock.unlock();
    std::size_t answered = 0;  // requests already given their result
    try {
      Tensor in;
      in.shape = item_shape_;
      in.shape[0] = static_cast<std::int64_t>(batch.size());
      in.data.resize(item_size_ * batch.size());
      for (std::size_t k = 0; k < batch.size(); ++k) {
        std::memcpy(in.data.data() + k * item_size_, batch[k]->input->data.data(), item_size_ * sizeof(float));
      }
      const Tensor out = engine_.run(in);
      const std::size_t per = out.data.size() / batch.size();
      for (std::size_t k = 0; k < batch.size(); ++k) {
        Tensor one;
        one.shape = {1, static_cast<std::int64_t>(per)};
        one.data.assign(out.data.begin() + static_cast<std::ptrdiff_t>(k * per),
                        out.data.begin() + static_cast<std::ptrdiff_t>((k + 1) * per));
        // Move the promise out first: once the result is set the caller may return and destroy its
        // request, so nothing here may touch it afterwards.
        batch[k]->batch_size = static_cast<int>(batch.size());
        std::promise<Tensor> promise = std::move(batch[k]->result);
        promise.set_value(std::move(one));
        ++answered;
      }
    } catch (...) {
      for (std::size_t k = answered; k < batch.size(); ++k) {
        std::promise<Tensor> promise = std::move(batch[k]->result);
        promise.set_exception(std::current_exception());
      }
    }
    lock.lock();
  }
}

}  // namespace medinfer::detail
