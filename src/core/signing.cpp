#include "core/signing.hpp"

#include <medinfer/error.hpp>

#include "core/sha256.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>

namespace medinfer::detail {
namespace {

using Pkey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

[[noreturn]] void bad_key(const std::string& what, const char* expected) {
  throw Error(ErrorCode::kInvalidArgument, what + ": not an Ed25519 " + expected + " key in PEM form");
}

Pkey read_key(const std::string& pem, bool private_key, const std::string& what) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) throw Error(ErrorCode::kInternal, "OpenSSL: BIO_new_mem_buf failed");
  EVP_PKEY* k = private_key ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                            : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  Pkey key(k, EVP_PKEY_free);
  if (!key || EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) bad_key(what, private_key ? "private" : "public");
  return key;
}

std::string to_pem(EVP_PKEY* key, bool private_key) {
  Bio bio(BIO_new(BIO_s_mem()), BIO_free);
  const int ok = private_key ? PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)
                             : PEM_write_bio_PUBKEY(bio.get(), key);
  if (ok != 1) throw Error(ErrorCode::kInternal, "OpenSSL: cannot write a PEM key");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

Ed25519KeyPair ed25519_generate() {
  EVP_PKEY* raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (raw == nullptr) throw Error(ErrorCode::kInternal, "OpenSSL: Ed25519 key generation failed");
  Pkey key(raw, EVP_PKEY_free);
  return {to_pem(key.get(), true), to_pem(key.get(), false)};
}

std::string ed25519_sign(const std::string& private_pem, std::string_view message, const std::string& what) {
  Pkey key = read_key(private_pem, true, what);
  MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t n = 64;
  std::string sig(64, '\0');
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &n,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1) {
    throw Error(ErrorCode::kInternal, "OpenSSL: Ed25519 signing failed");
  }
  sig.resize(n);
  return sig;
}

bool ed25519_verify(const std::string& public_pem, std::string_view message, std::string_view signature,
                    const std::string& what) {
  Pkey key = read_key(public_pem, false, what);
  MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
    throw Error(ErrorCode::kInternal, "OpenSSL: Ed25519 verification could not start");
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                          reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
}

namespace {
std::string raw_key_id(const Pkey& key, const std::string& what) {
  unsigned char raw[32];
  std::size_t n = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(key.get(), raw, &n) != 1 || n != 32) bad_key(what, "public");
  return sha256_hex(std::string_view(reinterpret_cast<const char*>(raw), n));
}
}  // namespace

std::string ed25519_key_id(const std::string& pem, const std::string& what) {
  const bool is_private = pem.find("PRIVATE KEY") != std::string::npos;
  return raw_key_id(read_key(pem, is_private, what), what);
}

std::string ed25519_public_key_id(const std::string& public_pem, const std::string& what) {
  if (public_pem.find("PRIVATE KEY") != std::string::npos) {
    throw Error(ErrorCode::kInvalidArgument, what + ": a private key: pin its public key (KEY.pub), never the signing key");
  }
  return raw_key_id(read_key(public_pem, false, what), what);
}

std::string ed25519_private_key_id(const std::string& private_pem, const std::string& what) {
  return raw_key_id(read_key(private_pem, true, what), what);
}

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64_decode(std::string_view text, const std::string& what) {
  if (text.size() % 4 != 0 || text.empty()) throw Error(ErrorCode::kInvalidArgument, what + ": not base64");
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) throw Error(ErrorCode::kInvalidArgument, what + ": not base64");
  std::size_t pad = 0;
  if (text.back() == '=') ++pad;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

}  // namespace medinfer::detail
