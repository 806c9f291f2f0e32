// predict_many: many inputs on every core. Each worker either prepares the next input (read, decode,
// preprocess: Impl::prepare, as predict() does) or, when a batch of prepared inputs is waiting, runs the
// model on it and finishes each result (Impl::finish, as predict() does). No thread pool waits on
// another: a forward runs on the worker that took the batch, single-threaded unless the host raised
// LibTorch's intra-op threads. A bound on inputs in flight keeps memory flat for any number of inputs.
#include <medinfer/error.hpp>
#include <medinfer/pipeline.hpp>

#include "pipeline/pipeline_internal.hpp"

#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

namespace medinfer {

void check_many_options(const ManyOptions& o) {
  if (o.batch_size < 1 || o.batch_size > 256) {
    throw Error(ErrorCode::kInvalidArgument,
                "ManyOptions::batch_size = " + std::to_string(o.batch_size) + ": must be in 1..256");
  }
  if (o.max_in_flight > 100000) {
    throw Error(ErrorCode::kInvalidArgument,
                "ManyOptions::max_in_flight = " + std::to_string(o.max_in_flight) + ": must be in 1..100000 (0: default)");
  }
  if (o.workers > 1024) {
    throw Error(ErrorCode::kInvalidArgument,
                "ManyOptions::workers = " + std::to_string(o.workers) + ": must be in 1..1024 (0: one per core)");
  }
}

namespace {

// A template only so that Pipeline::Impl (a private member type) is named where it may be: in
// Impl::predict_many, which instantiates it.
template <class Impl>
class ManyRun {
 public:
  ManyRun(const Impl& impl, const std::vector<Input>& inputs, const ManyOptions& options,
          std::shared_ptr<const Serving> pinned)
      : impl_(impl), inputs_(inputs), options_(options), n_(inputs.size()), pinned_(std::move(pinned)) {
    workers_ = options.workers ? options.workers : std::max(1u, std::thread::hardware_concurrency());
    workers_ = static_cast<unsigned>(std::min<std::size_t>(workers_, std::max<std::size_t>(n_, 1)));
    batch_ = static_cast<std::size_t>(options.batch_size);
    max_in_flight_ = options.max_in_flight ? options.max_in_flight : 2 * batch_ + 2 * workers_;
    max_in_flight_ = std::max(max_in_flight_, std::size_t{1});
    if (!options.on_outcome) kept_.resize(n_);
  }

  std::vector<Outcome> run() {
    std::vector<std::thread> pool;
    buffers_.resize(workers_);
    for (unsigned t = 1; t < workers_; ++t) pool.emplace_back([this, t] { work(t); });
    work(0);
    for (auto& t : pool) t.join();
    if (callback_error_) std::rethrow_exception(callback_error_);
    return std::move(kept_);
  }

 private:
  void work(unsigned worker) {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      if (stop_) return;
      const bool cancelled = options_.cancel.cancelled();
      const bool can_claim = next_ < n_ && in_flight_ < max_in_flight_;
      // A batch: full, or one that cannot grow (no input can be claimed and none is being prepared).
      if (!ready_.empty() && (ready_.size() >= batch_ || ((!can_claim || cancelled) && preparing_ == 0))) {
        std::vector<Prepared> batch = take_batch();
        lock.unlock();
        infer(batch, worker);
        lock.lock();
        wake_.notify_all();
        continue;
      }
      if (can_claim) {
        const std::size_t i = next_++;
        ++in_flight_;
        if (cancelled) {  // never started: its outcome says so, in its place
          lock.unlock();
          Outcome o;
          o.index = i;
          o.error = Error(ErrorCode::kCancelled, label(i) + ": not started: the run was cancelled");
          complete(std::move(o));
          lock.lock();
          continue;
        }
        ++preparing_;
        lock.unlock();
        std::optional<Prepared> prepared;
        Outcome failed;
        try {
          prepared.emplace(impl_.prepare(pinned_ ? *pinned_ : *impl_.now(), inputs_[i], Clock::now()));
        } catch (...) {
          failed.index = i;
          failed.error = as_error(std::current_exception());
        }
        if (prepared) {
          prepared->index = i;
          lock.lock();
          ready_.push_back(std::move(*prepared));
          --preparing_;
          wake_.notify_all();
          continue;
        }
        complete(std::move(failed));
        lock.lock();
        --preparing_;
        wake_.notify_all();
        continue;
      }
      if (next_ >= n_ && preparing_ == 0 && ready_.empty()) {
        wake_.notify_all();
        return;  // nothing left to claim, prepare or run (others deliver what they run)
      }
      wake_.wait(lock);
    }
  }

  // The oldest waiting inputs that share its model (an A/B test or a swap can mix models), at most
  // one batch. Called with the lock held.
  std::vector<Prepared> take_batch() {
    std::vector<Prepared> batch;
    const Model* model = ready_.front().model.get();
    for (auto it = ready_.begin(); it != ready_.end() && batch.size() < batch_;) {
      if (it->model.get() == model) {
        batch.push_back(std::move(*it));
        it = ready_.erase(it);
      } else {
        ++it;
      }
    }
    return batch;
  }

  void infer(std::vector<Prepared>& batch, unsigned worker) {
    const Model& model = *batch.front().model;
    bool ran = false;
    Tensor logits;
    if (batch.size() > 1) {
      // One run on the batch. If it fails (one input's non-finite logit fails the whole run), each input
      // is run alone below, so only the one at fault ends in an error.
      try {
        // One batch buffer per worker, reused for the run: a fresh one per batch (1.6 MB for 8 images
        // of 224 x 224) page-faults on every run.
        Tensor& in = buffers_[worker];
        in.shape = batch.front().input.shape;
        in.shape[0] = static_cast<std::int64_t>(batch.size());
        const std::size_t item = batch.front().input.data.size();
        in.data.resize(item * batch.size());
        for (std::size_t k = 0; k < batch.size(); ++k) {
          std::memcpy(in.data.data() + k * item, batch[k].input.data.data(), item * sizeof(float));
        }
        logits = model.engine->run(in);
        ran = true;
      } catch (const Error&) {
        ran = false;
      }
    }
    const std::size_t per = static_cast<std::size_t>(model.package->output_count());
    for (std::size_t k = 0; k < batch.size(); ++k) {
      Outcome o;
      o.index = batch[k].index;
      try {
        o.result.emplace(ran ? impl_.finish(batch[k], logits.data.data() + k * per, static_cast<int>(batch.size()))
                             : impl_.run_one(batch[k], /*through_batcher=*/false));
      } catch (...) {
        o.error = as_error(std::current_exception());
      }
      batch[k].input = Tensor{};  // release the pixels before waiting on delivery
      complete(std::move(o));
    }
  }

  // Delivers `o` (in input order when ordered: held until every earlier input is delivered).
  void complete(Outcome&& o) {
    std::lock_guard<std::mutex> order(deliver_mutex_);
    if (!options_.ordered) {
      deliver(std::move(o));
      return;
    }
    waiting_.emplace(o.index, std::move(o));
    while (!waiting_.empty() && waiting_.begin()->first == next_deliver_) {
      Outcome next = std::move(waiting_.begin()->second);
      waiting_.erase(waiting_.begin());
      ++next_deliver_;
      deliver(std::move(next));
    }
  }

  // Called under deliver_mutex_: one delivery at a time.
  void deliver(Outcome&& o) {
    ++delivered_;
    if (!callback_error_) {
      try {
        if (options_.on_outcome) {
          options_.on_outcome(std::move(o));
        } else if (options_.ordered) {
          kept_[o.index] = std::move(o);
        } else {
          kept_[delivered_ - 1] = std::move(o);
        }
        if (options_.progress) options_.progress(delivered_, n_);
      } catch (...) {
        callback_error_ = std::current_exception();
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    --in_flight_;
    if (callback_error_) stop_ = true;
    wake_.notify_all();
  }

  std::string label(std::size_t i) const {
    const Input& in = inputs_[i];
    if (in.kind == Input::Kind::kImage) return "input " + std::to_string(i) + " (image)";
    return "input " + std::to_string(i) + (in.path.empty() ? "" : " (" + in.path + ")");
  }

  static Error as_error(std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const Error& error) {
      return error;
    } catch (const std::exception& error) {
      return Error(ErrorCode::kInternal, std::string("predict_many: ") + error.what());
    } catch (...) {
      return Error(ErrorCode::kInternal, "predict_many: an unknown exception");
    }
  }

  const Impl& impl_;
  const std::vector<Input>& inputs_;
  const ManyOptions& options_;
  const std::size_t n_;
  const std::shared_ptr<const Serving> pinned_;
  unsigned workers_ = 1;
  std::size_t batch_ = 1, max_in_flight_ = 1;
  std::vector<Tensor> buffers_;  // a batch buffer per worker

  std::mutex mutex_;  // guards the fields below up to deliver_mutex_
  std::condition_variable wake_;
  std::size_t next_ = 0, in_flight_ = 0, preparing_ = 0;
  std::deque<Prepared> ready_;
  bool stop_ = false;

  std::mutex deliver_mutex_;  // guards delivery; taken before mutex_, never while holding it
  std::map<std::size_t, Outcome> waiting_;
  std::size_t next_deliver_ = 0, delivered_ = 0;
  std::vector<Outcome> kept_;
  std::exception_ptr callback_error_;
};

}  // namespace

std::vector<Outcome> Pipeline::Impl::predict_many(const std::vector<Input>& inputs, const ManyOptions& options,
                                                  std::shared_ptr<const Serving> pinned) const {
  check_many_options(options);
  if (inputs.empty()) return {};
  return ManyRun<Impl>(*this, inputs, options, std::move(pinned)).run();
}

}  // namespace medinfer
