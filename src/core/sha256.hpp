// SHA-256 (OpenSSL EVP), hex-encoded. Used for package integrity and input fingerprints.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace medinfer::detail {

/// Incremental SHA-256. Not thread-safe; one per computation.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t size);
  /// Lower-case hex of the digest. Call once.
  std::string hex_digest();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string sha256_hex(std::string_view bytes);

/// HMAC-SHA256 of `data` under `key`, lower-case hex.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

/// Constant-time comparison of two equal-length strings (MACs).
bool constant_time_equal(std::string_view a, std::string_view b);

/// `n` bytes from OpenSSL's CSPRNG.
std::string random_bytes(std::size_t n);

/// Lower-case hex of arbitrary bytes.
std::string to_hex(std::string_view bytes);

/// A random (version 4, RFC 4122) UUID, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx": audit event ids, FHIR ids.
std::string random_uuid();

}  // namespace medinfer::detail
