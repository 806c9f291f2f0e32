// Internal: the per-image buffers of the hot path (file bytes, decoded cells, pixels, float copies),
// recycled process-wide and mapped straight from the kernel.
//
// Why: a 512x512 slice makes four or five fresh 0.5-1 MB buffers per prediction. From glibc's malloc,
// whether they page-fault each time (~12 µs per 4 KB page on these VMs) depends on a dynamic mmap/trim
// threshold that whatever ran earlier in the host's process has moved: the same predict measured
// 0.55 ms or 3 ms depending on the benchmarks that ran before it. Blocks from this cache bypass malloc
// entirely: mmap'd once, reused by the next image, so the hot path's speed no longer
// depends on the host's malloc state or settings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

namespace medinfer::detail {

/// Requests below this size use operator new (small, no page-fault problem).
constexpr std::size_t kBlockMinBytes = 64u << 10;

/// Memory of at least `bytes` (contents unspecified); `*capacity` receives its real size, to pass back
/// to release_block. Throws std::bad_alloc.
void* acquire_block(std::size_t bytes, std::size_t* capacity);
/// Returns a block to the cache (any thread may release any block). The cache keeps at most 32 blocks
/// and 96 MB, none over 32 MB; the rest is unmapped.
void release_block(void* p, std::size_t capacity) noexcept;

/// An owning buffer from the cache. Move-only.
class Block {
 public:
  Block() = default;
  explicit Block(std::size_t bytes) : size_(bytes) { data_ = static_cast<std::uint8_t*>(acquire_block(bytes, &capacity_)); }
  ~Block() { reset(); }
  Block(Block&& o) noexcept : data_(o.data_), size_(o.size_), capacity_(o.capacity_) { o.data_ = nullptr; o.size_ = o.capacity_ = 0; }
  Block& operator=(Block&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = o.data_, size_ = o.size_, capacity_ = o.capacity_;
      o.data_ = nullptr, o.size_ = o.capacity_ = 0;
    }
    return *this;
  }
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;

  std::uint8_t* data() noexcept { return data_; }
  const std::uint8_t* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  /// Keeps the first `n` bytes (n <= size()): the block stays, only the size shrinks.
  void truncate(std::size_t n) noexcept {
    if (n < size_) size_ = n;
  }
  /// Grows to `n` bytes (n >= size()) keeping the contents: a new block and a copy.
  void grow(std::size_t n) {
    if (n <= size_) return;
    Block bigger(n);
    if (size_ != 0) std::memcpy(bigger.data_, data_, size_);
    *this = std::move(bigger);
  }
  void reset() noexcept {
    if (data_) release_block(data_, capacity_);
    data_ = nullptr;
    size_ = capacity_ = 0;
  }

 private:
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0, capacity_ = 0;
};

}  // namespace medinfer::detail
