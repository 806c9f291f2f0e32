// Which model serves: hot swap, A/B tests and their routing. Each change publishes a new immutable
// Serving snapshot atomically; calls in flight keep the model they started on.
#include <medinfer/error.hpp>
#include <medinfer/pipeline.hpp>

#include "core/log_internal.hpp"
#include "core/sha256.hpp"
#include "pipeline/pipeline_internal.hpp"

#include <fmt/format.h>

namespace medinfer {

double routing_bucket(const std::string& key) {
  const std::uint64_t v = std::stoull(detail::sha256_hex("medinfer-ab-v1:" + key).substr(0, 16), nullptr, 16);
  return static_cast<double>(v >> 11) * 0x1.0p-53;  // 53 bits: exactly representable, < 1
}

std::pair<std::shared_ptr<const Model>, Arm> Pipeline::Impl::route(const Serving& s, const std::string& key) {
  if (!s.candidate) return {s.primary, Arm::kNone};
  if (routing_bucket(key) < s.fraction) return {s.candidate, Arm::kCandidate};
  return {s.primary, Arm::kPrimary};
}

std::string describe(const ModelIdentity& id) { return id.name + " " + id.version + " (" + id.sha256.substr(0, 12) + ")"; }

ModelIdentity Pipeline::swap_model(const std::string& package_dir) {
  std::lock_guard<std::mutex> lock(impl_->deploy_mutex);
  std::shared_ptr<const Model> next = impl_->open_audited(package_dir);  // the old model serves meanwhile
  const std::shared_ptr<const Serving> current = impl_->now();
  auto serving = std::make_shared<Serving>(*current);
  serving->primary = next;
  impl_->audit_change(*next, "model swapped: " + describe(current->primary->package->identity()) + " -> " +
                                 describe(next->package->identity()));
  impl_->publish(std::move(serving));
  detail::log(LogLevel::kInfo, "model swapped: {} -> {}", describe(current->primary->package->identity()),
              describe(next->package->identity()));
  return next->package->identity();
}

ModelIdentity Pipeline::start_ab_test(const std::string& candidate_dir, double candidate_fraction) {
  if (!(candidate_fraction >= 0.0 && candidate_fraction <= 1.0)) {
    throw Error(ErrorCode::kInvalidArgument, fmt::format("start_ab_test: candidate_fraction {} is not in [0, 1]", candidate_fraction));
  }
  std::lock_guard<std::mutex> lock(impl_->deploy_mutex);
  std::shared_ptr<const Model> candidate = impl_->open_audited(candidate_dir);
  auto serving = std::make_shared<Serving>(*impl_->now());
  serving->candidate = candidate;
  serving->fraction = candidate_fraction;
  impl_->audit_change(*serving->primary, fmt::format("A/B test started: primary {}, candidate {}, candidate fraction {}",
                                                     describe(serving->primary->package->identity()),
                                                     describe(candidate->package->identity()), candidate_fraction));
  impl_->publish(std::move(serving));
  return candidate->package->identity();
}

void Pipeline::stop_ab_test() {
  std::lock_guard<std::mutex> lock(impl_->deploy_mutex);
  const std::shared_ptr<const Serving> current = impl_->now();
  if (!current->candidate) return;
  auto serving = std::make_shared<Serving>();
  serving->primary = current->primary;
  impl_->audit_change(*current->primary, "A/B test stopped: candidate " + describe(current->candidate->package->identity()) +
                                             " withdrawn");
  impl_->publish(std::move(serving));
}

ModelIdentity Pipeline::promote_candidate() {
  std::lock_guard<std::mutex> lock(impl_->deploy_mutex);
  const std::shared_ptr<const Serving> current = impl_->now();
  if (!current->candidate) throw Error(ErrorCode::kInvalidArgument, "promote_candidate: no A/B test is running");
  auto serving = std::make_shared<Serving>();
  serving->primary = current->candidate;
  impl_->audit_change(*current->candidate, "A/B test ended: candidate " + describe(current->candidate->package->identity()) +
                                               " promoted over " + describe(current->primary->package->identity()));
  impl_->publish(std::move(serving));
  return current->candidate->package->identity();
}

Deployment Pipeline::deployment() const {
  const std::shared_ptr<const Serving> s = impl_->now();
  Deployment d;
  d.primary = s->primary->package->identity();
  if (s->candidate) {
    d.candidate = s->candidate->package->identity();
    d.candidate_fraction = s->fraction;
  }
  return d;
}

}  // namespace medinfer
