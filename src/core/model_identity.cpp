#include <medinfer/model_identity.hpp>

namespace medinfer {

const char* to_string(Task task) noexcept {
  switch (task) {
    case Task::kBinary: return "binary";
    case Task::kMultiLabel: return "multi-label";
    case Task::kMultiClass: return "multi-class";
  }
  return "unknown";
}

}  // namespace medinfer
