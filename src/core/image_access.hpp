// Internal: the size rule of Image and Volume buffers, and an Image whose pixels the library is about
// to write whole (a decoder's output), without the zero-fill the public constructor promises.
#pragma once

#include <medinfer/image.hpp>

namespace medinfer::detail {
struct ImageAccess {
  static Image uninitialized(PixelType type, std::size_t width, std::size_t height, std::size_t channels = 1);
};

/// The bytes of a width x height x n buffer of `type` (n: an Image's channels, a Volume's depth).
/// Throws Error(kInvalidArgument) naming `what` and `third` for a zero dimension, kResourceLimit for
/// one that overflows the address space.
std::size_t buffer_bytes(const char* what, const char* third, PixelType type, std::size_t width, std::size_t height,
                         std::size_t n);
}  // namespace medinfer::detail
