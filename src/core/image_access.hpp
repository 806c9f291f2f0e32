// Internal: an Image whose pixels the library is about to write whole (a decoder's output), without
// the zero-fill the public constructor promises.
#pragma once

#include <medinfer/image.hpp>

namespace medinfer::detail {
struct ImageAccess {
  static Image uninitialized(PixelType type, std::size_t width, std::size_t height, std::size_t channels = 1);
};
}  // namespace medinfer::detail
